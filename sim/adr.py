"""Automatic domain randomization (ADR), as in OpenAI's Rubik's-cube work (Akkaya et al., 2019, §5).

Every randomized parameter starts with the range [nominal, nominal]. At each episode start a world
either draws every parameter uniformly from its current range, or (with `boundary_probability`) is a
*boundary* world: one parameter, picked uniformly, is pinned at its lower or upper bound and the rest
are drawn as usual. When a boundary episode ends, its performance in [0, 1] (the success rate, or a
return divided by a scale) goes into that bound's buffer; once the buffer holds `window` episodes, its
mean decides: at or above `high` the bound moves outward by the parameter's `step`, at or below `low`
it moves back toward the nominal value (never past it), and the buffer is emptied either way.

The entropy of the uniform distribution over the ranges, in nats per dimension, measures how much
randomization the policy has mastered: H = (1/d) Σ log(high_i − low_i). A range still at its nominal
width counts with width `MIN_WIDTH` (a log of zero is −inf), so H starts at log(1e-6) ≈ −13.8.

This module is numpy only and knows nothing of MuJoCo or of an algorithm: the engine asks it for each
world's values and tells it each boundary episode's performance; the trainer logs `ranges()` and
`entropy()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robot_rl.config import check

MIN_WIDTH = 1e-6
"""The width a range at its nominal value counts with in `entropy()`."""


@dataclass(frozen=True)
class ADRParameter:
    """One randomized scalar: where it starts, how far one widening moves a bound, and hard limits."""

    name: str
    nominal: float
    step: float
    """How far one widening (or narrowing) moves a bound, in the parameter's own units."""
    minimum: float = -math.inf
    """Hard limit for the lower bound (e.g. 0 for a scale that must stay positive)."""
    maximum: float = math.inf
    """Hard limit for the upper bound."""

    def __post_init__(self) -> None:
        key = f"adr.{self.name}"
        check(all(math.isfinite(v) for v in (self.nominal, self.step)), key,
              f"nominal and step must be finite numbers, got {self.nominal!r}, {self.step!r}")
        check(self.step > 0, f"{key}.step", f"must be > 0, got {self.step!r}")
        check(self.minimum <= self.nominal <= self.maximum, key,
              f"nominal {self.nominal!r} must lie within [{self.minimum!r}, {self.maximum!r}]")


@dataclass(frozen=True)
class ADRConfig:
    """The launch file's `adr:` section: thresholds, window and boundary share (off by default)."""

    enabled: bool = False
    low: float = 0.2
    """Performance in [0, 1] at or below which a bound narrows back toward the nominal value."""
    high: float = 0.8
    """Performance in [0, 1] at or above which a bound widens."""
    window: int = 20
    """Boundary episodes averaged per decision, per bound."""
    boundary_probability: float = 0.25
    """Share of episodes that evaluate one parameter at a bound ("one world in a few")."""
    steps: dict[str, float] = field(default_factory=dict)
    """Per-parameter widening step, overriding the term's default (e.g. `{body_mass_scale: 0.05}`)."""
    return_scale: float | None = None
    """Performance of a boundary episode: None for its success (the task counts goals reached, as the
    cube tasks do: 1 if it reached one, else 0); a number for its return divided by it, clipped to [0, 1]."""
    goal_angle: tuple[float, float] | None = None
    """`[start, max]` radians: a goal curriculum (cube:reorient). ADR also drives `goal_angle`, the most
    an episode's goals may lie from the cube's orientation when drawn: its range starts at [start,
    start], its upper bound widens by `steps.goal_angle` (default 0.1 rad) up to max (at most π, where
    the goals are the task's own, uniform on SO(3)); its lower bound stays at start. None: off."""

    def __post_init__(self) -> None:
        for key, value in (("low", self.low), ("high", self.high)):
            check(isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0,
                  f"adr.{key}", f"must be a performance threshold in [0, 1], got {value!r}")
        check(self.low < self.high, "adr.low", f"must be below adr.high ({self.high!r}), got {self.low!r}")
        whole = isinstance(self.window, int) and not isinstance(self.window, bool)
        check(whole and 1 <= self.window <= 10_000, "adr.window",
              f"must be a whole number of episodes in [1, 10000], got {self.window!r}")
        check(math.isfinite(self.boundary_probability) and 0.0 < self.boundary_probability <= 1.0,
              "adr.boundary_probability", f"must be in (0, 1], got {self.boundary_probability!r}")
        check(self.return_scale is None or (isinstance(self.return_scale, (int, float))
                                            and math.isfinite(self.return_scale) and self.return_scale > 0),
              "adr.return_scale",
              f"must be a finite number > 0 (or null for success), got {self.return_scale!r}")
        if self.goal_angle is not None:
            pair = self.goal_angle
            numbers = isinstance(pair, (tuple, list)) and len(pair) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair)
            check(numbers and 0.0 < pair[0] <= pair[1] <= math.pi, "adr.goal_angle",
                  f"must be [start, max] radians with 0 < start <= max <= pi ({math.pi!r}), got {pair!r}")
        for name, step in self.steps.items():
            check(isinstance(step, (int, float)) and math.isfinite(step) and step > 0, f"adr.steps.{name}",
                  f"must be a finite number > 0, got {step!r}")


