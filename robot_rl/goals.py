"""The goals, success rule and drops of goal-reaching tasks (numpy only): in the core, so that the engine's
cube tasks and a robot's goal tracker (hardware/goal_tracker.py) share one implementation.

Quaternions are MuJoCo's: (w, x, y, z), unit norm, arrays of shape (N, 4).

- Goals. `rotate-z`: each new goal turns the previous goal by +90° or −90° about the vertical axis (the
  sign drawn per goal), so a policy must learn both directions and consecutive goals chain. `reorient`:
  goals uniform on SO(3) (Shoemake's method), the task of the OpenAI hand and of MuJoCo Playground's
  LEAP hand.
- Success (hold-and-advance): the orientation error to the goal stays below the tolerance for
  `hold_steps` consecutive control steps; then the success counter of that world goes up by one and a
  new goal is drawn at once, without a reset. `consecutive_successes` is the counter at the episode's end.
- A drop (the cube's centre leaves the palm: below `drop_height` or farther than `drop_radius` from the
  palm's centre) ends the episode (terminated, not truncated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_rl.spec import quat_multiply  # the one Hamilton product (w x y z) of the project

GOAL_MODES = ("rotate-z", "reorient")


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """The inverse rotation of unit quaternions (N, 4)."""
    return np.asarray(q, dtype=np.float64) * np.array([1.0, -1.0, -1.0, -1.0])


def quat_error(current: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The rotation taking `current` to `goal`, goal ⊗ current⁻¹, with w ≥ 0 (the shorter way)."""
    err = quat_multiply(goal, quat_conjugate(current))
    return np.where(err[..., :1] < 0.0, -err, err)


def rotation_angle(q: np.ndarray) -> np.ndarray:
    """Angle in radians, in [0, π], of the rotations (N, 4)."""
    q = np.asarray(q, dtype=np.float64)
    vec = np.linalg.norm(q[..., 1:], axis=-1)
    return 2.0 * np.arctan2(vec, np.abs(q[..., 0]))


def quat_about_z(angle: np.ndarray) -> np.ndarray:
    """Rotations by `angle` radians (N,) about the vertical axis."""
    half = 0.5 * np.asarray(angle, dtype=np.float64)
    zero = np.zeros_like(half)
    return np.stack([np.cos(half), zero, zero, np.sin(half)], axis=-1)


def uniform_quaternions(rng: np.random.Generator, n: int) -> np.ndarray:
    """n rotations uniform on SO(3) (Shoemake 1992), w ≥ 0."""
    u1, u2, u3 = rng.random((3, n))
    a, b = np.sqrt(1.0 - u1), np.sqrt(u1)
    q = np.stack([a * np.sin(2 * np.pi * u2), a * np.cos(2 * np.pi * u2),
                  b * np.sin(2 * np.pi * u3), b * np.cos(2 * np.pi * u3)], axis=-1)
    return np.where(q[:, :1] < 0.0, -q, q)


