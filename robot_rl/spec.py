"""The task spec: what a policy observes and commands, shared by simulation, policy bundles and robots.

A `TaskSpec` names the joints (in policy order), lists the observation as named terms over *state
fields* (plain named arrays such as `qpos`, `qvel`, or a dm_control observation key), and says what the
policy's normalised action in [-1, 1] means on the robot. `ObservationBuilder` turns a state mapping
into the observation vector. The simulator builds every observation through it, and so does the
hardware layer from a robot's state: the observation a policy sees in training is, by construction,
the one it sees on the robot.

Conventions (fixed, because a bundle's manifest stores the spec):
- A state field is flattened in C (row-major) order; an `ObsTerm` picks `indices` of that flat array
  (`None`: the whole field), makes them relative to a goal (`relative`), subtracts `offset`, expresses
  them in a body's frame (`frame`: consecutive 3-vectors rotated by the inverse of a quaternion read
  from the state), then applies `transform` (sin/cos element-wise; "gravity": a quaternion -> the
  unit gravity direction in its frame), then `clip` (in the transformed field's units), then
  multiplies by `scale`. With `history` > 1 the term holds that many frames,
  newest first; after `reset()` the first frame fills every slot.
- Actions: robot = offset + scale * action, clipped to [low, high] (robot units per joint: N·m or N
  for torques, rad or m for positions, rad/s or m/s for velocities). NaN passes through unchanged:
  rejecting it is the safety filter's job.
- A "position_delta" action is relative: each step moves the joints' position targets,
  `target = clip(target + scale * clip(action, -1, 1), low, high)` (scale: rad or m per step for a full
  action; offset 0; [low, high] the target bounds), and the targets start at the measured joint
  positions (clipped) when an episode or an activation starts. The observation may read the targets and
  the last (clipped) action as the state fields `joint_targets` and `last_action`: whoever integrates
  supplies them. `TargetIntegrator` is the one implementation, used by the simulator and by the robot's
  control loop alike; its safe action is zero, i.e. hold the current targets.
- A "discrete" action (n choices, e.g. CartPole's push left/right) is one command, the action index
  0 … n−1: low 0, high n−1, scale 1, offset 0, so the plain form needs nothing new. Its robot command
  is the index itself; a non-integer, NaN or out-of-range index is refused (an index cannot be clipped
  to a neighbouring action without changing its meaning).
- In `to_dict`, ±inf (an unlimited joint, a one-sided clip) is written as null, so a manifest is
  strict JSON.

This module imports numpy and the standard library only: a robot computer needs nothing else.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any, cast

import numpy as np

TRANSFORMS = ("none", "sin", "cos", "gravity")
# How a term relates to a per-episode goal (a state field listed in `TaskSpec.goal_fields`).
RELATIVE = ("none", "position", "orientation_quat", "orientation_6d")
ACTION_KINDS = ("torque", "position", "velocity", "discrete", "position_delta")
# The state fields a relative ("position_delta") action's integrator supplies: targets, last action.
RELATIVE_ACTION_FIELDS = ("joint_targets", "last_action")
# Relative tolerance for "control_period is a whole number of physics steps" (float round-off only).
_PERIOD_RTOL = 1e-9


class SpecError(ValueError):
    """A task spec, a serialised spec, or a state given to it is malformed; the message names the field."""


# --------------------------------------------------------------------------------------------------
# The spec


@dataclasses.dataclass(frozen=True)
class ObsTerm:
    """One named piece of the observation, read from one state field."""

    name: str
    """Label of the term (unique within a spec), e.g. "joint_vel"."""
    source: str
    """The state field it reads, e.g. "qvel", "cfrc_ext" or a dm_control observation key."""
    indices: tuple[int, ...] | None = None
    """Which elements of the flattened field, in this order; None for the whole field."""
    transform: str = "none"
    """"none", "sin" or "cos", applied element-wise (e.g. to hinge angles in radians)."""
    scale: float = 1.0
    """Multiplies the (transformed, clipped) values."""
    clip: tuple[float, float] | None = None
    """(low, high) applied after the transform and before the scale; None for no clipping."""
    history: int = 1
    """Frames stacked, newest first; 1 for the current frame only."""
    relative: str = "none"
    """A goal term: "position" (measured minus goal, same units), "orientation_quat" (the error
    quaternion conj(goal) * measured, w x y z, w >= 0) or "orientation_6d" (the first two columns of the
    error's rotation matrix); "none" for a plain term. Quaternions are MuJoCo's w x y z."""
    goal: str | None = None
    """The goal state field a goal term is relative to (one of the spec's `goal_fields`)."""
    goal_indices: tuple[int, ...] | None = None
    """Which elements of the goal field (None: all); as many as `indices` selects (4 for orientations)."""
    offset: tuple[float, ...] | None = None
    """Subtracted from the selected values (e.g. a joint's default position, rad); as many as selected."""
    frame: str | None = None
    """The state field holding the unit quaternion (w x y z, world frame) of the body whose frame the
    values are expressed in (e.g. a floating base's orientation in `qpos`): each consecutive 3-vector v
    becomes R(q)^T v. None: the values as the field holds them."""
    frame_indices: tuple[int, ...] | None = None
    """The 4 elements of `frame` that are the quaternion (w x y z)."""

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and self.name != "", "name", "must be a non-empty string")
        _check(isinstance(self.source, str) and self.source != "", "source", "must be a non-empty string")
        if self.indices is not None:
            idx = _int_tuple(self.indices, "indices")
            _check(len(idx) > 0, "indices", "must select at least one element (or be null for all)")
            _check(all(i >= 0 for i in idx), "indices", f"must be non-negative, got {list(idx)}")
            object.__setattr__(self, "indices", idx)
        _check(self.transform in TRANSFORMS, "transform",
               f"{self.transform!r} is not valid; choose one of: {', '.join(TRANSFORMS)}")
        scale = _number(self.scale, "scale")
        _check(math.isfinite(scale), "scale", f"must be finite, got {scale}")
        object.__setattr__(self, "scale", scale)
        if self.clip is not None:
            clip = _float_tuple(self.clip, "clip")
            _check(len(clip) == 2 and clip[0] <= clip[1], "clip",
                   f"must be (low, high) with low <= high, got {list(clip)}")
            object.__setattr__(self, "clip", clip)
        _check(isinstance(self.history, int) and not isinstance(self.history, bool) and self.history >= 1,
               "history", f"must be an integer >= 1, got {self.history!r}")
        _check(self.relative in RELATIVE, "relative",
               f"{self.relative!r} is not valid; choose one of: {', '.join(RELATIVE)}")
        self._check_frame()
        if self.relative == "none":
            _check(self.goal is None and self.goal_indices is None, "goal",
                   f"names a goal field ({self.goal!r}) but relative is 'none'; set relative to one of: "
                   f"{', '.join(RELATIVE[1:])}")
            return
        _check(isinstance(self.goal, str) and self.goal != "", "goal",
               f"a {self.relative} term needs the goal state field it is relative to, got {self.goal!r}")
        if self.goal_indices is not None:
            gidx = _int_tuple(self.goal_indices, "goal_indices")
            _check(len(gidx) > 0 and all(i >= 0 for i in gidx), "goal_indices",
                   f"must be non-negative and select at least one element, got {list(gidx)}")
            object.__setattr__(self, "goal_indices", gidx)
        if self.relative != "position":
            for key in ("indices", "goal_indices"):
                sel = getattr(self, key)
                _check(sel is None or len(sel) == 4, key,
                       f"an orientation term reads one quaternion (w x y z): 4 indices, got {sel}")

    def _check_frame(self) -> None:
        """The offset, frame and gravity options: each one checked where the term is made."""
        if self.offset is not None:
            offset = _float_tuple(self.offset, "offset")
            _check(len(offset) > 0 and all(math.isfinite(v) for v in offset), "offset",
                   f"must be finite numbers, one per selected element, got {list(offset)}")
            _check(self.relative in ("none", "position"), "offset",
                   f"an offset applies to plain or position terms, not {self.relative!r}")
            object.__setattr__(self, "offset", offset)
        if self.frame is None:
            _check(self.frame_indices is None, "frame_indices", "given without a frame field")
        else:
            _check(isinstance(self.frame, str) and self.frame != "", "frame",
                   f"must name the state field holding the frame's quaternion, got {self.frame!r}")
            fidx = _int_tuple(self.frame_indices if self.frame_indices is not None else (), "frame_indices")
            _check(len(fidx) == 4 and all(i >= 0 for i in fidx), "frame_indices",
                   f"a frame is one quaternion (w x y z): 4 non-negative indices, got {list(fidx)}")
            _check(self.relative in ("none", "position"), "frame",
                   f"a frame rotates 3-vectors, not a {self.relative!r} term")
            object.__setattr__(self, "frame_indices", fidx)
        if self.transform == "gravity":
            _check(self.indices is not None and len(self.indices) == 4 and self.relative == "none"
                   and self.frame is None and self.offset is None, "transform",
                   "'gravity' reads one quaternion (w x y z): 4 indices, no goal, frame or offset")

    def width(self, field_size: int) -> int:
        """Elements of one frame of this term, given the size of its source field."""
        if self.transform == "gravity":
            return 3
        if self.relative == "orientation_quat":
            return 4
        if self.relative == "orientation_6d":
            return 6
        return field_size if self.indices is None else len(self.indices)


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """What the policy's action means on the robot: per joint, or one index of n discrete choices."""

    kind: str
    """"torque", "position" or "velocity": the command a joint receives; "discrete": an action index;
    "position_delta": a change of the joint's position target (integrated, see `TargetIntegrator`)."""
    low: tuple[float, ...]
    """Lowest command per joint, robot units (-inf if unbounded); position_delta: lowest target."""
    high: tuple[float, ...]
    """Highest command per joint, robot units (+inf if unbounded); position_delta: highest target."""
    scale: tuple[float, ...]
    """robot = offset + scale * action; position_delta: target change per step for action 1 (rad or m)."""
    offset: tuple[float, ...]
    """Command for action 0, robot units; position_delta: 0 (action 0 holds the targets)."""

    def __post_init__(self) -> None:
        _check(self.kind in ACTION_KINDS, "kind",
               f"{self.kind!r} is not valid; choose one of: {', '.join(ACTION_KINDS)}")
        for key in ("low", "high", "scale", "offset"):
            object.__setattr__(self, key, _float_tuple(getattr(self, key), key))
        n = len(self.low)
        _check(n > 0, "low", "must have one entry per joint (at least one)")
        for key in ("high", "scale", "offset"):
            _check(len(getattr(self, key)) == n, key, f"has {len(getattr(self, key))} entries, low has {n}")
        for i, (lo, hi) in enumerate(zip(self.low, self.high, strict=True)):
            _check(lo <= hi, f"low[{i}]", f"{lo} is above high[{i}] = {hi}")
        for key in ("scale", "offset"):
            bad = [v for v in getattr(self, key) if not math.isfinite(v)]
            _check(not bad, key, f"must be finite, got {bad[0] if bad else None}")
        if self.kind == "position_delta":
            _check(all(math.isfinite(v) for v in (*self.low, *self.high)), "low",
                   "a position_delta action's target bounds (low, high) must be finite")
            _check(all(v > 0 for v in self.scale), "scale",
                   f"a position_delta action's per-step scale must be > 0, got {list(self.scale)}")
            _check(all(v == 0 for v in self.offset), "offset",
                   f"a position_delta action has no offset (action 0 holds the targets): zeros, got "
                   f"{list(self.offset)}")
        if self.kind == "discrete":
            _check(n == 1, "low", f"a discrete action is one index: one entry each, got {n}")
            _check(self.low[0] == 0.0, "low", f"a discrete action's first index is 0, got {self.low[0]}")
            top = self.high[0]
            _check(math.isfinite(top) and top == int(top) and top >= 1, "high",
                   f"the last action index n - 1 must be a whole number >= 1, got {top}")
            _check(self.scale == (1.0,) and self.offset == (0.0,), "scale",
                   f"a discrete action is an index, not scaled: scale [1], offset [0], got "
                   f"{list(self.scale)} and {list(self.offset)}")

    @classmethod
    def discrete(cls, n: int) -> ActionSpec:
        """n discrete actions: the policy picks an index 0 … n−1, which is also the robot's command."""
        _check(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 2, "num_actions",
               f"must be an integer >= 2, got {n!r}")
        return cls(kind="discrete", low=(0.0,), high=(float(n - 1),), scale=(1.0,), offset=(0.0,))

    @classmethod
    def position_delta(cls, low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray,
                       rate: float) -> ActionSpec:
        """Relative position targets within [low, high]: a full action moves a target by `rate` times
        its joint's range (high - low) per step."""
        lo = np.asarray(low, dtype=np.float64)
        hi = np.asarray(high, dtype=np.float64)
        _check(isinstance(rate, (int, float)) and 0 < rate <= 1, "rate",
               f"must be a fraction of the joint range in (0, 1], got {rate!r}")
        return cls(kind="position_delta", low=tuple(lo.tolist()), high=tuple(hi.tolist()),
                   scale=tuple((rate * (hi - lo)).tolist()), offset=(0.0,) * len(lo))

    @property
    def is_discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def is_relative(self) -> bool:
        """True for "position_delta": the action changes targets that someone must integrate."""
        return self.kind == "position_delta"

    @property
    def command_kind(self) -> str:
        """What a joint receives: the kind, or "position" (the integrated target) for a relative one."""
        return "position" if self.is_relative else self.kind

    def targets(self) -> ActionSpec:
        """The absolute command a robot receives: for position_delta, position targets over [low, high]
        (what a safety filter and a backend check); any other kind, itself."""
        if not self.is_relative:
            return self
        return ActionSpec.from_bounds("position", self.low, self.high)

    @property
    def num_actions(self) -> int:
        """Number of choices of a discrete action (a SpecError for a continuous one)."""
        _check(self.is_discrete, "num_actions", f"a {self.kind} action is continuous, not discrete")
        return int(self.high[0]) + 1

    @classmethod
    def from_bounds(cls, kind: str, low: Sequence[float] | np.ndarray,
                    high: Sequence[float] | np.ndarray) -> ActionSpec:
        """The spec that maps [-1, 1] linearly onto [low, high] (both finite)."""
        lo = np.asarray(low, dtype=np.float64)
        hi = np.asarray(high, dtype=np.float64)
        return cls(kind=kind, low=tuple(lo.tolist()), high=tuple(hi.tolist()),
                   scale=tuple(((hi - lo) / 2).tolist()), offset=tuple(((hi + lo) / 2).tolist()))

    @property
    def dim(self) -> int:
        """Number of joints commanded."""
        return len(self.low)

    @cached_property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`(scale, offset, low, high)` as read-only float64 arrays `(act_dim,)`, made once: what
        every path from a normalised action to robot units multiplies, adds and clips with."""
        scale, offset, low, high = (np.array(getattr(self, k), dtype=np.float64)
                                    for k in ("scale", "offset", "low", "high"))
        for a in (scale, offset, low, high):
            a.flags.writeable = False
        return scale, offset, low, high

    @property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Old private name of `arrays` (hardware/ still uses it)."""
        return self.arrays


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything a policy and a robot must agree on. Validated on construction."""

    name: str
    """Task id, e.g. "Hopper-v5" or "dmc:walker-walk"."""
    joint_names: tuple[str, ...]
    """Commanded joints, in the policy's action order."""
    observation: tuple[ObsTerm, ...]
    """The observation's terms, concatenated in this order."""
    action: ActionSpec
    """Meaning of the policy's action."""
    joint_limits: tuple[tuple[float, float], ...]
    """Position limits per joint (rad or m), ±inf where unlimited."""
    control_period: float
    """Seconds between two policy actions."""
    physics_dt: float
    """Simulator step in seconds; control_period is a whole number of them."""
    state_fields: Mapping[str, int]
    """Name -> size (elements, flattened) of every state field the observation reads."""
    state_joints: tuple[str, ...] = ()
    """The robot joints whose positions form `qpos` and velocities `qvel`, in that order: every joint
    a driver must publish (a robot's JointState is matched to these by name), not only the commanded
    ones. A free joint J is the entries `J:x J:y J:z J:qw J:qx J:qy J:qz`, a ball joint `J:qw .. J:qz`;
    a `:qw` entry has no velocity (skipped in `qvel`). Empty: not named (older bundles)."""
    goal_fields: tuple[str, ...] = ()
    """The state fields that are a per-episode target the task draws (a position, a quaternion), not a
    measurement: a robot supplies them with its measured state. Goal terms read them."""

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and self.name != "", "name", "must be a non-empty string")
        names = _str_tuple(self.joint_names, "joint_names")
        _check(len(set(names)) == len(names), "joint_names", f"must be unique, got {list(names)}")
        object.__setattr__(self, "joint_names", names)
        _check(isinstance(self.action, ActionSpec), "action", "must be an ActionSpec")
        _check(self.action.dim == len(names), "action",
               f"commands {self.action.dim} joints but joint_names has {len(names)}")
        limits = []
        for i, pair in enumerate(_as_sequence(self.joint_limits, "joint_limits")):
            lo, hi = _pair(pair, f"joint_limits[{i}]")
            _check(lo <= hi, f"joint_limits[{i}]", f"low {lo} is above high {hi}")
            limits.append((lo, hi))
        _check(len(limits) == len(names), "joint_limits",
               f"has {len(limits)} entries for {len(names)} joints")
        object.__setattr__(self, "joint_limits", tuple(limits))

        fields = {}
        for key, size in _as_mapping(self.state_fields, "state_fields").items():
            _check(isinstance(key, str) and key != "", "state_fields",
                   f"field names must be strings, got {key!r}")
            _check(bool(isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 1),
                   f"state_fields.{key}", f"must be a positive integer size, got {size!r}")
            fields[key] = int(size)
        object.__setattr__(self, "state_fields", types.MappingProxyType(fields))
        self._check_state_joints(fields)

        goals = _str_tuple(self.goal_fields, "goal_fields")
        for g in goals:
            _check(g in fields, "goal_fields", f"{g!r} is not in state_fields ({', '.join(fields)})")
        object.__setattr__(self, "goal_fields", goals)

        terms = tuple(_as_sequence(self.observation, "observation"))
        _check(len(terms) > 0, "observation", "must have at least one term")
        seen: set[str] = set()
        for i, term in enumerate(terms):
            where = f"observation[{i}]"
            _check(isinstance(term, ObsTerm), where, "must be an ObsTerm")
            _check(term.name not in seen, f"{where}.name", f"{term.name!r} is used twice")
            seen.add(term.name)
            _check(term.source in fields, f"{where}.source",
                   f"{term.source!r} is not in state_fields ({', '.join(fields)})")
            if term.indices is not None:
                top = max(term.indices)
                _check(top < fields[term.source], f"{where}.indices",
                       f"index {top} is out of range for field {term.source!r} of size {fields[term.source]}")
            measured = fields[term.source] if term.indices is None else len(term.indices)
            if term.offset is not None:
                _check(len(term.offset) == measured, f"{where}.offset",
                       f"has {len(term.offset)} entries for {measured} selected elements")
            if term.frame is not None:
                _check(term.frame in fields, f"{where}.frame",
                       f"{term.frame!r} is not in state_fields ({', '.join(fields)})")
                assert term.frame_indices is not None  # ObsTerm checks: a frame has its 4 indices
                _check(max(term.frame_indices) < fields[term.frame], f"{where}.frame_indices",
                       f"index {max(term.frame_indices)} is out of range for field {term.frame!r} of "
                       f"size {fields[term.frame]}")
                _check(measured % 3 == 0, f"{where}.frame",
                       f"rotates 3-vectors: the term selects {measured} elements, not a multiple of 3")
            if term.relative != "none":
                _check(term.goal in goals, f"{where}.goal",
                       f"{term.goal!r} is not one of goal_fields ({', '.join(goals) or 'none declared'})")
                size = fields[term.goal]
                gsel = term.goal_indices if term.goal_indices is not None else tuple(range(size))
                _check(max(gsel) < size, f"{where}.goal_indices",
                       f"index {max(gsel)} is out of range for goal field {term.goal!r} of size {size}")
                if term.relative == "position":
                    _check(len(gsel) == measured, f"{where}.goal_indices",
                           f"selects {len(gsel)} goal elements for {measured} measured ones")
                else:
                    _check(measured == 4 and len(gsel) == 4, f"{where}.indices",
                           f"an orientation term compares two quaternions (w x y z): 4 elements each, got "
                           f"{measured} measured and {len(gsel)} of the goal")
        object.__setattr__(self, "observation", terms)

        for key in ("control_period", "physics_dt"):
            value = _number(getattr(self, key), key)
            _check(math.isfinite(value) and value > 0, key,
                   f"must be a positive number of seconds, got {value}")
            object.__setattr__(self, key, value)
        steps = round(self.control_period / self.physics_dt)
        error = abs(steps * self.physics_dt - self.control_period)
        _check(steps >= 1 and error <= _PERIOD_RTOL * self.control_period,
               "control_period", f"{self.control_period} s is not a whole number of physics steps of "
               f"{self.physics_dt} s")

    def _check_state_joints(self, fields: Mapping[str, int]) -> None:
        joints = _str_tuple(self.state_joints, "state_joints")
        object.__setattr__(self, "state_joints", joints)
        if not joints:
            return
        _check(len(set(joints)) == len(joints), "state_joints", f"must be unique, got {list(joints)}")
        counts = {"qpos": len(joints), "qvel": sum(not j.endswith(":qw") for j in joints)}
        _check(any(f in fields for f in counts), "state_joints",
               "name the joints of qpos/qvel; this spec reads neither")
        for field, count in counts.items():
            _check(field not in fields or fields[field] == count, "state_joints",
                   f"give {count} {field} entries, state_fields.{field} has {fields.get(field)}")

    # ---- derived
    @property
    def obs_dim(self) -> int:
        """Length of the observation vector."""
        return sum(t.width(self.state_fields[t.source]) * t.history for t in self.observation)

    @property
    def act_dim(self) -> int:
        """Length of the action vector (= number of joints; 1 for a discrete action, its index)."""
        return len(self.joint_names)

    @property
    def physics_steps(self) -> int:
        """Physics steps per control period."""
        return round(self.control_period / self.physics_dt)

    def observation_slices(self) -> dict[str, slice]:
        """Where each term lies in the observation vector (all its history frames)."""
        out, start = {}, 0
        for t in self.observation:
            stop = start + t.width(self.state_fields[t.source]) * t.history
            out[t.name] = slice(start, stop)
            start = stop
        return out

    # ---- plain form (manifest.json)
    def to_dict(self) -> dict[str, Any]:
        """A plain, strict-JSON-able dict; `TaskSpec.from_dict(spec.to_dict()) == spec`
        (`state_joints` only where named)."""
        a = self.action
        out: dict[str, Any] = {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "observation": [_term_to_dict(t) for t in self.observation],
            "action": {"kind": a.kind, "low": _enc_list(a.low), "high": _enc_list(a.high),
                       "scale": list(a.scale), "offset": list(a.offset)},
            "joint_limits": [_enc_list(pair) for pair in self.joint_limits],
            "control_period": self.control_period,
            "physics_dt": self.physics_dt,
            "state_fields": dict(self.state_fields),
            **({"goal_fields": list(self.goal_fields)} if self.goal_fields else {}),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
        }
        if self.state_joints:
            out["state_joints"] = list(self.state_joints)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Rebuild a spec from `to_dict`'s form; errors name the bad field (e.g. `observation[2].scale`)."""
        required = ("name", "joint_names", "observation", "action", "joint_limits", "control_period",
                    "physics_dt", "state_fields")
        optional = ("goal_fields", "obs_dim", "act_dim", "state_joints")
        d = _fields(data, "task spec", required, optional=optional)
        terms = _as_sequence(d["observation"], "observation")
        obs = [_term_from_dict(t, f"observation[{i}]") for i, t in enumerate(terms)]
        a = _fields(d["action"], "action", ("kind", "low", "high", "scale", "offset"))
        action = _nested("action", lambda: ActionSpec(
            kind=a["kind"], low=tuple(_dec_list(a["low"], "low", -math.inf)),
            high=tuple(_dec_list(a["high"], "high", math.inf)), scale=a["scale"], offset=a["offset"]))
        limits: list[Any] = [_dec_list(p, f"joint_limits[{i}]", None) for i, p in
                  enumerate(_as_sequence(d["joint_limits"], "joint_limits"))]
        spec = cls(name=d["name"], joint_names=d["joint_names"], observation=tuple(obs), action=action,
                   joint_limits=tuple(limits), control_period=d["control_period"], physics_dt=d["physics_dt"],
                   state_fields=d["state_fields"], state_joints=d.get("state_joints", ()),
                   goal_fields=tuple(d.get("goal_fields", ())))
        for key in ("obs_dim", "act_dim"):
            if key in d:
                _check(d[key] == getattr(spec, key), key,
                       f"says {d[key]!r} but the terms give {getattr(spec, key)}")
        return spec

    def __reduce__(self) -> tuple[Any, ...]:  # pickle / deepcopy through the plain form
        return (TaskSpec.from_dict, (self.to_dict(),))