@dataclass(frozen=True)
class Draw:
    """One world's values for one episode, and which bound it evaluates (None: not a boundary world)."""

    values: dict[str, float]
    boundary: tuple[str, str] | None
    """(parameter name, "low" or "high") for a boundary world."""


class ADR:
    """The ranges, their per-bound performance buffers, and the widen/narrow rule."""

    def __init__(self, parameters: list[ADRParameter], config: ADRConfig) -> None:
        names = [p.name for p in parameters]
        check(len(set(names)) == len(names), "adr", f"parameter names must be unique, got {names}")
        unknown = sorted(set(config.steps) - set(names))
        check(not unknown, f"adr.steps.{unknown[0] if unknown else ''}",
              f"is not a randomized parameter; choose one of: {', '.join(names)}")
        self.config = config
        self.parameters = {p.name: p for p in parameters}
        self._step = {p.name: float(config.steps.get(p.name, p.step)) for p in parameters}
        self._low = {p.name: float(p.nominal) for p in parameters}
        self._high = {p.name: float(p.nominal) for p in parameters}
        self._buffers: dict[tuple[str, str], list[float]] = {
            (n, b): [] for n in names for b in ("low", "high")}
        self.updates = 0
        """How many times a bound moved (widened or narrowed) since the start."""

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Current [low, high] of every parameter."""
        return {n: (self._low[n], self._high[n]) for n in self.parameters}

    def entropy(self) -> float:
        """Nats per dimension of the uniform distribution over the current ranges."""
        widths = [max(self._high[n] - self._low[n], MIN_WIDTH) for n in self.parameters]
        return float(np.mean(np.log(widths))) if widths else 0.0

    def sample(self, rng: np.random.Generator) -> Draw:
        """One world's values for its next episode, drawn from `rng` (that world's generator)."""
        boundary = None
        if self.parameters and rng.random() < self.config.boundary_probability:
            names = list(self.parameters)
            boundary = (names[int(rng.integers(len(names)))], "low" if rng.random() < 0.5 else "high")
        values = {}
        for name in self.parameters:
            low, high = self._low[name], self._high[name]
            values[name] = float(low + (high - low) * rng.random())
        if boundary is not None:
            name, side = boundary
            values[name] = self._low[name] if side == "low" else self._high[name]
        return Draw(values, boundary)

    def record(self, boundary: tuple[str, str] | None, performance: float) -> bool:
        """Add a finished episode's performance in [0, 1]; True when a bound moved as a result."""
        if boundary is None:
            return False
        if not (math.isfinite(performance) and 0.0 <= performance <= 1.0):
            raise ValueError(f"ADR performance must be in [0, 1], got {performance!r}")
        buffer = self._buffers[boundary]
        buffer.append(float(performance))
        if len(buffer) < self.config.window:
            return False
        mean = float(np.mean(buffer))
        buffer.clear()
        if mean >= self.config.high:
            return self._move(*boundary, outward=True)
        if mean <= self.config.low:
            return self._move(*boundary, outward=False)
        return False

    def _move(self, name: str, side: str, outward: bool) -> bool:
        p, step = self.parameters[name], self._step[name]
        if side == "low":
            low = self._low[name]
            new = max(p.minimum, low - step) if outward else min(p.nominal, low + step)
            moved, self._low[name] = new != low, new
        else:
            high = self._high[name]
            new = min(p.maximum, high + step) if outward else max(p.nominal, high - step)
            moved, self._high[name] = new != high, new
        if moved:  # a bound that moves changes the distribution the other bound's buffer was measured under
            self._buffers[(name, "high" if side == "low" else "low")].clear()
        self.updates += int(moved)
        return moved

    def state_dict(self) -> dict[str, object]:
        """What a checkpoint keeps, so that a resumed run goes on from the same ranges."""
        return {"low": dict(self._low), "high": dict(self._high), "updates": self.updates,
                "buffers": {f"{n}:{b}": list(v) for (n, b), v in self._buffers.items()}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore `state_dict()`'s ranges and buffers (parameters must match by name)."""
        low, high = dict(state["low"]), dict(state["high"])  # type: ignore[call-overload]
        if set(low) != set(self.parameters) or set(high) != set(self.parameters):
            raise ValueError(f"ADR state has parameters {sorted(low)}, this run {sorted(self.parameters)}")
        self._low = {k: float(v) for k, v in low.items()}
        self._high = {k: float(v) for k, v in high.items()}
        self.updates = int(state.get("updates", 0))  # type: ignore[call-overload]
        for key, values in dict(state.get("buffers", {})).items():  # type: ignore[call-overload]
            name, _, side = key.rpartition(":")
            if (name, side) in self._buffers:
                self._buffers[(name, side)] = [float(v) for v in values]
