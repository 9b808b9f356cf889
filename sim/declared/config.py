"""A launch file's `task:` mapping, validated into frozen dataclasses before anything is loaded.

Shape (every key but `model`, `control` and `episode_seconds` optional):

    model: robots/arm.urdf            # MJCF or URDF, relative to the launch file
    floating_base: false              # true: give the model's root body a free joint (a legged robot)
    control: {kind: position, kp: 20.0, kd: 0.5, period: 0.02}   # kp/kd may map joint -> value
    joints: [shoulder, elbow]         # policy order; default: every hinge and slide joint
    default_pose: {shoulder: 0.0, elbow: 0.5}
    observations: [joint_pos, joint_vel, last_action]
    rewards: {alive: 1.0, joint_pos_deviation: -0.1, base_height: {weight: -1.0, target: 0.3}}
    terminations: [timeout, {base_height_below: {height: 0.2}}]
    commands: {lin_vel_x: [-1.0, 1.0], resample_seconds: 5}   # velocity commands (legged robots)
    reward_floor: 0.0                 # the summed reward is clipped below at this (legged_gym's)
    episode_seconds: 10

A term is a name, or a one-key mapping name -> options; a reward is weight or {weight, options...}.
Options are numbers, or body names / points where the term reads a body (`body_pos: {body: foot}`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

from robot_rl.errors import ConfigError

CONTROL_KINDS = ("position", "torque")


class Option:
    """The kind of a term option that is not a number: a body name, a list of them, a point."""

    def __init__(self, kind: str, required: bool = True) -> None:
        self.kind, self.required = kind, required

    def __repr__(self) -> str:
        return f"<{self.kind}>"


BODY, BODIES, POINT = Option("body name"), Option("list of body names"), Option("point [x, y, z] in m")
BASE_BODY = Option("body name", required=False)
"""A body name that defaults to the floating base's body."""

# Term name -> {option: default}; None for a required number, an Option for a required name or point.
OBSERVATIONS: dict[str, dict[str, Any]] = {
    "joint_pos": {}, "joint_vel": {}, "last_action": {},
    "projected_gravity": {}, "base_lin_vel": {}, "base_ang_vel": {}, "command": {},
    "body_pos": {"body": BODY},
}
REWARDS: dict[str, dict[str, Any]] = {
    "alive": {}, "joint_pos_deviation": {}, "action_rate": {}, "torque": {}, "joint_limit": {},
    "orientation": {}, "base_height": {"target": None},
    "track_lin_vel_xy": {"sigma": 0.25}, "track_ang_vel_z": {"sigma": 0.25},
    "feet_air_time": {"feet": BODIES, "threshold": 0.5, "force": 1.0},
    "body_distance": {"body": BODY, "target": POINT},
    "lin_vel_z": {}, "ang_vel_xy": {},
}
TERMINATIONS: dict[str, dict[str, Any]] = {
    "timeout": {}, "base_height_below": {"height": None}, "orientation_beyond": {"limit": None},
    "base_contact": {"body": BASE_BODY, "force": 1.0},
}
# Terms that read the floating base (refused for a fixed-base model).
BASE_TERMS = frozenset({"projected_gravity", "base_lin_vel", "base_ang_vel", "base_height", "orientation",
                        "base_height_below", "orientation_beyond", "track_lin_vel_xy", "track_ang_vel_z",
                        "lin_vel_z", "ang_vel_xy"})
# Terms that read the velocity command (they need a `commands:` section).
COMMAND_TERMS = frozenset({"command", "track_lin_vel_xy", "track_ang_vel_z", "feet_air_time"})
TASK_KEYS = ("model", "floating_base", "control", "joints", "default_pose", "observations", "rewards",
             "terminations", "episode_seconds", "commands", "reward_floor")
CONTROL_KEYS = ("kind", "kp", "kd", "period", "torque_limit", "action_scale")
COMMAND_KEYS = ("lin_vel_x", "lin_vel_y", "ang_vel_z", "resample_seconds")


@dataclasses.dataclass(frozen=True)
class Commands:
    """Velocity commands, drawn uniformly per world at its episode start and every `resample_seconds`."""

    lin_vel_x: tuple[float, float] = (0.0, 0.0)
    """Forward velocity range (m/s, base frame)."""
    lin_vel_y: tuple[float, float] = (0.0, 0.0)
    """Lateral velocity range (m/s, base frame, left positive)."""
    ang_vel_z: tuple[float, float] = (0.0, 0.0)
    """Yaw rate range (rad/s)."""
    resample_seconds: float = 10.0
    """Seconds between two draws in an episode."""

    def ranges(self) -> tuple[tuple[float, float], ...]:
        """(low, high) of forward, lateral velocity and yaw rate: the command's three entries."""
        return (self.lin_vel_x, self.lin_vel_y, self.ang_vel_z)


@dataclasses.dataclass(frozen=True)
class Term:
    """One term of the library with its options."""

    name: str
    options: Mapping[str, Any]
    weight: float = 1.0
    """A reward's weight (observations and terminations: 1)."""


