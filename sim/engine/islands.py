"""Constraint-island discovery off for a model of one kinematic tree: the same numbers, less work.

Why: MuJoCo 3.17 groups the constrained degrees of freedom into islands at every force evaluation, so
that trees which do not touch each other are solved apart. A model with one kinematic tree (every
locomotion task: a floating base and its limbs, or a chain on a fixed base) has at most one island,
and its constraint solve gives the same numbers without the grouping, bit for bit (held by
tests/test_islands.py for every single-tree task the engine runs). Finding that one island costs
about 3-7 % of `mj_step` on Hopper, Ant and Humanoid (RK4: four force evaluations a step). A model
with several trees (a hand and the cube it holds) keeps the discovery: its islands can change the solve.
"""

from __future__ import annotations

import mujoco

ISLAND = int(mujoco.mjtDisableBit.mjDSBL_ISLAND)


def skip_island_discovery(model: mujoco.MjModel) -> bool:
    """Turn island discovery off in `model` if it has one kinematic tree; True if it did."""
    if model.ntree > 1:
        return False
    model.opt.disableflags |= ISLAND
    return True
