"""The zoo quadruped's velocity tracking over ROS 2 against the MuJoCo backend (the peer, same run): does
the ros2 backend rebuild the observation as training did (the velocity command and the last command
`ctrl`, which the host supplies over ROS 2)?

For each fixed command [vx, vy, wz]: one episode of `--steps` control steps, seed `--seed`,
- "mujoco": `MujocoRobot` under the control loop, the observation's `command` field replaced by the fixed
  command (the episode's own draws do not act on the physics);
- "ros2": the sim bridge (`robot_rl.hardware.ros2_sim_bridge`, same task and seed) and `robot-rl deploy
  --backend ros2 --ros-args -p velocity_command:=[...]`, the base's pose and velocity read from the
  bridge's `joint_states` by a node of this process.
Tracking error: the mean over the states after each step (1 .. steps) of |command_xy - v_xy| (m/s,
base frame), eval's `velocity_tracking_error` for one episode; dx: the base's x advance (m). Prints one
JSON line (and the load average: the machine is shared). Needs rclpy (robot-rl[ros2]).

    python bench/quadruped_ros2_tracking.py --steps 500 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.mujoco_robot import MujocoRobot
from robot_rl.policies import load

BUNDLE = "zoo:quadruped-walk_ppo"
COMMANDS = ([0.5, 0.0, 0.0], [1.0, 0.0, 0.0], [-0.5, 0.0, 0.0], [0.5, 0.2, 0.3])


def tracking_error(qpos: np.ndarray, qvel: np.ndarray, command: list[float]) -> float:
    """|command_xy - v_xy| in the base frame, from the free joint's qpos[:7] and qvel[:3] (world frame)."""
    w, x, y, z = qpos[3:7]
    rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    v = rotation.T @ np.asarray(qvel[:3])
    return float(np.hypot(command[0] - v[0], command[1] - v[1]))


class FixedCommand:
    """The bundle's policy with its observation's velocity command fixed; records the tracking error."""

    def __init__(self, command: list[float]) -> None:
        self.policy = load(BUNDLE)
        self.spec = self.policy.spec
        self.command = command
        self.errors: list[float] = []

    def act(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        f = dict(fields, command=np.array(self.command, dtype=np.float64))
        self.errors.append(tracking_error(f["qpos"], f["qvel"], self.command))
        return self.policy.act(f)

    def reset(self) -> None:
        self.policy.reset()


def on_mujoco(command: list[float], steps: int, seed: int) -> dict[str, Any]:
    policy = FixedCommand(command)
    robot = MujocoRobot(policy.spec.name, seed=seed, realtime=False)
    robot.configure()
    x0 = float(robot.read_state().fields["qpos"][0])
    stats = ControlLoop(robot, policy).run(steps=steps, close=False)
    last = robot.read_state().fields  # the state after the last step: states 1 .. steps, as over ROS 2
    policy.errors.append(tracking_error(last["qpos"], last["qvel"], command))
    dx = float(last["qpos"][0]) - x0
    robot.close()
    return {"tracking_error": float(np.mean(policy.errors[1:])), "steps": stats.steps,
            "fell": stats.steps < steps, "dx": dx}  # the episode ended before its time limit


def over_ros2(command: list[float], steps: int, seed: int, domain: int) -> dict[str, Any]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from robot_rl.hardware.ros2_robot import state_qos

    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    env.pop("ROS_LOCALHOST_ONLY", None)
    bridge = subprocess.Popen([sys.executable, "-m", "robot_rl.hardware.ros2_sim_bridge", "--ros-args",
                               "-p", f"bundle:={BUNDLE}", "-p", f"seed:={seed}", "-p", "episodes:=1",
                               "-p", f"max_steps:={steps}"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("robot_rl_bench_tracking", context=context)
    errors: list[float] = []
    last: list[Any] = [None]

    def on_state(msg: Any) -> None:
        pos, vel = np.array(msg.position), np.array(msg.velocity)
        if last[0] is None or not np.array_equal(pos[:7], last[0]):  # a held state is republished
            last[0] = pos[:7]
            errors.append(tracking_error(pos[:7], np.delete(vel[:7], 3), command))  # root:qw has no qvel

    node.create_subscription(JointState, "/joint_states", on_state, state_qos(None))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.02)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    time.sleep(3.0)  # the bridge up and this node subscribed before the first command
    vx, vy, wz = command
    done = subprocess.run([sys.executable, "-m", "robot_rl.cli", "deploy", BUNDLE, "--backend", "ros2",
                           "--json", "--duration", str(steps * 0.02 + 1), "--ros-args", "-p",
                           f"velocity_command:=[{vx}, {vy}, {wz}]"], env=env, capture_output=True, text=True)
    out, _ = bridge.communicate(timeout=30)
    stop.set()
    thread.join(2)
    executor.shutdown()
    node.destroy_node()
    context.try_shutdown()
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    episode = next(json.loads(line) for line in out.splitlines() if line.startswith('{"event"'))
    return {"tracking_error": float(np.mean(errors[1:steps + 1])), "steps": episode["steps"],
            "fell": episode["terminated"], "dx": episode["x_end"] - episode["x_start"],
            "states_seen": len(errors), "safety": json.loads(done.stdout)["safety"]["interventions"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domain", type=int, default=120, help="ROS_DOMAIN_ID (tests use 40-99)")
    args = parser.parse_args()
    rows = [{"command": c, "mujoco": on_mujoco(c, args.steps, args.seed),
             "ros2": over_ros2(c, args.steps, args.seed, args.domain)} for c in COMMANDS]
    print(json.dumps({"bench": "quadruped_ros2_tracking", "bundle": BUNDLE, "steps": args.steps,
                      "seed": args.seed, "rows": rows, "load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