@dataclasses.dataclass(frozen=True)
class Control:
    """How the policy's joints are actuated."""

    kind: str
    """"position" (PD targets, rad or m) or "torque" (N·m or N)."""
    period: float
    """Seconds per control period: a whole number of the model's timesteps."""
    kp: float | Mapping[str, float] = 0.0
    """Position gain (N·m/rad), one value or joint -> value; position control only."""
    kd: float | Mapping[str, float] = 0.0
    """Damping (N·m·s/rad), one value or joint -> value."""
    torque_limit: float | Mapping[str, float] | None = None
    """Largest torque (N·m); torque control needs it, position control clamps to it when given."""
    action_scale: float | Mapping[str, float] | None = None
    """Position control: the policy's action in [-1, 1] spans the default pose ± this (rad, within the
    joint's range; legged_gym's target = default + scale * action); None: the joint's whole range."""


@dataclasses.dataclass(frozen=True)
class DeclaredTask:
    """A task as a launch file declares it (nothing loaded yet)."""

    model: str
    """Absolute path of the MJCF or URDF file."""
    control: Control
    episode_seconds: float
    joints: tuple[str, ...] | None = None
    default_pose: Mapping[str, float] = dataclasses.field(default_factory=dict)
    observations: tuple[Term, ...] = ()
    rewards: tuple[Term, ...] = ()
    terminations: tuple[Term, ...] = ()
    floating_base: bool = False
    commands: Commands | None = None
    """The velocity commands (None: the task has none; the command terms then refuse to build)."""
    reward_floor: float | None = None
    """The step's summed reward is clipped below at this (legged_gym's only_positive_rewards is 0.0), so
    that penalties never make ending an episode early pay; None: no clipping."""


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"task.{key}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"task.{key}: must be finite, got {value!r}")
    return float(value)


def _positive(value: Any, key: str) -> float:
    x = _number(value, key)
    if x <= 0:
        raise ConfigError(f"task.{key}: must be positive, got {value!r}")
    return x


def _unknown(given: Mapping[str, Any], valid: tuple[str, ...] | Mapping[str, Any], where: str) -> None:
    for k in given:
        if k not in valid:
            raise ConfigError(f"task{'.' + where if where else ''}: unknown key {k!r}; "
                              f"valid: {', '.join(valid)}")


def _per_joint(value: Any, key: str) -> float | Mapping[str, float]:
    if isinstance(value, Mapping):
        return {str(j): _number(v, f"{key}.{j}") for j, v in value.items()}
    return _number(value, key)


def _terms(value: Any, library: dict[str, dict[str, Any]], key: str,
           weighted: bool = False) -> tuple[Term, ...]:
    """Parse a list of names / one-key mappings (or, weighted, a mapping name -> weight or options)."""
    if weighted:
        if not isinstance(value, Mapping):
            raise ConfigError(f"task.{key}: must map term names to weights, got {value!r}")
        items = list(value.items())
    else:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"task.{key}: must be a list of terms, got {value!r}")
        items = []
        for entry in value:
            if isinstance(entry, str):
                items.append((entry, {}))
            elif isinstance(entry, Mapping) and len(entry) == 1:
                items.append(next(iter(entry.items())))
            else:
                raise ConfigError(f"task.{key}: each term is a name or a one-key mapping name -> options, "
                                  f"got {entry!r}")
    out, seen = [], set()
    for name, raw in items:
        if name not in library:
            raise ConfigError(f"task.{key}: unknown term {name!r}; valid: {', '.join(library)}")
        if name in seen:
            raise ConfigError(f"task.{key}: term {name!r} is given twice")
        seen.add(name)
        weight = 1.0
        if weighted and not isinstance(raw, Mapping):
            raw = {"weight": raw}
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"task.{key}.{name}: options must be a mapping, got {raw!r}")
        raw = dict(raw)
        if weighted:
            if "weight" not in raw:
                raise ConfigError(f"task.{key}.{name}: missing key 'weight'")
            weight = _number(raw.pop("weight"), f"{key}.{name}.weight")
        defaults = library[name]
        _unknown(raw, tuple(defaults) + (("weight",) if weighted else ()), f"{key}.{name}")
        options = {}
        for opt, default in defaults.items():
            required = default is None or (isinstance(default, Option) and default.required)
            if opt not in raw and required:
                raise ConfigError(f"task.{key}.{name}: missing option {opt!r}"
                                  f"{f' ({default.kind})' if isinstance(default, Option) else ''}")
            options[opt] = _option(raw.get(opt, default), default, f"{key}.{name}.{opt}")
        out.append(Term(name, options, weight))
    return tuple(out)


def _option(value: Any, default: Any, key: str) -> Any:
    """A term option's value, of its default's kind: a number, a body name (or None: the base's), names,
    a point."""
    if not isinstance(default, Option):
        return _number(value, key)
    if default is BASE_BODY and value is BASE_BODY:
        return None
    if default.kind == "body name":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"task.{key}: must be a body name, got {value!r}")
        return value
    if default is BODIES:
        names = isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)
        if not names or not value:
            raise ConfigError(f"task.{key}: must be a non-empty list of body names, got {value!r}")
        return tuple(value)
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ConfigError(f"task.{key}: must be a point [x, y, z] (m), got {value!r}")
    return tuple(_number(v, f"{key}[{i}]") for i, v in enumerate(value))


