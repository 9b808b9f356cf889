"""The zoo cube over ROS 2 (real rclpy, no mocks): the sim bridge publishes the hand's `joint_states` and
the cube's pose as `geometry_msgs/PoseStamped` on `cube_pose`; `robot-rl deploy --backend ros2` takes the
cube's entries from the pose, integrates the relative action, and reaches goals; a goal published on
`cube_goal` (geometry_msgs/QuaternionStamped) replaces the drawn ones. Nodes run in their own processes
on this file's own ROS_DOMAIN_ID (61-80, from the pid; tests/test_ros2.py uses 40-60)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.hardware.processes import stop_process
from robot_rl.policies import zoo_names

ROOT = Path(__file__).resolve().parents[1]
CUBE = "zoo:cube-rotate-z_ppo"
DOMAIN = 61 + os.getpid() % 20
ENV = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
       "PYTHONUNBUFFERED": "1"}
ENV.pop("ROS_LOCALHOST_ONLY", None)

try:
    import geometry_msgs.msg  # noqa: F401
    import rclpy  # noqa: F401

    HAVE_ROS = True
except ImportError:
    HAVE_ROS = False

pytestmark = [pytest.mark.ros2,
              pytest.mark.skipif(not HAVE_ROS, reason="needs rclpy and geometry_msgs (robot-rl[ros2])"),
              pytest.mark.skipif(CUBE.removeprefix("zoo:") not in zoo_names(), reason="no zoo cube")]


def _bridge(tmp_path: Path, seed: int) -> subprocess.Popen:
    log = (tmp_path / f"bridge_{seed}.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "robot_rl.hardware.ros2_sim_bridge", "--ros-args", "-p",
                             f"bundle:={CUBE}", "-p", f"seed:={seed}", "-p", "episodes:=1"], env=ENV,
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen) -> None:
    stop_process(process, 10, first=signal.SIGTERM)  # SIGTERM, 10 s, then SIGKILL


def _deploy(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "robot_rl.cli", "deploy", CUBE, "--backend", "ros2",
                           "--json", *args], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_zoo_cube_over_ros2_reads_the_pose_topic_and_reaches_goals(tmp_path):
    bridge = _bridge(tmp_path, seed=0)
    try:
        time.sleep(3.0)  # the bridge's first states (it holds the hand until the first command)
        report = _deploy("--duration", "8", "--seed", "0")
    finally:
        _stop(bridge)
    assert report["stop_reason"] == "duration" and report["steps"] >= 100
    device = report["device"]
    assert device["poses_received"] >= report["steps"] * 0.9  # the cube's pose came on cube_pose
    goals = report["goals"]
    assert goals["goal_source"] == "drawn" and not goals["dropped"]
    assert goals["successes"] >= 1, goals


class GoalPublisher:
    """Publishes one goal on /cube_goal at 10 Hz from a thread of this process (its own rclpy context)."""

    def __init__(self, goal: tuple[float, float, float, float]) -> None:
        import rclpy
        from geometry_msgs.msg import QuaternionStamped
        from rclpy.signals import SignalHandlerOptions

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("robot_rl_test_goal", context=self.context)
        self.publisher = self.node.create_publisher(QuaternionStamped, "/cube_goal", 10)
        self.msg = QuaternionStamped()
        q = self.msg.quaternion
        q.w, q.x, q.y, q.z = goal
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            self.publisher.publish(self.msg)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.node.destroy_node()
        self.context.try_shutdown()


def _start_orientation(seed: int) -> np.ndarray:
    """The cube's orientation at the start of the bridge's episode with `seed` (the MuJoCo backend's)."""
    from robot_rl.hardware.mujoco_robot import MujocoRobot

    with MujocoRobot("cube:rotate-z", seed=seed, realtime=False) as robot:
        robot.configure()
        return robot.activate().fields["qpos"][12:16]


def test_a_goal_on_the_goal_topic_replaces_the_drawn_goals(tmp_path):
    from robot_rl.goals import quat_about_z
    from robot_rl.spec import quat_multiply

    # a quarter turn about z from where the cube starts (the goals the policy was trained for)
    turn = quat_about_z(np.array([np.pi / 2]))[0]
    goal = tuple(float(v) for v in quat_multiply(turn, _start_orientation(1)))
    bridge = _bridge(tmp_path, seed=1)
    publisher = GoalPublisher(goal)
    try:
        time.sleep(3.0)
        report = _deploy("--duration", "6", "--seed", "1")
    finally:
        publisher.close()
        _stop(bridge)
    assert report["device"]["goals_received"] >= 20
    goals = report["goals"]
    assert goals["goal_source"] == "fixed" and goals["goal"] == pytest.approx(list(goal))
    assert goals["successes"] >= 1, goals