# --------------------------------------------------------------------------------------------------
# Observations and actions at run time


class ObservationBuilder:
    """Builds observations from state mappings for one spec, keeping the history frames.

    Index arrays and output views are precomputed, so `build` costs a few numpy calls per term.
    """

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self._buffer = np.zeros(spec.obs_dim, dtype=np.float64)
        self._terms = []
        start = 0
        for t in spec.observation:
            size = spec.state_fields[t.source]
            width = t.width(size)
            select: slice | np.ndarray | None = None
            if t.indices is not None:
                idx = np.array(t.indices, dtype=np.intp)
                step = idx[1] - idx[0] if len(idx) > 1 else 1
                if step > 0 and np.array_equal(idx, idx[0] + step * np.arange(len(idx))):
                    select = slice(int(idx[0]), int(idx[-1]) + 1, int(step))  # a view, no copy
                else:
                    select = idx
            frame = self._buffer[start:start + width]
            shift = None
            if t.history > 1:  # (destination, source) for moving every frame one slot older
                shift = (self._buffer[start + width:start + width * t.history],
                         self._buffer[start:start + width * (t.history - 1)])
            fill = [self._buffer[start + k * width:start + (k + 1) * width] for k in range(1, t.history)]
            func = {"none": None, "sin": np.sin, "cos": np.cos, "gravity": None}[t.transform]
            clip = t.clip
            goal = None  # (relative kind, goal field, its size, its selection)
            if t.relative != "none":
                assert t.goal is not None  # ObsTerm checks: a relative term names its goal field
                gsize = spec.state_fields[t.goal]
                gsel = None if t.goal_indices is None else np.array(t.goal_indices, dtype=np.intp)
                goal = (t.relative, t.goal, gsize, gsel)
            express = None  # (offset, frame field, its size, quaternion indices, gravity)
            if t.offset is not None or t.frame is not None or t.transform == "gravity":
                express = (None if t.offset is None else np.array(t.offset), t.frame,
                           None if t.frame is None else spec.state_fields[t.frame],
                           None if t.frame_indices is None else np.array(t.frame_indices, dtype=np.intp),
                           t.transform == "gravity")
            self._terms.append((t.name, t.source, size, select, func, clip, t.scale, frame, shift, fill,
                                goal, express))
            start += width * t.history
        self._primed = False

    def reset(self) -> None:
        """Forget the history: the next `build` fills every history slot with its frame."""
        self._primed = False

    def build(self, state: Mapping[str, Any]) -> np.ndarray:
        """The observation `(obs_dim,)` float64 for `state` (field name -> array); a fresh array."""
        primed = self._primed
        for name, source, size, select, func, clip, scale, frame, shift, fill, goal, express in self._terms:
            flat = _state_field(state, source, size, name)
            values = flat if select is None else flat[select]
            if goal is not None:
                kind, gname, gsize, gsel = goal
                target = _state_field(state, gname, gsize, name)
                values = relative_to_goal(kind, values, target if gsel is None else target[gsel])
            if express is not None:
                offset, fname, fsize, fsel, gravity = express
                quat = None
                if fname is not None and fsize is not None:
                    quat = _state_field(state, fname, fsize, name)[fsel]
                values = express_in_frame(values, offset, quat, gravity)
            if shift is not None and primed:
                shift[0][...] = shift[1]  # numpy handles the overlap
            if func is not None:
                func(values, out=frame)
            else:
                frame[...] = values
            if clip is not None:  # np.maximum/minimum: same result as np.clip, a third of its overhead
                np.maximum(frame, clip[0], out=frame)
                np.minimum(frame, clip[1], out=frame)
            if scale != 1.0:
                frame *= scale
            if not primed:
                for slot in fill:
                    slot[...] = frame
        self._primed = True
        return self._buffer.copy()


