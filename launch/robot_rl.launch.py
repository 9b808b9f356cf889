"""`ros2 launch` file for a full ROS 2 install: the sim bridge and the policy node of robot_rl.

    ros2 launch launch/robot_rl.launch.py bundle:=zoo:Hopper-v5_ppo
    ros2 launch launch/robot_rl.launch.py bundle:=/path/to/bundle sim:=false   # a real robot driver

robot_rl is a pip package, not an ament one, so the nodes start as `python3 -m MODULE` processes
(ExecuteProcess) with `--ros-args`; only the `launch` package is needed (no launch_ros). With
`sim:=false` only the policy node starts, for the robot's own driver and controller: remap its topics
with `state_topic:=` and `command_topic:=` (a forward_command_controller's `/<name>/commands`).
`robot-rl launch launch/ros2_sim.yaml` does the same without ROS 2's launch tooling.
"""

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription

ARGUMENTS = {
    "bundle": ("zoo:InvertedPendulum-v5_ppo", "policy bundle folder or zoo:<name>"),
    "sim": ("true", "start the MuJoCo sim bridge as the robot"),
    "python": ("python3", "the interpreter robot_rl is installed in"),
    "namespace": ("sim", "namespace of both nodes"),
    "state_topic": ("joint_states", "sensor_msgs/JointState from the robot"),
    "command_topic": ("commands", "std_msgs/Float64MultiArray to the robot's controller"),
    "trigger": ("state", "state: tick on each fresh JointState; timer: tick on a timer"),
    "episodes": ("0", "sim bridge: episodes before it exits (0: forever)"),
    "seed": ("0", "sim bridge: seed of the first episode"),
}


def generate_launch_description() -> LaunchDescription:
    arg = {name: LaunchConfiguration(name) for name in ARGUMENTS}
    ns = ["__ns:=/", arg["namespace"]]
    bridge = ExecuteProcess(
        cmd=[arg["python"], "-m", "robot_rl.hardware.ros2_sim_bridge", "--ros-args", "-r", ns,
             "-p", ["bundle:=", arg["bundle"]], "-p", ["state_topic:=", arg["state_topic"]],
             "-p", ["command_topic:=", arg["command_topic"]], "-p", ["episodes:=", arg["episodes"]],
             "-p", ["seed:=", arg["seed"]]],
        name="robot_rl_sim_bridge", output="screen", condition=IfCondition(arg["sim"]))
    node = ExecuteProcess(
        cmd=[arg["python"], "-m", "robot_rl.hardware.ros2_policy_node", "--ros-args", "-r", ns,
             "-p", ["bundle:=", arg["bundle"]], "-p", ["state_topic:=", arg["state_topic"]],
             "-p", ["command_topic:=", arg["command_topic"]], "-p", ["trigger:=", arg["trigger"]]],
        name="robot_rl_policy", output="screen", sigterm_timeout="5")
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*declared, bridge, node])