def next_goals(mode: str, previous: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """New goals (N, 4) after `previous` goals: ±90° about z from them, or uniform on SO(3)."""
    if mode == "rotate-z":
        sign = np.where(rng.random(len(previous)) < 0.5, -1.0, 1.0)
        turned = quat_multiply(quat_about_z(sign * np.pi / 2), previous)
        return turned / np.linalg.norm(turned, axis=-1, keepdims=True)
    if mode == "reorient":
        return uniform_quaternions(rng, len(previous))
    raise ValueError(f"goal mode {mode!r} is not valid; choose one of: {', '.join(GOAL_MODES)}")


def goals_within(current: np.ndarray, min_angle: float, max_angle: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """Goals (N, 4) at most `max_angle` (N,) radians from the orientations `current` (N, 4) and at least
    `min_angle`: uniform on SO(3) restricted to that shell around each orientation (the goal curriculum
    of `cube:reorient`, whose `adr.goal_angle` widens `max_angle` toward π).

    A uniform rotation's angle θ has density (1 − cos θ)/π on [0, π] and a uniform axis, so θ is drawn by
    inverting the cumulative θ − sin θ on [min_angle, max_angle] (bisection) and the axis uniformly; the
    goal is that rotation applied to `current`. With max_angle = π and min_angle = 0 this is exactly
    `uniform_quaternions` (left-multiplying by any orientation keeps the uniform distribution)."""
    current = np.asarray(current, dtype=np.float64)
    hi = np.clip(np.asarray(max_angle, dtype=np.float64), 0.0, np.pi) * np.ones(len(current))
    lo = np.minimum(float(min_angle), hi)
    cdf_lo, cdf_hi = lo - np.sin(lo), hi - np.sin(hi)
    target = cdf_lo + (cdf_hi - cdf_lo) * rng.random(len(current))
    a, b = lo.copy(), hi.copy()
    for _ in range(60):  # θ − sin θ increases on [0, π]: 60 halvings reach float precision
        mid = 0.5 * (a + b)
        below = mid - np.sin(mid) < target
        a, b = np.where(below, mid, a), np.where(below, b, mid)
    theta = 0.5 * (a + b)
    axis = rng.normal(size=(len(current), 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    turn = np.concatenate([np.cos(theta / 2)[:, None], np.sin(theta / 2)[:, None] * axis], axis=1)
    goal = quat_multiply(turn, current)
    goal /= np.linalg.norm(goal, axis=-1, keepdims=True)
    return np.where(goal[:, :1] < 0.0, -goal, goal)


@dataclass(frozen=True)
class SuccessRule:
    """When a goal counts as reached, and when the cube counts as dropped."""

    tolerance: float = 0.4
    """Orientation error below which the goal is reached, radians."""
    hold_steps: int = 5
    """Control steps the error must stay below the tolerance (0.25 s at 20 Hz)."""
    drop_height: float = -0.01
    """The cube's centre below this height above the palm (metres) is a drop."""
    drop_radius: float = 0.1
    """The cube's centre farther than this from the palm's vertical axis (metres) is a drop."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.tolerance) and 0.0 < self.tolerance < np.pi):
            raise ValueError(f"goal tolerance must be in (0, π) radians, got {self.tolerance!r}")
        if not (isinstance(self.hold_steps, int) and self.hold_steps >= 1):
            raise ValueError(f"hold_steps must be a whole number >= 1, got {self.hold_steps!r}")


class HoldAndAdvance:
    """Per-world goal bookkeeping: hold counters, successes so far, and the goal switch.

    `update` is called once per control step with each world's orientation error angle; it returns a
    mask of the worlds whose goal was reached on this step (their counter went up; the caller draws
    their next goal). `reset(mask)` starts the given worlds' episodes over.
    """

    def __init__(self, num_worlds: int, rule: SuccessRule) -> None:
        self.rule = rule
        self.held = np.zeros(num_worlds, dtype=np.int64)
        self.successes = np.zeros(num_worlds, dtype=np.int64)

    def update(self, angle: np.ndarray) -> np.ndarray:
        inside = np.asarray(angle) < self.rule.tolerance
        self.held = np.where(inside, self.held + 1, 0)
        reached = self.held >= self.rule.hold_steps
        self.successes += reached
        self.held[reached] = 0
        return reached

    def reset(self, mask: np.ndarray) -> None:
        self.held[mask] = 0
        self.successes[mask] = 0


def dropped(cube_pos_in_palm: np.ndarray, rule: SuccessRule) -> np.ndarray:
    """Mask of worlds whose cube left the palm; `cube_pos_in_palm` (N, 3) in metres."""
    pos = np.asarray(cube_pos_in_palm, dtype=np.float64)
    return (pos[:, 2] < rule.drop_height) | (np.hypot(pos[:, 0], pos[:, 1]) > rule.drop_radius)
