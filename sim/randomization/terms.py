"""The randomization terms: one small class each, written over MuJoCo's model arrays, so every MuJoCo
task takes every term with no code of its own.

An episode term has `check(nominal, physics_steps)` (a ValueError if the task cannot take it),
`sample(rng, nominal)` (its draw for one world and one episode, from that world's generator) and
`apply(model, data, nominal, value)`, which writes the world's model from the NOMINAL values (never
from the previous episode's, so nothing compounds). A step term has `perturb(x, rng)` over `(N, dim)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Rng = np.random.Generator | Sequence[np.random.Generator]


@dataclass(frozen=True)
class _Scale:
    """A factor in [low, high] on one model array: per element, or (`per_world`) one for all elements
    of the world, broadcast (the value has one entry per element either way)."""

    bounds: tuple[float, float]
    per_world: bool = False
    name = ""
    episode = True
    scale = True

    def size(self, model: Any) -> int:
        raise NotImplementedError

    def check(self, nominal: Any, physics_steps: int) -> None:
        if self.size(nominal) == 0:
            raise ValueError("the model has nothing to scale")

    def sample(self, rng: np.random.Generator, nominal: Any) -> np.ndarray:
        if self.per_world:
            return np.full(self.size(nominal), rng.uniform(self.bounds[0], self.bounds[1]))
        return rng.uniform(self.bounds[0], self.bounds[1], self.size(nominal))


class BodyMassScale(_Scale):
    """body_mass and body_inertia (uniform density change: the inertia scales with the mass)."""

    name = "body_mass_scale"

    def size(self, model: Any) -> int:
        return int(model.nbody)

    def apply(self, model: Any, data: Any, nominal: Any, value: np.ndarray) -> None:
        model.body_mass[:] = nominal.body_mass * value
        model.body_inertia[:] = nominal.body_inertia * value[:, None]


class GeomFrictionScale(_Scale):
    """geom_friction[:, 0], the sliding friction (torsional and rolling stay nominal)."""

    name = "geom_friction_scale"

    def size(self, model: Any) -> int:
        return int(model.ngeom)

    def apply(self, model: Any, data: Any, nominal: Any, value: np.ndarray) -> None:
        model.geom_friction[:, 0] = nominal.geom_friction[:, 0] * value


class JointDampingScale(_Scale):
    """dof_damping."""

    name = "joint_damping_scale"

    def size(self, model: Any) -> int:
        return int(model.nv)

    def apply(self, model: Any, data: Any, nominal: Any, value: np.ndarray) -> None:
        model.dof_damping[:] = nominal.dof_damping * value


class ActuatorGainScale(_Scale):
    """actuator_gainprm[:, 0] and actuator_biasprm[:, :3] together: a motor's gain, a servo's kp with
    its -kp and -kv, so the force scales and a position setpoint stays where it was."""

    name = "actuator_gain_scale"

    def size(self, model: Any) -> int:
        return int(model.nu)

    def check(self, nominal: Any, physics_steps: int) -> None:
        import mujoco

        super().check(nominal, physics_steps)
        fixed = nominal.actuator_gaintype == mujoco.mjtGain.mjGAIN_FIXED
        if not fixed.all():
            raise ValueError(f"actuators {np.flatnonzero(~fixed).tolist()} have no fixed gain to scale")

    def apply(self, model: Any, data: Any, nominal: Any, value: np.ndarray) -> None:
        model.actuator_gainprm[:, 0] = nominal.actuator_gainprm[:, 0] * value
        model.actuator_biasprm[:, :3] = nominal.actuator_biasprm[:, :3] * value[:, None]


@dataclass(frozen=True)
class GravityTilt:
    """opt.gravity rotated by an angle in [low, high] about a horizontal axis of uniform direction.
    Value: (angle rad, axis azimuth rad)."""

    bounds: tuple[float, float]
    name = "gravity_tilt"
    episode = True
    scale = False

    def check(self, nominal: Any, physics_steps: int) -> None:
        if not np.any(nominal.opt.gravity):
            raise ValueError("the model has no gravity to tilt")

    def sample(self, rng: np.random.Generator, nominal: Any) -> np.ndarray:
        return np.array([rng.uniform(*self.bounds), rng.uniform(0.0, 2 * math.pi)])

    def apply(self, model: Any, data: Any, nominal: Any, value: np.ndarray) -> None:
        angle, azimuth = value
        axis = np.array([math.cos(azimuth), math.sin(azimuth), 0.0])
        g = nominal.opt.gravity
        # Rodrigues' rotation of g about the unit axis
        model.opt.gravity[:] = (g * math.cos(angle) + np.cross(axis, g) * math.sin(angle)
                                + axis * (axis @ g) * (1 - math.cos(angle)))


@dataclass(frozen=True)
class ActuationDelay:
    """Whole physics steps (seconds rounded) during which the previous command stays applied; the model is
    untouched: whoever steps the physics applies it (`Randomizer.reset_world` returns the draw)."""

    bounds: tuple[float, float]
    name = "actuation_delay"
    episode = True
    scale = False

    def steps(self, physics_dt: float) -> tuple[int, int]:
        low, high = (round(s / physics_dt) for s in self.bounds)
        return int(low), int(high)

    def check(self, nominal: Any, physics_steps: int) -> None:
        low, high = self.steps(float(nominal.opt.timestep))
        if high > physics_steps:
            raise ValueError(f"{list(self.bounds)} s is [{low}, {high}] physics steps of "
                             f"{float(nominal.opt.timestep):g} s; it must lie in [0, {physics_steps}] "
                             f"(one control period)")

    def sample(self, rng: np.random.Generator, nominal: Any) -> int:
        low, high = self.steps(float(nominal.opt.timestep))
        return int(rng.integers(low, high + 1))

    def apply(self, model: Any, data: Any, nominal: Any, value: int) -> None:
        """Nothing to write: the stepping holds the previous control for `value` physics steps."""


@dataclass(frozen=True)
class InitialStateNoise:
    """Uniform noise of half-width `scale` on every dof's position (integrated with mj_integratePos, so
    free and ball joints' quaternions stay unit) and velocity. Value: `(2, nv)` rows dq, dqvel."""

    scale: float
    name = "initial_state_noise"
    episode = True
    scale = False

    def check(self, nominal: Any, physics_steps: int) -> None:
        if nominal.nv == 0:
            raise ValueError("the model has no degrees of freedom")

    def sample(self, rng: np.random.Generator, nominal: Any) -> np.ndarray:
        return rng.uniform(-self.scale, self.scale, (2, int(nominal.nv)))

    def apply(self, model: Any, data: Any, nominal: Any, value: np.ndarray) -> None:
        import mujoco

        mujoco.mj_integratePos(model, data.qpos, value[0], 1.0)
        data.qvel[:] += value[1]


