"""`Randomizer`: a task's randomization terms, applied to one world at a time (see dr_contract in the
module docstring of `robot_rl.sim.randomization`)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError

from .config import RandomizationConfig
from .hold import Hold
from .push import Push
from .terms import Rng


class Randomizer:
    """The active terms of `config` for ONE task whose nominal model is `nominal` (never modified).

    `physics_steps`: physics steps per control period (the actuation delay may not exceed it); None
    skips that check. A term the task cannot take is a ConfigError naming it, raised here, before any
    world is reset.
    """

    def __init__(self, config: RandomizationConfig, nominal: Any, physics_dt: float,
                 physics_steps: int | None = None, task_id: str = "the task") -> None:
        self.config = config
        self.nominal = copy.copy(nominal)  # a world may BE `nominal` (the Gymnasium path): keep its values
        self.physics_dt = float(physics_dt)
        terms = config.terms()
        for term in terms:
            try:
                term.check(self.nominal, physics_steps if physics_steps is not None else 1 << 30)
            except ValueError as err:
                raise ConfigError(f"randomize.{term.name}: task {task_id!r} cannot take it: {err}") from None
        self.pushes: Push | None = None
        """The push term (`randomize.push`), or None: the engine applies it between control periods."""
        if config.push.active:
            try:
                self.pushes = Push(config.push, self.nominal)
            except ValueError as err:
                raise ConfigError(f"randomize.push: task {task_id!r} cannot take it: {err}") from None
        self.holds: Hold | None = None
        """The hold term (`randomize.hold`), or None: the engine applies it to a control period."""
        if config.hold.active:
            try:
                self.holds = Hold(config.hold, self.nominal)
            except ValueError as err:
                raise ConfigError(f"randomize.hold: task {task_id!r} cannot take it: {err}") from None
        self.episode_terms = [t for t in terms if t.episode]
        self._obs = next((t for t in terms if t.name == "observation_noise"), None)
        self._act = next((t for t in terms if t.name == "action_noise"), None)

    @property
    def active(self) -> bool:
        return bool(self.episode_terms) or self._obs is not None or self._act is not None \
            or self.pushes is not None or self.holds is not None

    def reset_world(self, model: Any, data: Any, rng: np.random.Generator,
                    terms: Sequence[Any] | None = None) -> dict[str, Any]:
        """Draw every episode term for one world from its generator (in a fixed order), write `model`
        from the nominal values, perturb the reset state in `data`; return the draws (by term name,
        always with `"actuation_delay_steps"`). Call it after the task's reset, before mj_forward.
        `terms`: these episode terms instead of the configured ones (ADR's current ranges)."""
        drawn: dict[str, Any] = {"actuation_delay_steps": 0}
        for term in self.episode_terms if terms is None else terms:
            value = term.sample(rng, self.nominal)
            term.apply(model, data, self.nominal, value)
            drawn[term.name] = value
            if term.name == "actuation_delay":
                drawn["actuation_delay_steps"] = int(value)
        return drawn

    def perturb_actions(self, actions: np.ndarray, rng: Rng) -> np.ndarray:
        """`(N, act_dim)` policy actions in [-1, 1] plus action noise; the same array when it is off."""
        return actions if self._act is None else self._act.perturb(actions, rng)

    def perturb_observations(self, obs: np.ndarray, rng: Rng) -> np.ndarray:
        """`(N, obs_dim)` observations plus observation noise; the same array when it is off."""
        return obs if self._obs is None else self._obs.perturb(obs, rng)
