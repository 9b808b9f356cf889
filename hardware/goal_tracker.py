"""Host-side goals for a deployed goal task (the cube tasks): the goal sequence and hold-and-advance.

On a robot nobody but the host knows the goal: the control loop supplies the goal state field (e.g.
`cube_goal`) to the observation, and checks success on the *measured* orientation exactly as training
did (`robot_rl.goals`: within the rule's tolerance for its hold steps, then the next goal at
once; the cube's centre leaving the palm is a drop, which ends the run). The measured orientation is
the one the spec's orientation goal term reads (for the cube: qpos entries `cube:qw .. cube:qz`, the
pose a motion-capture or vision system reports), and its position the free joint's `J:x J:y J:z`
entries named in `state_joints`.

Goals: drawn here, seeded (`seed`), from the measured orientation at activation (as the task's reset
draws them), or one fixed goal given as a parameter (`goal`, a quaternion w x y z: reaching it is a
success, and it stays the goal; holding it on counts no more, leaving it and reaching it again does).
One update per new measurement (a state whose sequence advanced), so a backend that returns the same
state twice does not count a hold step twice.

Imports numpy, the spec and the cube's numpy goal rules only (no MuJoCo).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.goals import (
    HoldAndAdvance,
    SuccessRule,
    dropped,
    next_goals,
    quat_error,
    rotation_angle,
)
from robot_rl.spec import RELATIVE_ACTION_FIELDS, TaskSpec

GOAL_TASKS: dict[str, str] = {"cube:rotate-z": "rotate-z", "cube:reorient": "reorient"}
"""Task id -> its goal mode: the tasks whose goals the host draws and tracks."""


class GoalTracker:
    """The goal field, successes and drops of one deployed goal task (one robot)."""

    def __init__(self, spec: TaskSpec, mode: str, rule: SuccessRule | None = None, seed: int = 0,
                 goal: Sequence[float] | None = None) -> None:
        terms = [t for t in spec.observation if t.relative.startswith("orientation")]
        goal_field, indices = (terms[0].goal, terms[0].indices) if terms else (None, None)
        if goal_field is None or indices is None:
            raise ConfigError(f"{spec.name}: no orientation goal term to track")
        self.field: str = goal_field
        """The goal state field the host supplies."""
        self.source, self._quat = terms[0].source, np.array(indices, dtype=np.intp)
        qw = spec.state_joints[indices[0]] if len(spec.state_joints) > indices[0] else ""
        joint = qw.removesuffix(":qw")
        names = list(spec.state_joints)
        if not qw.endswith(":qw") or not all(f"{joint}:{a}" in names for a in "xyz"):
            raise ConfigError(f"{spec.name}: the orientation term reads {self.source}{list(indices)}, "
                              f"not a free joint's quaternion named in state_joints")
        self._pos = np.array([names.index(f"{joint}:{a}") for a in "xyz"], dtype=np.intp)
        self.mode, self.rule = mode, rule or SuccessRule()
        self.fixed = None if goal is None else _unit_quaternion(goal)
        self._rng = np.random.default_rng(seed)
        self._hold = HoldAndAdvance(1, self.rule)
        self.goal = np.array([1.0, 0.0, 0.0, 0.0])
        self.angle = float("nan")
        self.dropped = False
        self.goals_drawn = 0
        self._sequence: int | None = None
        self._armed = True  # a fixed goal: False while it is held after a success
        self._handover = threading.Lock()
        self._pending: np.ndarray | None = None  # a goal from set_goal, for the next update

    @property
    def successes(self) -> int:
        """Goals reached in a row since activation."""
        return int(self._hold.successes[0])

    def reset(self, fields: Mapping[str, Any], sequence: int) -> None:
        """At activation: the first goal, from the measured orientation (or the fixed goal)."""
        quat = self._measured(fields)
        self._hold.reset(np.ones(1, dtype=bool))
        self.dropped = False
        self.goal = self.fixed if self.fixed is not None else next_goals(self.mode, quat[None], self._rng)[0]
        self.goals_drawn = 1
        self._armed = True
        self.angle = float(rotation_angle(quat_error(quat[None], self.goal[None]))[0])
        self._sequence = sequence

    def update(self, fields: Mapping[str, Any], sequence: int) -> dict[str, np.ndarray]:
        """Hold-and-advance on a new measurement; the goal field to observe (a fresh copy)."""
        self._take_pending_goal()
        if self._sequence is None or sequence != self._sequence:
            self._sequence = sequence
            quat = self._measured(fields)
            self.angle = float(rotation_angle(quat_error(quat[None], self.goal[None]))[0])
            self._armed = self._armed or self.angle >= self.rule.tolerance
            reached = self._armed and bool(self._hold.update(np.array([self.angle]))[0])
            if reached and self.fixed is not None:
                self._armed = False
            elif reached:
                self.goal = next_goals(self.mode, self.goal[None], self._rng)[0]
                self.goals_drawn += 1
                self.angle = float(rotation_angle(quat_error(quat[None], self.goal[None]))[0])
            position = np.asarray(fields[self.source], dtype=np.float64).reshape(-1)[self._pos]
            self.dropped = bool(dropped(position[None], self.rule)[0])
        return {self.field: self.goal.copy()}

    def set_goal(self, goal: Sequence[float]) -> None:
        """A new fixed goal (w x y z), e.g. from a robot's goal topic, taken at the next `update`: a topic
        callback runs on the executor's thread while the control loop updates on its own, so it only
        hands the goal over (under a lock) and the loop never sees a goal half set. Its hold starts
        afresh; the same goal again (a topic repeating it) changes nothing: it must not restart a hold."""
        q = _unit_quaternion(goal)
        with self._handover:
            self._pending = q

    def _take_pending_goal(self) -> None:
        with self._handover:
            q, self._pending = self._pending, None
        if q is None or (self.fixed is not None and abs(float(q @ self.fixed)) > 1 - 1e-9):  # q, -q: one
            return
        self.fixed = self.goal = q
        self._hold.held[:] = 0
        self._armed = True

    def report(self) -> dict[str, Any]:
        """Successes (goals reached in a row), whether the cube dropped, the current error (rad)."""
        return {"successes": self.successes, "success": self.successes >= 1, "dropped": self.dropped,
                "goal": self.goal.tolist(), "angle": self.angle, "mode": self.mode,
                "goal_source": "fixed" if self.fixed is not None else "drawn"}

    def _measured(self, fields: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(fields[self.source], dtype=np.float64).reshape(-1)[self._quat]


def host_fields(spec: TaskSpec) -> tuple[str, ...]:
    """The state fields the host's control loop supplies, not the robot: a relative action's targets and
    last action, and a goal task's goal (a device need not offer these)."""
    relative = spec.action.is_relative
    own = tuple(f for f in RELATIVE_ACTION_FIELDS if f in spec.state_fields) if relative else ()
    return own + (tuple(spec.goal_fields) if spec.name in GOAL_TASKS else ())


