"""Domain randomization: per-episode perturbations of the simulated robot, so that a policy trained
in simulation keeps working on hardware that differs from the model.

Each field of `RandomizationConfig` is one perturbation, sampled afresh at every reset from the
environment's own seeded generator (runs stay reproducible) and off by default. An environment
supports a perturbation by implementing its hook (below); asking for one a task does not support is
a ConfigError naming the key and the tasks that do. Evaluation runs the nominal model, unless
`eval.randomize` asks for these perturbations there too (to keep the checkpoint that is robust to them).

- `actuation_delay` (seconds, [low, high]): a command reaches the actuators this long after the
  observation it answers, as over a serial link or a fieldbus. The delay is a whole number of physics
  steps, drawn uniformly from those in [low, high]; during it the previous command stays applied.
  Hook: `set_actuation_delay_range(low_steps, high_steps)` on the unwrapped env; its physics step is
  `task_spec.physics_dt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from robot_rl.config import check
from robot_rl.errors import ConfigError


@dataclass(frozen=True)
class RandomizationConfig:
    """Domain randomization of training environments (all off by default)."""

    actuation_delay: tuple[float, float] = (0.0, 0.0)
    """[low, high] seconds between an observation and its command taking effect, per episode."""

    def __post_init__(self) -> None:
        low, high = self.actuation_delay
        check(math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high, "randomize.actuation_delay",
              f"must be [low, high] seconds with 0 <= low <= high, got {list(self.actuation_delay)}")

    @property
    def active(self) -> bool:
        return self.actuation_delay != (0.0, 0.0)


def delay_steps(seconds: tuple[float, float], physics_timestep: float) -> tuple[int, int]:
    """[low, high] seconds → the whole physics steps that lie in it (rounded to the nearest)."""
    low, high = (round(s / physics_timestep) for s in seconds)
    return int(low), int(high)


def apply_randomization(env: Any, config: RandomizationConfig | None, task_id: str) -> None:
    """Switch on the perturbations `config` asks for on `env` (a task env, before any reset)."""
    if config is None or not config.active:
        return
    base = env.unwrapped
    hook = getattr(base, "set_actuation_delay_range", None)
    if hook is None:
        raise ConfigError(f"randomize.actuation_delay: task {task_id!r} does not support it; the Gymnasium "
                          f"MuJoCo locomotion tasks do (e.g. Hopper-v5)")
    try:
        hook(*delay_steps(config.actuation_delay, base.task_spec.physics_dt))
    except ValueError as err:
        raise ConfigError(f"randomize.actuation_delay: {list(config.actuation_delay)} s on {task_id!r} "
                          f"(physics step {base.task_spec.physics_dt:g} s): {err}") from None
