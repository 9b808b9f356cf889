"""Held periods: the `randomize.hold` term, the deploy's safe command in training.

On a robot the safety layer answers a stale state with the safe command (a position servo holds the
measured pose, a torque or velocity motor gets zero) instead of the policy's, and a driver whose command
timed out does the same; a loaded host's first periods over ROS 2 often bring one. A policy that never
saw such a period may not recover from it: the zoo quadruped stands still for good after one held period
at the start (in the engine; a deploy's control loop now shows the policy's first observation as at
reset), and 19 of 32 robots fall after 10 held periods mid-walk (BENCHMARKS.md,
bench/quadruped_holds.py). This term holds a world that way for a few control periods now and then, so
that a policy learns to walk on. Like the push, it acts in the middle of an episode: this module holds
what to draw and what the safe command is, the engine (`BatchedEngine`) decides when, and the world's
`ctrl` (what a `last_action` term observes) is then the held command, as on the robot.

Each world has its own hold generator (seeded from the world's seed and a fixed tag), so holds are
reproducible and switching them on changes no other draw of the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.config import check

HOLD_SEED_TAG = 0x401D
"""Mixed into a world's seed for its hold generator (pushes use 0x9054, the step noise 0x5EED)."""


@dataclass(frozen=True)
class HoldConfig:
    """The launch file's `randomize.hold`: every `interval` seconds a world is held for `periods`
    control periods (off while `periods` is [0, 0])."""

    interval: tuple[float, float] = (0.0, 5.0)
    """[low, high] seconds from a world's episode start to its first hold, then from the end of a hold
    to the next; drawn per world each time (0 <= low <= high: 0 holds the episode's first period, when
    a deploy over ROS 2 is most often held)."""
    periods: tuple[int, int] = (0, 0)
    """[low, high] control periods a hold lasts, drawn per hold (whole numbers, 0 <= low <= high)."""
    first: tuple[float, float] | None = None
    """[low, high] seconds from the episode's start to a world's first hold, when it differs from
    `interval` (None: `interval`). A deploy is most often held in its first periods, while DDS matches
    the new endpoints, with the robot still at rest: `first: [0, 0.1]` puts a hold there every
    episode, where a draw over a 5 s interval lands once in hundreds."""

    def __post_init__(self) -> None:
        for key in ("interval", "first"):
            value = getattr(self, key)
            if value is None:
                continue
            low, high = value
            check(math.isfinite(low) and math.isfinite(high) and 0 <= low <= high, f"randomize.hold.{key}",
                  f"must be [low, high] seconds with 0 <= low <= high, got {list(value)}")
        low, high = self.periods
        check(all(isinstance(v, int) and not isinstance(v, bool) for v in self.periods) and 0 <= low <= high,
              "randomize.hold.periods",
              f"must be [low, high] whole control periods with 0 <= low <= high, got {list(self.periods)}")

    @property
    def active(self) -> bool:
        """Whether a hold ever lasts a period."""
        return self.periods[1] > 0

    def describe(self) -> str:
        first = "" if self.first is None else f", the first after [{self.first[0]:g}, {self.first[1]:g}] s"
        return (f"hold [{self.periods[0]}, {self.periods[1]}] periods every "
                f"[{self.interval[0]:g}, {self.interval[1]:g}] s{first}")


class Hold:
    """`randomize.hold` on one task: each actuator's safe command, and what a hold draws."""

    name = "hold"

    def __init__(self, config: HoldConfig, nominal: Any) -> None:
        """A ValueError if the model has no actuator to hold."""
        import mujoco

        if nominal.nu == 0:
            raise ValueError("the model has no actuators")
        self.config = config
        joint = int(mujoco.mjtTrn.mjTRN_JOINT)
        affine = int(mujoco.mjtBias.mjBIAS_AFFINE)
        servo = [(int(nominal.actuator_trntype[a]) == joint and int(nominal.actuator_biastype[a]) == affine
                  and nominal.actuator_biasprm[a, 1] == -nominal.actuator_gainprm[a, 0] != 0)
                 for a in range(nominal.nu)]
        self.servos = np.flatnonzero(servo)
        """Actuators that are position servos on one joint (MuJoCo's `position`: bias -kp q): held at
        the joint's measured position; every other actuator is held at zero (torque, velocity)."""
        self.qpos = nominal.jnt_qposadr[nominal.actuator_trnid[self.servos, 0]].astype(np.int64)
        self.low, self.high = nominal.actuator_ctrlrange.T.copy()
        self.limited = nominal.actuator_ctrllimited.astype(bool)
        self.nu = int(nominal.nu)

    def safe(self, qpos: np.ndarray) -> np.ndarray:
        """`(nu,)` the controls of a held world whose joint positions are `qpos` (within ctrlrange)."""
        ctrl = np.zeros(self.nu)
        ctrl[self.servos] = qpos[self.qpos]
        return np.where(self.limited, np.clip(ctrl, self.low, self.high), ctrl)

    def _steps(self, seconds: float, control_period: float) -> int:
        return round(seconds / control_period)

    def gap(self, rng: np.random.Generator, control_period: float, first: bool = False) -> int:
        """Control periods until a world's next hold starts (its `first` of the episode: from the
        start), uniform over the interval's whole periods."""
        seconds = self.config.first if first and self.config.first is not None else self.config.interval
        low, high = (self._steps(s, control_period) for s in seconds)
        return int(rng.integers(low, high + 1))

    def length(self, rng: np.random.Generator) -> int:
        """Control periods the next hold lasts."""
        low, high = self.config.periods
        return int(rng.integers(low, high + 1))


class HoldSchedule:
    """When each of N worlds is next held and for how long, and its hold generator."""

    def __init__(self, num_worlds: int, control_period: float) -> None:
        self.control_period = float(control_period)
        self.rngs: list[np.random.Generator | None] = [None] * num_worlds
        self.start = np.full(num_worlds, -1, dtype=np.int64)
        """The control period (of its episode) at which a world's next hold starts; -1: never."""
        self.end = np.full(num_worlds, -1, dtype=np.int64)
        """The first period after that hold."""
        self.count = np.zeros(num_worlds, dtype=np.int64)
        """Held periods in each world's current episode."""

    def start_episode(self, i: int, hold: Hold, seed: int | None) -> None:
        """World i begins an episode: its generator seeded from `seed` (or kept), its first hold drawn."""
        if seed is not None or self.rngs[i] is None:
            self.rngs[i] = np.random.default_rng(None if seed is None else [int(seed), HOLD_SEED_TAG])
        self.count[i] = 0
        self._draw(i, hold, 0, first=True)

    def held(self, steps: np.ndarray, hold: Hold) -> np.ndarray:
        """`(N,)` True for the worlds held during their control period `steps` `(N,)`; a world whose
        hold ends here gets its next one drawn."""
        over = np.flatnonzero((steps >= self.end) & (self.end >= 0))
        for i in over.tolist():
            self._draw(i, hold, int(self.end[i]))
        held = (steps >= self.start) & (steps < self.end)
        self.count += held
        return held

    def _draw(self, i: int, hold: Hold, after: int, first: bool = False) -> None:
        rng = self.rngs[i]
        if rng is None:
            raise RuntimeError(f"world {i} was held before its episode started")
        self.start[i] = after + hold.gap(rng, self.control_period, first)
        self.end[i] = self.start[i] + hold.length(rng)