def _state_field(state: Mapping[str, Any], source: str, size: int, term: str) -> np.ndarray:
    """One state field, flattened, checked against the size the spec declares."""
    try:
        raw = state[source]
    except KeyError:
        raise SpecError(f"state has no field {source!r} (read by observation term {term!r}); "
                        f"it has: {', '.join(map(str, state))}") from None
    x = np.asarray(raw)
    if x.size != size:
        raise SpecError(f"state field {source!r} has {x.size} elements (shape {x.shape}); "
                        f"the spec expects {size}")
    return x.reshape(-1)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of quaternions `(..., 4)` (w x y z)."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_error(measured: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The rotation from the goal to the measured orientation, conj(goal) * measured, unit, w >= 0.

    `(..., 4)` w x y z. Identity (1, 0, 0, 0) when they agree; q and -q are the same rotation, so the sign
    is fixed (w >= 0) to give a policy one answer per orientation.
    """
    g = np.asarray(goal, dtype=np.float64) * np.array([1.0, -1.0, -1.0, -1.0])
    q = quat_multiply(g, measured)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def rotation_6d(quat: np.ndarray) -> np.ndarray:
    """The first two columns of the rotation matrix of unit quaternions `(..., 4)` → `(..., 6)`
    (column 0 then column 1): a continuous rotation representation (Zhou et al. 2019)."""
    w, x, y, z = np.moveaxis(np.asarray(quat, dtype=np.float64), -1, 0)
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y),
                     2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)], axis=-1)


def rotate_into_frame(quat: np.ndarray, v: np.ndarray) -> np.ndarray:
    """World-frame 3-vectors `(..., 3k)` in the frame of unit quaternions `(..., 4)` (w x y z): R(q)^T v
    for each consecutive 3-vector, any batch shape."""
    q = np.asarray(quat, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    vv = v.reshape(*v.shape[:-1], -1, 3)
    w, u = q[..., None, :1], q[..., None, 1:]
    # Rotation by the conjugate (w, -u): v - 2w (u x v) + 2 u x (u x v).
    uv = np.cross(u, vv)
    return (vv - 2.0 * w * uv + 2.0 * np.cross(u, uv)).reshape(v.shape)


def gravity_in_frame(quat: np.ndarray) -> np.ndarray:
    """The unit gravity direction (0, 0, -1) in the frame of unit quaternions `(..., 4)` → `(..., 3)`:
    (0, 0, -1) for a body upright, whatever its heading (minus the rotation matrix's third row)."""
    w, x, y, z = np.moveaxis(np.asarray(quat, dtype=np.float64), -1, 0)
    return np.stack([2 * (w * y - x * z), -2 * (y * z + w * x), 2 * (x * x + y * y) - 1], axis=-1)


def express_in_frame(values: np.ndarray, offset: np.ndarray | None, quat: np.ndarray | None,
                     gravity: bool) -> np.ndarray:
    """A term's values after its offset, its frame and its gravity transform (`ObsTerm`'s order), over
    the last axis of any batch: the one definition a robot's builder and the engine's batched one share."""
    if offset is not None:
        values = np.asarray(values, dtype=np.float64) - offset
    if quat is not None:
        values = rotate_into_frame(quat, values)
    if gravity:
        values = gravity_in_frame(values)
    return values


def relative_to_goal(kind: str, measured: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """A goal term's values from the measured elements and the goal's, over the last axis (any batch)."""
    if kind == "position":
        return np.asarray(measured, dtype=np.float64) - goal
    error = quat_error(measured, goal)
    return error if kind == "orientation_quat" else rotation_6d(error)


def build_observation(spec: TaskSpec, state: Mapping[str, Any]) -> np.ndarray:
    """Stateless `(obs_dim,)` observation for a spec without history (builds a one-off builder)."""
    stacked = [t.name for t in spec.observation if t.history > 1]
    if stacked:
        raise SpecError(f"observation terms {stacked} stack history frames; use an ObservationBuilder")
    return ObservationBuilder(spec).build(state)


def action_to_robot(spec: TaskSpec | ActionSpec, action: Any) -> np.ndarray:
    """Normalised action(s) `(..., act_dim)` in [-1, 1] -> robot units, clipped to [low, high].

    A discrete action: index or indices of any shape (a scalar, `(n,)` or `(..., 1)`), whole numbers
    (float or int) -> the same indices as int64, the same shape; anything else is a SpecError.
    """
    a_spec = spec.action if isinstance(spec, TaskSpec) else spec
    if a_spec.kind == "discrete":
        return _action_index(a_spec, action)
    if a_spec.is_relative:
        raise SpecError("a position_delta action changes targets and has no stateless robot command; "
                        "integrate it with a TargetIntegrator")
    scale, offset, low, high = a_spec.arrays
    a = np.asarray(action, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != a_spec.dim:
        raise SpecError(f"action has shape {a.shape}; expected (..., {a_spec.dim})")
    out = a * scale
    out += offset
    np.maximum(out, low, out=out)
    return np.minimum(out, high, out=out)


class TargetIntegrator:
    """The integration of a relative ("position_delta") action over `n` robots or worlds, `(n, act_dim)`.

    `reset(rows, positions)` seeds the targets from measured joint positions (clipped to [low, high])
    and zeroes the last action; `step(actions)` takes normalised actions (NaN counts as 0, clipped to
    [-1, 1]), records them as `last_action` and moves the targets:
    `target = clip(target + scale * action, low, high)`. `hold(rows)` is the safe action of a relative
    kind: the targets stay, the last action becomes 0. `commit(rows, sent)` replaces the targets by what
    a robot was really sent (after a safety filter). `fields()` maps `joint_targets` and `last_action`
    to the arrays an observation reads (views: rows update in place).
    """

    def __init__(self, action: ActionSpec, n: int = 1) -> None:
        _check(action.is_relative, "action", f"a {action.kind} action is not integrated")
        self.action = action
        self.scale, _, self.low, self.high = action.arrays
        self.targets = np.zeros((n, action.dim))
        self.last_action = np.zeros((n, action.dim))

    def fields(self) -> dict[str, np.ndarray]:
        """State fields `joint_targets` (robot units) and `last_action` (normalised), `(n, act_dim)`."""
        return {"joint_targets": self.targets, "last_action": self.last_action}

    def reset(self, rows: Any, positions: Any) -> None:
        """Start over in `rows` (an index, slice or mask) from measured positions `(…, act_dim)`."""
        self.targets[rows] = np.clip(positions, self.low, self.high)
        self.last_action[rows] = 0.0

    def step(self, actions: Any) -> np.ndarray:
        """New targets `(n, act_dim)` (a copy) for normalised actions `(n, act_dim)`."""
        a = np.clip(np.nan_to_num(np.asarray(actions, dtype=np.float64), nan=0.0), -1.0, 1.0)
        self.last_action[...] = a
        np.clip(self.targets + a * self.scale, self.low, self.high, out=self.targets)
        return self.targets.copy()

    def hold(self, rows: Any) -> np.ndarray:
        """The safe action in `rows`: no change (the last action 0); returns their targets (a copy)."""
        self.last_action[rows] = 0.0
        return self.targets[rows].copy()

    def commit(self, rows: Any, sent: Any) -> None:
        """The targets in `rows` become what was really sent (robot units, clipped to [low, high])."""
        self.targets[rows] = np.clip(sent, self.low, self.high)


def _action_index(a_spec: ActionSpec, action: Any) -> np.ndarray:
    a = np.asarray(action)
    if a.dtype.kind in "iu":
        index = a.astype(np.int64, copy=False)
    elif a.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            index = a.astype(np.int64)
        if not np.array_equal(index, a):  # NaN, ±inf and fractions differ from their int cast
            raise SpecError(f"a discrete action must be a whole action index, got {a.tolist()}")
    else:
        raise SpecError(f"a discrete action must be an action index, got {action!r}")
    n = int(a_spec.high[0]) + 1
    if index.size and (index.min() < 0 or index.max() >= n):
        raise SpecError(f"action index out of range 0..{n - 1}: {index.tolist()}")
    return index


# --------------------------------------------------------------------------------------------------
# Helpers: validation and the plain form


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise SpecError(f"{key}: {message}")


def _nested(prefix: str, build: Any) -> Any:
    """Run `build()`, prefixing a SpecError's field name with `prefix`."""
    try:
        return build()
    except SpecError as err:
        raise SpecError(f"{prefix}.{err}") from None


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SpecError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    _check(not math.isnan(value), key, "must not be NaN")
    return value


def _as_sequence(value: Any, key: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray, range)):
        raise SpecError(f"{key}: expected a list, got {type(value).__name__}")
    return cast("Sequence[Any]", value)  # a list, tuple, range or array: each indexes and iterates


def _as_mapping(value: Any, key: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def _float_tuple(value: Any, key: str) -> tuple[float, ...]:
    return tuple(_number(v, f"{key}[{i}]") for i, v in enumerate(_as_sequence(value, key)))


def _int_tuple(value: Any, key: str) -> tuple[int, ...]:
    out = []
    for i, v in enumerate(_as_sequence(value, key)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise SpecError(f"{key}[{i}]: expected an integer, got {type(v).__name__} {v!r}")
        out.append(int(v))
    return tuple(out)


def _str_tuple(value: Any, key: str) -> tuple[str, ...]:
    out = tuple(_as_sequence(value, key))
    for i, v in enumerate(out):
        _check(isinstance(v, str) and v != "", f"{key}[{i}]", f"must be a non-empty string, got {v!r}")
    return out


def _pair(value: Any, key: str) -> tuple[float, float]:
    pair = _float_tuple(value, key)
    _check(len(pair) == 2, key, f"must be (low, high), got {list(pair)}")
    return pair[0], pair[1]


def _enc(x: float) -> float | None:
    return None if math.isinf(x) else x


def _enc_list(values: Iterable[float]) -> list[float | None]:
    return [_enc(v) for v in values]


def _dec_list(value: Any, key: str, null: float | None) -> list[float]:
    """Decode a list where null is ±inf: `null` for every entry, or (None) -inf first and +inf second."""
    items = list(_as_sequence(value, key))
    out = []
    for i, v in enumerate(items):
        if v is None:
            out.append(null if null is not None else (-math.inf if i == 0 else math.inf))
        else:
            out.append(v)
    return out


def _fields(data: Any, where: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, Any]:
    d = _as_mapping(data, where)
    prefix = "" if where == "task spec" else f"{where}."
    unknown = [k for k in d if k not in required and k not in optional]
    _check(not unknown, f"{prefix}{unknown[0] if unknown else ''}",
           f"unknown key in {where}; valid keys: {', '.join((*required, *optional))}")
    missing = [k for k in required if k not in d]
    _check(not missing, f"{prefix}{missing[0] if missing else ''}", f"missing from {where}")
    return dict(d)


def _term_to_dict(t: ObsTerm) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": t.name, "source": t.source, "indices": None if t.indices is None else list(t.indices),
        "transform": t.transform, "scale": t.scale, "clip": None if t.clip is None else _enc_list(t.clip),
        "history": t.history}
    if t.relative != "none":  # plain terms keep the form older manifests have
        out.update(relative=t.relative, goal=t.goal,
                   goal_indices=None if t.goal_indices is None else list(t.goal_indices))
    if t.offset is not None:
        out["offset"] = list(t.offset)
    if t.frame is not None:
        out.update(frame=t.frame, frame_indices=list(t.frame_indices or ()))
    return out


def _term_from_dict(data: Any, where: str) -> ObsTerm:
    d = _fields(data, where, ("name", "source"), ("indices", "transform", "scale", "clip", "history",
                                                    "relative", "goal", "goal_indices", "offset",
                                                    "frame", "frame_indices"))
    if d.get("clip") is not None:
        d["clip"] = _dec_list(d["clip"], f"{where}.clip", None)
    return _nested(where, lambda: ObsTerm(**d))
