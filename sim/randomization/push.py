"""Random pushes of a floating base: the `randomize.push` term.

As Isaac Lab's `push_by_setting_velocity` (interval mode) and legged_gym's `push_robots`: every few
seconds a world's base gets a random velocity added to its own, as if kicked, so that a legged policy
learns to recover instead of relying on never being disturbed. Unlike the other terms it acts in the
middle of an episode, so the engine applies it between two control periods (`BatchedEngine`): this
module holds what to draw and where to write it, the engine decides when.

Each world has its own push generator (seeded from the world's seed, `seed + i`, and a fixed tag), so
that pushes are reproducible from the seed and switching them on changes no other draw of the task
(its reset state, its commands, the other terms): two runs differ by the pushes and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.config import check

PUSH_SEED_TAG = 0x9054
"""Mixed into a world's seed for its push generator (the engine's step noise uses 0x5EED)."""
AXES = ("x", "y", "yaw")
"""The base velocity components a push adds to, in this order."""
_OFF = (0.0, 0.0)


@dataclass(frozen=True)
class PushConfig:
    """The launch file's `randomize.push`: a velocity in the ranges added to the base every `interval`
    seconds (off while every range is [0, 0]). Defaults: Isaac Lab's velocity tasks' interval."""

    interval: tuple[float, float] = (10.0, 15.0)
    """[low, high] seconds from a world's episode start to its first push, then between two pushes;
    drawn per world each time (0 < low <= high). An episode shorter than `low` is never pushed."""
    x: tuple[float, float] = _OFF
    """[low, high] m/s added to the base's linear velocity along the world's x axis."""
    y: tuple[float, float] = _OFF
    """[low, high] m/s added to the base's linear velocity along the world's y axis."""
    yaw: tuple[float, float] = _OFF
    """[low, high] rad/s added to the base's angular velocity about its own z axis (MuJoCo's free joint
    keeps the angular velocity in the body frame; upright, that is the yaw rate)."""

    def __post_init__(self) -> None:
        low, high = self.interval
        check(math.isfinite(low) and math.isfinite(high) and 0 < low <= high, "randomize.push.interval",
              f"must be [low, high] seconds with 0 < low <= high, got {list(self.interval)}")
        for axis in AXES:
            low, high = getattr(self, axis)
            unit = "rad/s" if axis == "yaw" else "m/s"
            check(math.isfinite(low) and math.isfinite(high) and low <= high, f"randomize.push.{axis}",
                  f"must be [low, high] {unit}, two finite numbers with low <= high, "
                  f"got {list(getattr(self, axis))}")

    @property
    def active(self) -> bool:
        """Whether a push adds anything (some velocity range is not [0, 0])."""
        return any(getattr(self, axis) != _OFF for axis in AXES)

    def describe(self) -> str:
        """`push every [10, 15] s: x [-0.5, 0.5] m/s, y [-0.5, 0.5] m/s` (the ranges that are on)."""
        units = {"x": "m/s", "y": "m/s", "yaw": "rad/s"}
        ranges = [f"{axis} [{getattr(self, axis)[0]:g}, {getattr(self, axis)[1]:g}] {units[axis]}"
                  for axis in AXES if getattr(self, axis) != _OFF]
        return f"push every [{self.interval[0]:g}, {self.interval[1]:g}] s: {', '.join(ranges)}"


class Push:
    """`randomize.push` on one task: the free joint's velocity entries it writes and what it draws."""

    name = "push"

    def __init__(self, config: PushConfig, nominal: Any) -> None:
        """A ValueError if the model has no free joint (a floating base) to push."""
        import mujoco

        free = np.flatnonzero(nominal.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
        if free.size == 0:
            raise ValueError("the model has no free joint (a floating base) to push")
        adr = int(nominal.jnt_dofadr[free[0]])
        self.config = config
        self.dofs = adr + np.array([0, 1, 5])
        """The entries of qvel a push adds to: the model's first free joint's (a legged robot's base; in
        a model whose first free joint is an object, that object) x and y velocity (world frame) and
        its angular velocity about the body's z axis, as AXES orders them."""
        self.low = np.array([getattr(config, a)[0] for a in AXES])
        self.high = np.array([getattr(config, a)[1] for a in AXES])

    def period_steps(self, control_period: float) -> tuple[int, int]:
        """[low, high] control periods of `control_period` s between two pushes (rounded, at least one)."""
        low, high = (max(1, round(s / control_period)) for s in self.config.interval)
        return int(low), int(high)

    def interval(self, rng: np.random.Generator, control_period: float) -> int:
        """Control periods until a world's next push, uniform over the interval's whole periods."""
        low, high = self.period_steps(control_period)
        return int(rng.integers(low, high + 1))

    def velocity(self, rng: np.random.Generator) -> np.ndarray:
        """`(3,)` (x m/s, y m/s, yaw rad/s) to add to a world's base velocity."""
        return rng.uniform(self.low, self.high)


class PushSchedule:
    """When each of N worlds is next pushed, and its push generator (the engine's per-world state)."""

    def __init__(self, num_worlds: int, control_period: float) -> None:
        self.control_period = float(control_period)
        self.rngs: list[np.random.Generator | None] = [None] * num_worlds
        self.next_at = np.full(num_worlds, -1, dtype=np.int64)
        """The control period of its episode (the engine's step count) before whose physics a world is
        next pushed; -1: never (pushes off)."""
        self.count = np.zeros(num_worlds, dtype=np.int64)
        """Pushes in each world's current episode."""

    def start_episode(self, i: int, push: Push, seed: int | None) -> None:
        """World i begins an episode: its generator seeded from `seed` (or kept: None after the first),
        its first push drawn."""
        if seed is not None or self.rngs[i] is None:
            self.rngs[i] = np.random.default_rng(None if seed is None else [int(seed), PUSH_SEED_TAG])
        self.next_at[i] = push.interval(self._rng(i), self.control_period)
        self.count[i] = 0

    def due(self, steps: np.ndarray) -> np.ndarray:
        """The worlds whose push comes before the physics of their control period `steps` `(N,)`."""
        return np.flatnonzero(steps == self.next_at)

    def fire(self, i: int, push: Push) -> np.ndarray:
        """World i's push now: its velocity `(3,)` (AXES), its next one scheduled."""
        rng = self._rng(i)
        kick = push.velocity(rng)
        self.next_at[i] += push.interval(rng, self.control_period)
        self.count[i] += 1
        return kick

    def _rng(self, i: int) -> np.random.Generator:
        rng = self.rngs[i]
        if rng is None:
            raise RuntimeError(f"world {i} was pushed before its episode started")
        return rng
