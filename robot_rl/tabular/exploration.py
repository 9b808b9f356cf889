"""ε-greedy action selection and ε schedules for tabular TD control.

With probability ε the action is uniform over all actions, otherwise greedy; greedy ties are broken
uniformly at random while learning (with all-zero initial Q, a fixed tie-break would always try the
same action first), and by the lowest index when a policy is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from robot_rl.config import check, check_choice


@dataclass(frozen=True)
class EpsilonSchedule:
    """ε as a function of the episode index t = 0, 1, ...

    fixed: ε_t = start. linear: from `start` to `end` over `decay_episodes`, then `end`.
    exponential: ε_t = start · (end/start)^(t/decay_episodes) — geometric, reaching `end` at
    `decay_episodes` — then `end`.
    """

    start: float = 0.1
    """ε of the first episode, in [0, 1]."""
    end: float | None = None
    """ε after `decay_episodes` (None: = start), in [0, 1]; > 0 for exponential decay."""
    kind: Literal["fixed", "linear", "exponential"] = "fixed"
    """How ε moves from `start` to `end`."""
    decay_episodes: int = 1
    """Episodes over which ε decays, ≥ 1."""

    def __post_init__(self) -> None:
        check_choice(self.kind, "epsilon_schedule", ("fixed", "linear", "exponential"))
        check(0.0 <= self.start <= 1.0, "epsilon", f"{self.start!r} is outside [0, 1]")
        if self.end is not None:
            check(0.0 <= self.end <= 1.0, "epsilon_end", f"{self.end!r} is outside [0, 1]")
        check(self.decay_episodes >= 1, "epsilon_decay_episodes", f"{self.decay_episodes!r} must be ≥ 1")
        if self.kind == "exponential":
            check(self.start > 0 and self.final > 0, "epsilon_end",
                  "exponential decay needs ε > 0 at both ends (use linear to reach 0)")

    @property
    def final(self) -> float:
        return self.start if self.end is None else self.end

    def __call__(self, episode: int) -> float:
        if self.kind == "fixed":
            return self.start
        frac = min(episode, self.decay_episodes) / self.decay_episodes
        if self.kind == "linear":
            return self.start + (self.final - self.start) * frac
        return self.start * math.exp(frac * math.log(self.final / self.start))


def greedy_action(q_row: np.ndarray, rng: np.random.Generator) -> int:
    """argmax_a q_row[a], ties broken uniformly at random."""
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[0]) if best.size == 1 else int(rng.choice(best))


def epsilon_greedy(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """With probability ε a uniform random action, otherwise `greedy_action`."""
    if rng.random() < epsilon:
        return int(rng.integers(q_row.shape[0]))
    return greedy_action(q_row, rng)
