"""The policy node's parameters and what they build: `robot_rl_policy`'s ROS parameters with their
defaults, help and checks, and the control loop and robot for a set of values. No rclpy needed: the
checks run (and are tested) without ROS, and the ros2 backend's `--ros-args -p` uses them too.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.goal_tracker import goal_tracker
from robot_rl.hardware.ros2_robot import check_ranges, seconds_range
from robot_rl.spec import TaskSpec

NODE_NAME = "robot_rl_policy"
TRIGGERS = ("state", "timer")
EXECUTORS = ("auto", "events", "single")
#: Parameters and defaults; list-valued ones are typed (string or double arrays).
PARAMETERS: dict[str, Any] = {
    "bundle": "",
    "runtime": "numpy",
    "state_topic": "joint_states",
    "imu_topic": "",
    "command_topic": "commands",
    "diagnostics_topic": "diagnostics",
    "estop_topic": "estop",
    "joints": [],
    "joint_map": [],
    "state_joints": [],
    "period": 0.0,
    "trigger": "state",
    "executor": "auto",
    "realtime_priority": 0,
    "stale_timeout": 0.0,
    "max_delta": 0.5,
    "safety_limits": True,
    "command_low": [],
    "command_high": [],
    "state_deadline": 0.0,
    "command_deadline": -1.0,
    "diagnostics_period": 1.0,
    "autostart": True,
    "activate_timeout": 0.0,
    "pose_topic": "cube_pose",
    "pose_joint": "cube",
    "goal_topic": "cube_goal",
    "goal": [],
    "goal_seed": 0,
    "cmd_vel_topic": "cmd_vel",
    "velocity_command": [],
    "command_timeout": 0.0,
}
_DOUBLE_ARRAYS = ("command_low", "command_high", "goal", "velocity_command")
PARAMETER_HELP = {
    "bundle": "policy bundle folder or zoo:<name>",
    "runtime": "numpy (default), onnx or torch",
    "state_topic": "sensor_msgs/JointState in (relative names follow the node's namespace)",
    "imu_topic": "sensor_msgs/Imu in, for bundles that observe the base (empty: none)",
    "command_topic": "std_msgs/Float64MultiArray out, one value per joint in `joints` order",
    "diagnostics_topic": "diagnostic_msgs/DiagnosticArray out: timing, interventions, rejected states",
    "diagnostics_period": "seconds between diagnostics (each costs ~0.5-1 ms of the control thread)",
    "estop_topic": "std_msgs/Bool in: true e-stops the node from any state until cleanup (empty: none)",
    "joints": "the robot's joint names in the command controller's order (default: the bundle's)",
    "joint_map": "ROBOT_NAME=POLICY_NAME for robot joints (commanded or observed) named otherwise",
    "state_joints": "JointState names forming qpos/qvel, in order (default: the bundle's state_joints)",
    "period": "control period in seconds (0: the bundle's)",
    "trigger": "state: tick on each fresh JointState; timer: tick on a timer",
    "executor": "auto (events where rclpy has it, else single), events or single",
    "realtime_priority": "SCHED_FIFO priority 1-99 for the node's threads (0: off; needs CAP_SYS_NICE)",
    "stale_timeout": "age of the newest state (from its arrival) beyond which the safe command is sent "
                     "instead of the policy's (0: 1.5 control periods)",
    "max_delta": "largest command change per step, fraction of the command range (inf: none)",
    "safety_limits": "clip to the limits, rate limit and stale check (NaN rejection always stays)",
    "command_low": "per-joint lower command limits in policy order, to tighten the bundle's",
    "command_high": "per-joint upper command limits in policy order, to tighten the bundle's",
    "state_deadline": "requested deadline on the state topic, s (0: none; -1: 2 periods)",
    "command_deadline": "offered deadline on the command topic, s (-1: 2 periods; 0: none)",
    "autostart": "configure and activate at start (else wait for lifecycle transitions)",
    "activate_timeout": "autostart: seconds to wait for a first JointState (0: forever)",
    "pose_topic": "geometry_msgs/PoseStamped in: the tracked object's pose (the cube), for bundles whose "
                  "state_joints name pose_joint's entries (empty: from the JointState)",
    "pose_joint": "the free joint whose entries J:x .. J:qz the pose gives",
    "goal_topic": "geometry_msgs/QuaternionStamped in: a goal task's goal orientation (empty: none)",
    "goal": "a goal task's fixed goal, quaternion [w, x, y, z] (empty: goals drawn from goal_seed, "
            "hold-and-advance)",
    "goal_seed": "seed of the drawn goals",
    "cmd_vel_topic": "geometry_msgs/Twist in: the velocity command (linear.x, linear.y, angular.z) of a "
                     "bundle that observes one (quadruped-walk); empty: velocity_command only",
    "velocity_command": "the velocity command [vx, vy, wz] (m/s, m/s, rad/s) until one comes on "
                        "cmd_vel_topic (empty: 0 0 0, stand)",
    "command_timeout": "seconds without a Twist on cmd_vel_topic after which the velocity command falls "
                       "back to 0 0 0, stand, until the next one (0: off, the last Twist holds)",
}


# --------------------------------------------------------------------------------------------------
# Setup from parameters


def tightened_spec(spec: TaskSpec, low: list[float], high: list[float]) -> TaskSpec:
    """`spec` with its command limits narrowed to [low, high] (empty lists leave them); never widened."""
    action = spec.action
    new_low, new_high = np.array(action.low), np.array(action.high)
    for name, values, pick in (("command_low", low, np.maximum), ("command_high", high, np.minimum)):
        if len(values) == 0:
            continue
        if len(values) != spec.act_dim:
            raise ConfigError(f"{name}: {len(values)} values for {spec.act_dim} joints "
                              f"{list(spec.joint_names)}")
        if name == "command_low":
            new_low = pick(new_low, values)
        else:
            new_high = pick(new_high, values)
    if (new_low > new_high).any():
        raise ConfigError(f"command limits: low {new_low.tolist()} is above high {new_high.tolist()}")
    if np.array_equal(new_low, action.low) and np.array_equal(new_high, action.high):
        return spec
    return dataclasses.replace(spec, action=dataclasses.replace(action, low=tuple(new_low.tolist()),
                                                                high=tuple(new_high.tolist())))


#: Timing records the node keeps (the last ticks), so that a node running for days keeps a fixed memory.
WINDOW = 2048


def build_loop(p: dict[str, Any], node: Any, on_state: Any) -> tuple[ControlLoop, Any]:
    """The control loop and the robot for the parameters `p`, embedded in `node` (robot configured)."""
    from robot_rl.hardware.ros2_robot import Ros2Robot
    from robot_rl.hardware.safety import SafetyConfig, SafetyFilter
    from robot_rl.policies import load

    if not p["bundle"]:
        raise ConfigError("the parameter bundle is not set (a bundle folder or zoo:<name>)")
    if p["trigger"] not in TRIGGERS:
        raise ConfigError(f"trigger: {p['trigger']!r} is not valid; choose one of: {', '.join(TRIGGERS)}")
    policy = load(p["bundle"], runtime=p["runtime"])
    spec = policy.spec
    period = p["period"] or spec.control_period
    if not (math.isfinite(period) and period > 0):
        raise ConfigError(f"period: must be a positive number of seconds, got {period}")
    stale = p["stale_timeout"] or 1.5 * period  # the safe command within 2 periods, with a margin
    safety = SafetyFilter(tightened_spec(spec, list(p["command_low"]), list(p["command_high"])),
                          SafetyConfig(max_delta=p["max_delta"], stale_timeout=stale,
                                       enabled=p["safety_limits"]))
    robot = Ros2Robot(spec, node=node, joints=list(p["joints"]) or None, joint_map=list(p["joint_map"]),
                      state_joints=list(p["state_joints"]), state_topic=p["state_topic"],
                      imu_topic=p["imu_topic"], command_topic=p["command_topic"],
                      state_deadline=p["state_deadline"], command_deadline=p["command_deadline"],
                      period=period, stale_timeout=stale if p["safety_limits"] else math.inf,
                      on_state=on_state, pose_topic=p["pose_topic"], pose_joint=p["pose_joint"],
                      goal_topic=p["goal_topic"], cmd_vel_topic=p["cmd_vel_topic"],
                      velocity_command=list(p["velocity_command"]), command_timeout=p["command_timeout"])
    goals = goal_tracker(spec, seed=p["goal_seed"], goal=list(p["goal"]) or None)
    if goals is not None:  # a goal on the topic replaces the current one
        robot.on_goal = goals.set_goal
    robot.configure()
    loop = ControlLoop(robot, policy, safety, period=period, realtime=True, clock=time.monotonic,
                       window=WINDOW, goals=goals)
    return loop, robot


def coerce_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """Parameter values checked against the defaults' types: numbers as floats, string and number
    lists; a ConfigError naming the parameter otherwise (YAML reads `[y, n]` as booleans: quote names)."""
    out = dict(values)
    for key, default in PARAMETERS.items():
        value = out[key]
        try:
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, float):
                ok = not isinstance(value, bool)
                value = float(value)
            elif isinstance(default, list):
                value = list(value or [])
                kind = float if key in _DOUBLE_ARRAYS else str
                ok = all(isinstance(v, (int, float) if kind is float else str) and not isinstance(v, bool)
                         for v in value)
                value = [kind(v) for v in value]
            else:
                ok = isinstance(value, type(default))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"parameter {key}: {out[key]!r} is not a {_type_name(default, key)}")
        out[key] = value
    check_ranges(out, _RANGES)
    return out


_RANGES: dict[str, tuple[Any, str]] = {
    "period": seconds_range("the bundle's"),
    "stale_timeout": seconds_range("1.5 control periods"),
    "state_deadline": seconds_range("none", "2 control periods"),
    "command_deadline": seconds_range("none", "2 control periods"),
    "diagnostics_period": seconds_range(None),
    "activate_timeout": seconds_range("wait forever"),
    "command_timeout": seconds_range("off: the last Twist holds"),
    "goal_seed": (lambda v: v >= 0, "0 or a positive whole number"),
}


def _type_name(default: Any, key: str) -> str:
    if isinstance(default, list):
        return "list of numbers" if key in _DOUBLE_ARRAYS else "list of strings (quote names like 'y')"
    return {bool: "boolean", float: "number", str: "string"}[type(default)]