def _range(value: Any, key: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"task.{key}: must be a range [low, high], got {value!r}")
    lo, hi = _number(value[0], f"{key}[0]"), _number(value[1], f"{key}[1]")
    if lo > hi:
        raise ConfigError(f"task.{key}: low {lo} is above high {hi}")
    return lo, hi


def _commands(value: Any) -> Commands | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"task.commands: must be a mapping with keys {', '.join(COMMAND_KEYS)}")
    _unknown(value, COMMAND_KEYS, "commands")
    ranges = {k: _range(value[k], f"commands.{k}") for k in COMMAND_KEYS[:3] if k in value}
    if not ranges:
        raise ConfigError(f"task.commands: give at least one range of {', '.join(COMMAND_KEYS[:3])}")
    seconds = _positive(value.get("resample_seconds", 10.0), "commands.resample_seconds")
    return Commands(resample_seconds=seconds, **ranges)


def parse_task(data: Any, base_dir: str) -> DeclaredTask:
    """Validate a `task:` mapping; `model` is resolved relative to `base_dir` (the launch file's folder)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"task: a declared task is a mapping, got {data!r}")
    _unknown(data, TASK_KEYS, "")
    for key in ("model", "control", "episode_seconds"):
        if key not in data:
            raise ConfigError(f"task: missing key {key!r}; keys: {', '.join(TASK_KEYS)}")
    if not isinstance(data["model"], str) or not data["model"]:
        raise ConfigError(f"task.model: must be a file path, got {data['model']!r}")
    model = os.path.normpath(os.path.join(base_dir, data["model"]))
    c = data["control"]
    if not isinstance(c, Mapping):
        raise ConfigError(f"task.control: must be a mapping with keys {', '.join(CONTROL_KEYS)}")
    _unknown(c, CONTROL_KEYS, "control")
    if c.get("kind") not in CONTROL_KINDS:
        raise ConfigError(f"task.control.kind: {c.get('kind')!r} is not valid; choose one of: "
                          f"{', '.join(CONTROL_KINDS)}")
    if "period" not in c:
        raise ConfigError("task.control: missing key 'period' (seconds per control period)")
    if c["kind"] == "torque" and "torque_limit" not in c:
        raise ConfigError("task.control: torque control needs 'torque_limit' (N·m)")
    if c["kind"] == "position" and "kp" not in c:
        raise ConfigError("task.control: position control needs 'kp' (N·m/rad)")
    control = Control(kind=c["kind"], period=_positive(c["period"], "control.period"),
                      kp=_per_joint(c.get("kp", 0.0), "control.kp"),
                      kd=_per_joint(c.get("kd", 0.0), "control.kd"),
                      torque_limit=None if c.get("torque_limit") is None
                      else _per_joint(c["torque_limit"], "control.torque_limit"),
                      action_scale=None if c.get("action_scale") is None
                      else _per_joint(c["action_scale"], "control.action_scale"))
    if control.action_scale is not None and c["kind"] != "position":
        raise ConfigError("task.control.action_scale: spans position targets around the default pose; "
                          "position control only")
    joints = data.get("joints")
    if joints is not None:
        if not isinstance(joints, (list, tuple)) or not joints or not all(isinstance(j, str) for j in joints):
            raise ConfigError(f"task.joints: must be a non-empty list of joint names, got {joints!r}")
        if len(set(joints)) != len(joints):
            raise ConfigError(f"task.joints: a joint is listed twice in {list(joints)}")
        joints = tuple(joints)
    pose = data.get("default_pose", {})
    if not isinstance(pose, Mapping):
        raise ConfigError(f"task.default_pose: must map joint names to positions, got {pose!r}")
    floating = data.get("floating_base", False)
    if not isinstance(floating, bool):
        raise ConfigError(f"task.floating_base: must be true or false, got {floating!r}")
    commands = _commands(data.get("commands"))
    declared = DeclaredTask(
        model=model, control=control, episode_seconds=_positive(data["episode_seconds"], "episode_seconds"),
        joints=joints, default_pose={str(j): _number(v, f"default_pose.{j}") for j, v in pose.items()},
        observations=_terms(data.get("observations", ["joint_pos", "joint_vel"]), OBSERVATIONS,
                            "observations"),
        rewards=_terms(data.get("rewards", {"alive": 1.0}), REWARDS, "rewards", weighted=True),
        terminations=_terms(data.get("terminations", ["timeout"]), TERMINATIONS, "terminations"),
        floating_base=floating, commands=commands,
        reward_floor=None if data.get("reward_floor") is None else _number(data["reward_floor"],
                                                                           "reward_floor"))
    if commands is None:
        for where, group in (("observations", declared.observations), ("rewards", declared.rewards)):
            for t in group:
                if t.name in COMMAND_TERMS:
                    raise ConfigError(f"task.{where}.{t.name}: reads the velocity command, but the task has "
                                      f"no 'commands' section (keys: {', '.join(COMMAND_KEYS)})")
    return declared