def goal_tracker(spec: TaskSpec, seed: int = 0, goal: Sequence[float] | None = None) -> GoalTracker | None:
    """The tracker for a goal task (`GOAL_TASKS`), else None (a `goal` for another task is an error)."""
    mode = GOAL_TASKS.get(spec.name)
    if mode is None:
        if goal is not None:
            raise ConfigError(f"goal: {spec.name} has no host-side goal; goal tasks: {', '.join(GOAL_TASKS)}")
        return None
    return GoalTracker(spec, mode, seed=seed, goal=goal)


def _unit_quaternion(values: Sequence[float]) -> np.ndarray:
    q = np.asarray(values, dtype=np.float64).reshape(-1)
    if q.shape != (4,) or not np.isfinite(q).all() or not np.linalg.norm(q) > 1e-6:
        raise ConfigError(f"goal: a quaternion w,x,y,z (4 finite numbers, not all 0), got {list(values)}")
    return q / np.linalg.norm(q)


def parse_goal(text: str) -> tuple[float, ...]:
    """`--goal W,X,Y,Z` (a quaternion) or `--goal yaw:DEG` (a turn about the vertical axis)."""
    try:
        if text.startswith("yaw:"):
            half = np.radians(float(text.removeprefix("yaw:"))) / 2
            return (float(np.cos(half)), 0.0, 0.0, float(np.sin(half)))
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--goal: {text!r} is not W,X,Y,Z or yaw:DEG") from None
    return tuple(_unit_quaternion(values).tolist())