@dataclass(frozen=True)
class _Noise:
    """Gaussian noise of standard deviation `std` on a `(N, dim)` array, each step. `rng` is one
    generator for all rows, or one per world (row i from world i's generator)."""

    std: float
    episode = False
    scale = False

    def check(self, nominal: Any, physics_steps: int) -> None:
        """Any task takes it."""

    def perturb(self, x: np.ndarray, rng: Rng) -> np.ndarray:
        if isinstance(rng, np.random.Generator):
            return x + rng.normal(0.0, self.std, x.shape)
        if len(rng) != len(x):
            raise ValueError(f"{len(rng)} generators for {len(x)} rows")
        return x + np.stack([g.normal(0.0, self.std, x.shape[1:]) for g in rng])


class ObservationNoise(_Noise):
    """On the observation the policy sees (obs units), after the spec built it."""

    name = "observation_noise"


class ActionNoise(_Noise):
    """On the policy's action in [-1, 1], before the spec maps it to robot units (and clips)."""

    name = "action_noise"


# Every term, by its launch-file key; episode terms are drawn in this order.
TERMS: dict[str, Any] = {t.name: t for t in (  # the term classes (each has name, episode, scale)
    BodyMassScale, GeomFrictionScale, JointDampingScale, ActuatorGainScale, GravityTilt, ActuationDelay,
    InitialStateNoise, ObservationNoise, ActionNoise)}
