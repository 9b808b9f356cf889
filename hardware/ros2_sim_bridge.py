"""The simulation bridge node `robot_rl_sim_bridge`: a task's MuJoCo model standing in for a robot driver.

    python -m robot_rl.hardware.ros2_sim_bridge --ros-args -p bundle:=zoo:Hopper-v5_ppo -p episodes:=1

The plant is the MuJoCo backend (`MujocoRobot`, i.e. `robot_rl.sim.make_env(task)`: the model the
policy was trained in, stepped exactly as `robot-rl deploy --backend mujoco` steps it), paced in real
time by a timer at the control period. Each tick applies the latest command, advances the physics by
one control period and publishes the new state, so a command computed from state k within the period
acts on step k, as in the MuJoCo backend.

Topics (relative names; remap with `-r`):
- `joint_states` (sensor_msgs/JointState, out): every joint of the model, named after the MuJoCo
  joint, in model order, position = its qpos and velocity = its qvel. The arrays are therefore the
  model's generalized coordinates `qpos`/`qvel` (what the gymnasium tasks' observations read). A free
  joint J is the seven entries `J:x J:y J:z J:qw J:qx J:qy J:qz` (velocities: its six qvel on the
  entries other than `J:qw`, whose velocity is 0 and unused); a ball joint the four `J:qw .. J:qz`
  (`robot_rl.sim.joint_naming`: the same names an exported bundle's `state_joints` lists).
  Header stamp: this node's ROS clock. QoS: best effort, depth 1, offered deadline (`deadline`).
- `imu` (sensor_msgs/Imu, out, only for a model with a free joint): the first free joint's
  orientation and angular velocity (body frame, rad/s); no linear acceleration (covariance[0] = -1).
- `cube_pose` (geometry_msgs/PoseStamped, out, `pose_topic`, only for a model with a free joint named
  `pose_joint`, default `cube`): that joint's pose, position m and orientation w x y z in the world
  frame (the cube hand's palm frame), as a motion-capture system would publish the tracked cube. Same
  stamp and QoS as `joint_states`.
- `commands` (std_msgs/Float64MultiArray, in): one value per actuated joint in the task spec's joint
  order (a forward_command_controller's `joints`), robot units. Reliable, depth 1. A command of the
  wrong length or with NaN/Inf is refused and counted; the driver-side watchdog applies the safe
  command (zero torque or velocity, or hold position) when none came for `command_timeout`.
- `diagnostics` (diagnostic_msgs/DiagnosticArray, out): the episode report when an episode ends.

Until the first command arrives the robot holds (`hold_until_command`): the state is published every
period but the physics does not advance, so an episode starts when its controller does. When an
episode ends (termination, the task's time limit, or `max_steps`) its report (episode, seed, steps,
return, whether it terminated, root x at start and end, commands refused, control periods without
a fresh command and the longest run of them, the first step that got the safe command because the
last one had timed out, or null) is printed as one JSON line, logged and published; then
the next episode starts (seed + 1), or after `episodes` episodes the node exits (exit code 0).

This module (parameters, plant, entry point) imports without rclpy; the node class is
`ros2_sim_bridge_node.SimBridge`.
"""

from __future__ import annotations

import sys
from typing import Any

from robot_rl.errors import RobotRLError
from robot_rl.hardware.ros2_robot import count_range, seconds_range

PARAMETERS: dict[str, Any] = {
    "bundle": "",
    "task": "",
    "seed": 0,
    "period": 0.0,
    "episodes": 0,
    "max_steps": 0,
    "hold_until_command": True,
    "command_timeout": 0.0,
    "deadline": -1.0,
    "state_topic": "joint_states",
    "imu_topic": "imu",
    "command_topic": "commands",
    "diagnostics_topic": "diagnostics",
    "pose_topic": "cube_pose",
    "pose_joint": "cube",
}
"""Parameter defaults. `bundle` or `task` picks the model (`task` wins); `period` 0: the task's control
period; `episodes` 0: forever; `max_steps` 0: the task's own time limit; `command_timeout` 0: three
periods; `deadline` (offered on the state topic) -1: 1.5 periods, 0: none."""
RANGES = {
    "seed": count_range("the first seed"),
    "period": seconds_range("the task's control period"),
    "episodes": count_range("forever"),
    "max_steps": count_range("the task's own time limit"),
    "command_timeout": seconds_range("three periods"),
    "deadline": seconds_range("none", "1.5 periods"),
}


def make_plant(p: dict[str, Any]) -> Any:
    """The bridge's plant for its parameters `p`: the MuJoCo backend of `task` (or the bundle's task),
    configured, not paced (the bridge's timer is)."""
    from robot_rl.hardware.mujoco_robot import MujocoRobot

    task = p["task"]
    if not task:
        if not p["bundle"]:
            raise RobotRLError("robot_rl_sim_bridge: set the parameter task (e.g. Hopper-v5) or bundle")
        from robot_rl.hardware.hil import bundle_task

        task = bundle_task(p["bundle"])
    robot = MujocoRobot(task, seed=int(p["seed"]), realtime=False)
    robot.configure()
    return robot


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until its episodes are done, or SIGINT/SIGTERM; exit code 0, 2 on a bad setup."""
    import signal

    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from robot_rl.hardware.ros2_policy_node import make_executor
    from robot_rl.hardware.ros2_sim_bridge_node import SimBridge

    argv = list(sys.argv if argv is None else argv)
    context = rclpy.Context()
    rclpy.init(args=argv, context=context, signal_handler_options=SignalHandlerOptions.NO)
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    node = None
    try:
        try:
            node = SimBridge(context)
        except RobotRLError as err:
            print(f"robot_rl_sim_bridge: error: {err}", file=sys.stderr)
            return 2
        # events in arrival order: a command that came before the next tick's deadline is applied at
        # that tick even when this process got the CPU late (a wait set would run the timer first)
        executor = make_executor("auto", context)
        executor.add_node(node)
        while not stop and not node.done:
            executor.spin_once(timeout_sec=0.1)
        return node.exit_code
    finally:
        if node is not None:
            node.robot.close()
            node.destroy_node()
        context.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
