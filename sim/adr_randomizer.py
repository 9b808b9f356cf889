"""ADR on the engine: the `randomize:` section's range terms, their ranges driven by `sim.adr.ADR`.

With `adr.enabled`, each active range term of `randomize:` (body_mass_scale, geom_friction_scale,
joint_damping_scale, actuator_gain_scale, gravity_tilt, actuation_delay) becomes one ADR parameter:
its range starts at the nominal value (a factor of 1, or 0 rad / 0 s) and ADR widens it, one step at a
time, never past the bounds the `randomize:` section gives (they are the hard limits). The step
noises (observation_noise, action_noise, initial_state_noise) keep their configured values.

`ADRRandomizer` is the engine's Randomizer for such a run: at each world's episode start it asks ADR
for a draw (from the world's generator); a boundary world pins its parameter at the bound, every
element of it (all bodies' masses at the low factor, say); the others draw each element uniformly in
the current range. The boundary is reported as `"<name>:<low|high>"` (or "") in the world's
`randomization` info, which reaches `final_info` when the episode ends, where the trainer feeds the
episode's performance back (`ADR.record`).

`adr.goal_angle` adds one parameter of the task itself, not of the model: cube:reorient's goal
curriculum. Each episode draws its `goal_angle` like any other parameter (a boundary world pins it at a
bound) and hands it to the task state (`set_episode_parameters`) before the engine resets that world's
state, which then draws the episode's goals within that angle of the cube's orientation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError

from .adr import ADR, ADRConfig, ADRParameter
from .randomization import RandomizationConfig, Randomizer

# term -> (nominal value, default widening step, lower hard floor)
RANGE_TERMS: dict[str, tuple[float, float, float]] = {
    "body_mass_scale": (1.0, 0.05, 1e-3),
    "geom_friction_scale": (1.0, 0.05, 0.0),
    "joint_damping_scale": (1.0, 0.05, 0.0),
    "actuator_gain_scale": (1.0, 0.05, 0.0),
    "gravity_tilt": (0.0, 0.02, 0.0),
    "actuation_delay": (0.0, 0.005, 0.0),
}


GOAL_ANGLE_STEP = 0.1
"""Default widening step of `adr.goal_angle`, radians."""
GOAL_ANGLE_TASKS = ("cube:reorient",)
"""The tasks whose state takes ADR's `goal_angle` (sim/cube_task.py `CubeState.set_episode_parameters`)."""


def adr_parameters(randomize: RandomizationConfig, config: ADRConfig) -> list[ADRParameter]:
    """One ADR parameter per active range term of `randomize`, its bounds the hard limits; and the goal
    curriculum's `goal_angle` with `adr.goal_angle` (lower bound pinned at its start)."""
    params = []
    if config.goal_angle is not None:
        start, top = (float(v) for v in config.goal_angle)
        params.append(ADRParameter("goal_angle", nominal=start, minimum=start, maximum=top,
                                   step=float(config.steps.get("goal_angle", GOAL_ANGLE_STEP))))
    for name in randomize.active_names():
        if name not in RANGE_TERMS:
            continue
        nominal, step, floor = RANGE_TERMS[name]
        low, high = getattr(randomize, name)
        params.append(ADRParameter(name, nominal=nominal, step=float(config.steps.get(name, step)),
                                   minimum=max(min(low, nominal), floor), maximum=max(high, nominal)))
    return params


class ADRRandomizer:
    """The engine's Randomizer (same methods) with ADR-driven ranges for the ADR parameters."""

    def __init__(self, adr: ADR, randomize: RandomizationConfig, nominal: Any, physics_dt: float,
                 physics_steps: int | None = None, task_id: str = "the task", task_state: Any = None) -> None:
        self.adr = adr
        self.base = Randomizer(randomize, nominal, physics_dt, physics_steps, task_id)
        self.nominal = self.base.nominal
        self.pushes = self.base.pushes  # not an ADR parameter: the configured pushes
        self.holds = self.base.holds  # nor the holds
        self.task_terms = [n for n in adr.parameters if n == "goal_angle"]
        """ADR parameters of the task itself, handed to `task_state.set_episode_parameters` each reset."""
        if self.task_terms and task_id not in GOAL_ANGLE_TASKS:
            raise ConfigError(f"adr.goal_angle: task {task_id!r} has no goal curriculum; it is for: "
                              f"{', '.join(GOAL_ANGLE_TASKS)}")
        if self.task_terms and task_state is None:
            raise ConfigError("adr.goal_angle: the engine has no task state to hand the goal angle to")
        self.task_state = task_state

    @property
    def active(self) -> bool:
        return True

    def reset_world(self, model: Any, data: Any, rng: np.random.Generator) -> dict[str, Any]:
        """Draw this world's episode: ADR's boundary choice, then every episode term in its fixed order."""
        draw = self.adr.sample(rng)
        ranges, terms = self.adr.ranges(), []
        for term in self.base.episode_terms:
            if term.name in ranges:
                low, high = ranges[term.name]
                if draw.boundary is not None and draw.boundary[0] == term.name:
                    low = high = draw.values[term.name]
                term = dataclasses.replace(term, bounds=(low, high))  # keeps per_world
            terms.append(term)
        drawn = self.base.reset_world(model, data, rng, terms)
        if self.task_terms:  # the engine resets the task state's world next, with these values
            own = {name: draw.values[name] for name in self.task_terms}
            self.task_state.set_episode_parameters(own)
            drawn.update(own)
        drawn["adr_boundary"] = "" if draw.boundary is None else f"{draw.boundary[0]}:{draw.boundary[1]}"
        return drawn

    def perturb_actions(self, actions: np.ndarray, rng: Any) -> np.ndarray:
        return self.base.perturb_actions(actions, rng)

    def perturb_observations(self, obs: np.ndarray, rng: Any) -> np.ndarray:
        return self.base.perturb_observations(obs, rng)


def boundary_episodes(info: dict[str, Any]) -> list[tuple[int, tuple[str, str]]]:
    """(world, (parameter, side)) of every episode that ended in this step as an ADR boundary world."""
    final = info.get("final_info") or {}
    rand = final.get("randomization") or {}
    if "adr_boundary" not in rand:
        return []
    out = []
    for i in np.flatnonzero(rand["_adr_boundary"]):
        label = rand["adr_boundary"][i]
        if label:
            name, _, side = str(label).rpartition(":")
            out.append((int(i), (name, side)))
    return out
