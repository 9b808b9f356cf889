"""Fixed scales of a MuJoCo model's physical parameters, applied from the nominal values (so scales never
compound): the axes of `robot-rl robustness`. Works on any task whose env exposes its MjModel
(`sim.rendering.mujoco_handles`): the Gymnasium and dm_control tasks today.

Terms (each a factor, 1 = nominal):
- `mass`: every body's mass and rotational inertia (a uniformly denser robot);
- `friction`: every geom's sliding, torsional and rolling friction;
- `damping`: every degree of freedom's joint damping;
- `gain`: every actuator's gain, and a position servo's bias (kp) with it, so it stays a servo.

These are the episode-level terms of the domain-randomization contract (body_mass_scale,
geom_friction_scale, joint_damping_scale, actuator_gain_scale) held at one value instead of drawn.
When sim/randomization.py's `Randomizer` has them, robustness should evaluate through it instead (a
`RandomizationConfig` whose ranges are [s, s] at each grid point), so that training and this map apply
one definition of each term; this module then goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError

TERMS = ("mass", "friction", "damping", "gain")


class ModelScaler:
    """Remembers a model's nominal parameters; `apply(scales)` writes nominal × scale into the model."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.nominal = {
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "geom_friction": model.geom_friction.copy(),
            "dof_damping": model.dof_damping.copy(),
            "actuator_gainprm": model.actuator_gainprm.copy(),
            "actuator_biasprm": model.actuator_biasprm.copy(),
        }
        # A position servo's bias is -kp·q: scaling its gain without the bias would make it another servo.
        gain, bias = self.nominal["actuator_gainprm"][:, 0], self.nominal["actuator_biasprm"][:, 1]
        self._servo = np.isclose(bias, -gain) & (gain != 0)

    def apply(self, scales: Mapping[str, float]) -> None:
        """Set the model to the nominal values scaled by `scales` (term -> factor); other terms nominal."""
        unknown = [t for t in scales if t not in TERMS]
        if unknown:
            raise ConfigError(f"unknown physics term {unknown[0]!r}; valid terms: {', '.join(TERMS)}")
        for term, factor in scales.items():
            if not (np.isfinite(factor) and factor > 0):
                raise ConfigError(f"{term}: a scale must be a positive number, got {factor!r}")
        m, n = self.model, self.nominal
        mass, friction = scales.get("mass", 1.0), scales.get("friction", 1.0)
        damping, gain = scales.get("damping", 1.0), scales.get("gain", 1.0)
        m.body_mass[:] = n["body_mass"] * mass
        m.body_inertia[:] = n["body_inertia"] * mass
        m.geom_friction[:] = n["geom_friction"] * friction
        m.dof_damping[:] = n["dof_damping"] * damping
        m.actuator_gainprm[:] = n["actuator_gainprm"]
        m.actuator_gainprm[:, 0] *= gain
        m.actuator_biasprm[:] = n["actuator_biasprm"]
        m.actuator_biasprm[self._servo, 1] *= gain
