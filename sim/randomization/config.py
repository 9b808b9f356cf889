"""The launch file's `randomize:` section: one field per term, its range, all off by default."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

from robot_rl.config import check, check_choice

from .hold import HoldConfig
from .push import PushConfig

_NOMINAL = (1.0, 1.0)
_NO_PUSH = PushConfig()
_NO_HOLD = HoldConfig()


@dataclass(frozen=True)
class RandomizationConfig:
    """Domain randomization of a task's worlds (all off by default). Scales are drawn per element
    (one factor per body, geom, dof or actuator), uniformly in [low, high], per world per episode."""

    body_mass_scale: tuple[float, float] = _NOMINAL
    """[low, high] factor on every body's mass and inertia (the density scales; > 0)."""
    geom_friction_scale: tuple[float, float] = _NOMINAL
    """[low, high] factor on every geom's sliding friction (MuJoCo takes the max of a contact's pair)."""
    joint_damping_scale: tuple[float, float] = _NOMINAL
    """[low, high] factor on every dof's damping."""
    actuator_gain_scale: tuple[float, float] = _NOMINAL
    """[low, high] factor on every actuator's gain and bias together (a position servo's kp and -kp,
    -kv: its force scales, its setpoint does not)."""
    actuation_delay: tuple[float, float] = (0.0, 0.0)
    """[low, high] seconds between an observation and its command taking effect, in whole physics steps
    (rounded), at most one control period; meanwhile the previous command stays applied."""
    observation_noise: float = 0.0
    """Standard deviation of Gaussian noise added to every observation entry, each step (obs units)."""
    action_noise: float = 0.0
    """Standard deviation of Gaussian noise added to the policy's action in [-1, 1], each step."""
    gravity_tilt: tuple[float, float] = (0.0, 0.0)
    """[low, high] radians by which gravity is tilted, about a horizontal axis of uniform direction
    (a slope, or an IMU mounted off level); at most pi/2."""
    initial_state_noise: float = 0.0
    """Half-width of a uniform perturbation of the reset state, on top of the task's own: every dof's
    position (quaternions integrated, so they stay unit) and velocity."""
    push: PushConfig = _NO_PUSH
    """Random pushes of a floating base mid-episode: `{interval: [low, high] s, x, y: [low, high] m/s,
    yaw: [low, high] rad/s}`, a velocity added to the base every interval (engine worlds only)."""
    hold: HoldConfig = _NO_HOLD
    """Held periods mid-episode, the deploy's safe command in training: `{interval: [low, high] s,
    periods: [low, high], first: [low, high] s}`, each world's controls replaced by the safe ones (a
    position servo holds its joint's measured position, any other actuator zero) for `periods` control
    periods, every `interval` (the first from `first` if given; engine worlds only)."""
    scale_per: Literal["element", "world"] = "element"
    """How the four scales are drawn: one factor per body, geom, dof or actuator ("element": shapes
    vary, totals average out), or one factor per world shared by all its elements ("world": the whole
    robot heavier, its motors weaker, as a different plant is)."""

    def __post_init__(self) -> None:
        check_choice(self.scale_per, "randomize.scale_per", ("element", "world"))
        for name in ("body_mass_scale", "geom_friction_scale", "joint_damping_scale", "actuator_gain_scale"):
            low, high = _pair(self, name)
            floor_ok = low > 0 if name == "body_mass_scale" else low >= 0
            check(floor_ok and low <= high, f"randomize.{name}",
                  f"must be [low, high] factors with {'0 < low' if name == 'body_mass_scale' else '0 <= low'}"
                  f" <= high (a negative scale is no physical body), got {list(getattr(self, name))}")
        low, high = _pair(self, "actuation_delay")
        check(0.0 <= low <= high, "randomize.actuation_delay",
              f"must be [low, high] seconds with 0 <= low <= high, got {list(self.actuation_delay)}")
        low, high = _pair(self, "gravity_tilt")
        check(0.0 <= low <= high <= math.pi / 2, "randomize.gravity_tilt",
              f"must be [low, high] radians with 0 <= low <= high <= pi/2, got {list(self.gravity_tilt)}")
        for name in ("observation_noise", "action_noise", "initial_state_noise"):
            value = getattr(self, name)
            check(math.isfinite(value) and value >= 0, f"randomize.{name}",
                  f"must be a finite number >= 0, got {value}")

    @property
    def active(self) -> bool:
        """Whether any term perturbs anything."""
        return bool(self.active_names())

    def active_names(self) -> list[str]:
        """The names of the terms that perturb something, in the order they are drawn."""
        return [f.name for f in fields(self) if f.name != "scale_per" and
                (getattr(self, f.name).active if f.name in ("push", "hold")
                 else getattr(self, f.name) != f.default)]

    def terms(self) -> list[Any]:
        """The active terms, episode-level ones in their fixed drawing order, then the step noises (the
        push and the hold, which act mid-episode, are the Randomizer's `pushes` and `holds`)."""
        from .terms import TERMS

        active = set(self.active_names())
        scales = {"per_world": self.scale_per == "world"}
        return [TERMS[name](getattr(self, name), **(scales if TERMS[name].scale else {}))
                for name in TERMS if name in active]

    def describe(self) -> str:
        """One line for a run's log: each active term and its range."""
        parts = [getattr(self, name).describe() if name in ("push", "hold")
                 else f"{name} {_show(getattr(self, name))}" for name in self.active_names()]
        if self.scale_per == "world" and any(name.endswith("_scale") for name in self.active_names()):
            parts.append("scales per world")
        return "randomize: " + (", ".join(parts) if parts else "off")


def _pair(config: RandomizationConfig, name: str) -> tuple[float, float]:
    low, high = getattr(config, name)
    check(math.isfinite(low) and math.isfinite(high), f"randomize.{name}",
          f"must be two finite numbers [low, high], got {list(getattr(config, name))}")
    return low, high


def _show(value: Any) -> str:
    return f"[{value[0]:g}, {value[1]:g}]" if isinstance(value, tuple) else f"{value:g}"
