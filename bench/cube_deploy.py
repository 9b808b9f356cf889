"""The cube policy through the hardware layer: success over serial (the firmware emulator on a real pty,
real time) and over ROS 2 (the sim bridge, the cube's pose on a PoseStamped topic, real rclpy, real
time) against the MuJoCo backend, the same episodes (issue 14: each >= 90 % of MuJoCo's).

Each episode: the plant reset with seed `seed + i` (MuJoCo backend: the engine world's reset; serial:
INJECT RESET_PLANT with that seed, the same reset; ROS 2: a bridge process for that seed, one episode),
host-side goals drawn from seed `seed + i`, the
control loop for the task's 200 steps (10 s) or until a drop. An episode is a success when it reached
its first goal (the training's `success_rate`); `consecutive_successes` is the mean of goals in a row.
Prints one JSON line with both backends, their ratio and the load average before and after.

    python bench/cube_deploy.py --episodes 20              # ~4 min of serial episodes in real time
    python bench/cube_deploy.py --episodes 20 --backends mujoco,ros2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.hardware import protocol as P
from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.goal_tracker import goal_tracker
from robot_rl.hardware.mujoco_robot import MujocoRobot
from robot_rl.hardware.robot import HardwareError, Lifecycle
from robot_rl.hardware.serial_robot import SerialRobot
from robot_rl.policies import load

WATCHDOG = 0.5
"""The device watchdog (s) of the serial episodes, as tests/test_hil.py's: this 2-core machine is shared
and a host stalled past the default 250 ms faults an episode that says nothing of the link."""


def summary(goals: list[int], steps: list[int], stops: list[str]) -> dict[str, Any]:
    reached = np.asarray(goals)
    return {"success_rate": float(np.mean(reached >= 1)), "consecutive_successes": float(np.mean(reached)),
            "successes": goals, "steps": steps, "drops": stops.count("dropped")}


def mujoco_episodes(bundle: str, episodes: int, seed: int, steps: int) -> dict[str, Any]:
    policy = load(bundle)
    goals, lengths, stops = [], [], []
    for i in range(episodes):
        robot = MujocoRobot(policy.spec.name, seed=seed + i, realtime=False)
        tracker = goal_tracker(policy.spec, seed=seed + i)
        stats = ControlLoop(robot, policy, goals=tracker).run(steps=steps)
        goals.append(stats.goals["successes"] if stats.goals else 0)
        lengths.append(stats.steps)
        stops.append(stats.stop_reason)
    return summary(goals, lengths, stops)


def serial_episodes(bundle: str, episodes: int, seed: int, steps: int, link: Path) -> dict[str, Any]:
    policy = load(bundle)
    process = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "emulate", "--task", policy.spec.name,
                                "--link", str(link)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    goals, lengths, stops, overruns = [], [], [], []
    try:
        deadline = time.monotonic() + 60
        while not link.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.05)
        robot = SerialRobot(policy.spec, str(link), watchdog=WATCHDOG)
        robot.link.open()
        for i in range(episodes):
            if robot.lifecycle is Lifecycle.ERROR:  # the last episode faulted: RESET, configure again
                robot.recover()
            robot.link.request(P.Inject(P.InjectKind.RESET_PLANT, seed + i))
            tracker = goal_tracker(policy.spec, seed=seed + i)
            loop = ControlLoop(robot, policy, goals=tracker)
            try:
                loop.run(steps=steps, close=False)
            except HardwareError as err:  # e.g. the watchdog tripped: a host stalled past it under load
                print(f"serial episode {i}: {err}", file=sys.stderr)
            stats = loop.stats()
            goals.append(stats.goals["successes"] if stats.goals else 0)
            lengths.append(stats.steps)
            stops.append(stats.stop_reason)
            overruns.append(stats.overruns)
        robot.close()
    finally:
        process.terminate()
        process.wait(10)
    return {**summary(goals, lengths, stops), "overruns": overruns, "faults": stops.count("error"),
            "watchdog_s": WATCHDOG}


def ros2_episodes(bundle: str, episodes: int, seed: int, steps: int) -> dict[str, Any]:
    from robot_rl.hardware.ros2_robot import Ros2Robot

    os.environ.update(ROS_DOMAIN_ID=str(81 + os.getpid() % 19), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    policy = load(bundle)
    goals, lengths, stops, stale = [], [], [], []
    for i in range(episodes):
        bridge = subprocess.Popen([sys.executable, "-m", "robot_rl.hardware.ros2_sim_bridge", "--ros-args",
                                   "-p", f"bundle:={bundle}", "-p", f"seed:={seed + i}", "-p", "episodes:=1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            robot = Ros2Robot(policy.spec, ros_args=[], connect_timeout=60.0)
            tracker = goal_tracker(policy.spec, seed=seed + i)
            time.sleep(1.0)  # a second of the bridge's stream: a starting bridge has gaps
            stats = ControlLoop(robot, policy, goals=tracker).run(steps=steps)
        finally:
            bridge.terminate()
            bridge.wait(10)
        goals.append(stats.goals["successes"] if stats.goals else 0)
        lengths.append(stats.steps)
        stops.append(stats.stop_reason)
        stale.append(int(stats.safety["interventions"].get("stale", 0)))
    return {**summary(goals, lengths, stops), "stale_ticks": stale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="zoo:cube-rotate-z_ppo")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200, help="control steps per episode (200: 10 s)")
    parser.add_argument("--backends", default="mujoco,serial", help="mujoco plus serial and/or ros2")
    args = parser.parse_args()
    backends = args.backends.split(",")
    load_before = os.getloadavg()
    out: dict[str, Any] = {"bench": "cube_deploy", "bundle": args.bundle, "episodes": args.episodes,
                           "seed": args.seed, "steps": args.steps}
    mujoco = out["mujoco"] = mujoco_episodes(args.bundle, args.episodes, args.seed, args.steps)
    if "serial" in backends:
        with tempfile.TemporaryDirectory(prefix="cube_deploy_") as tmp:
            link = Path(tmp) / "tty"
            out["serial"] = serial_episodes(args.bundle, args.episodes, args.seed, args.steps, link)
    if "ros2" in backends:
        out["ros2"] = ros2_episodes(args.bundle, args.episodes, args.seed, args.steps)
    for name in ("serial", "ros2"):
        if name in out:
            out[f"{name}_over_mujoco_success"] = (out[name]["success_rate"] / mujoco["success_rate"]
                                                  if mujoco["success_rate"] else None)
    print(json.dumps({**out, "load_before": load_before, "load_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
