"""Island discovery off (`sim.engine.islands`) changes no number of a single-tree task's physics.

For every task the registry runs on the engine, a model of one kinematic tree is stepped twice from the
same random, contact-rich states under the same random controls, once as loaded and once with island
discovery off: state, accelerations, constraint forces and `cfrc_ext` must agree bit for bit. A model of
several trees keeps the discovery. The engine applies the setting to every world's model.
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest

from robot_rl import sim
from robot_rl.sim.engine.islands import ISLAND, skip_island_discovery
from robot_rl.sim.engine.task import load_model
from robot_rl.sim.registry import engine_task, engine_task_names

PERIODS = 150


def _trajectory(model: mujoco.MjModel, frame_skip: int, qpos: np.ndarray, qvel: np.ndarray,
                ctrl: np.ndarray) -> tuple[np.ndarray, int]:
    """Every period's qpos, qvel, qacc, qfrc_constraint and cfrc_ext, flattened; and the contacts seen."""
    d = mujoco.MjData(model)
    d.qpos[:], d.qvel[:] = qpos, qvel
    mujoco.mj_forward(model, d)
    rows, contacts = [], 0
    for u in ctrl:
        d.ctrl[:] = u
        mujoco.mj_step(model, d, frame_skip)
        mujoco.mj_rnePostConstraint(model, d)
        contacts += d.ncon
        rows.append(np.concatenate([d.qpos, d.qvel, d.qacc, d.qfrc_constraint, d.cfrc_ext.ravel()]))
    return np.array(rows), contacts


@pytest.mark.parametrize("task", engine_task_names())
def test_single_tree_physics_is_bit_identical_without_island_discovery(task):
    definition = engine_task(task)
    model = load_model(definition)
    fast = copy.copy(model)
    if not skip_island_discovery(fast):
        assert model.ntree > 1 and not fast.opt.disableflags & ISLAND
        return
    assert model.ntree <= 1 and fast.opt.disableflags & ISLAND and not model.opt.disableflags & ISLAND
    rng = np.random.default_rng(11)
    low, high = model.actuator_ctrlrange.T
    contacts = 0
    for _ in range(3):  # random states: joints perturbed, a floating base lowered into the floor
        qpos = model.qpos0 + rng.uniform(-0.2, 0.2, model.nq)
        if model.njnt and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE:
            qpos[2] -= rng.uniform(0.0, 0.3)
        qvel = rng.normal(0.0, 1.0, model.nv)
        ctrl = rng.uniform(low, high, (PERIODS, model.nu))
        slow_rows, seen = _trajectory(model, definition.frame_skip, qpos, qvel, ctrl)
        fast_rows, _ = _trajectory(fast, definition.frame_skip, qpos, qvel, ctrl)
        np.testing.assert_array_equal(fast_rows, slow_rows)
        contacts += seen
    if model.ngeom > 1 and task in ("Ant-v5", "Humanoid-v5", "Hopper-v5", "Walker2d-v5", "HalfCheetah-v5"):
        assert contacts > 0  # the comparison crossed contacts, where a solve happens


def test_the_engine_skips_island_discovery_on_a_single_tree_task_only():
    for task, skipped in (("Ant-v5", True), ("cube:rotate-z", False)):
        env = sim.make(task, 2, seed=0, vectorization="batched", threads=1)
        try:
            models = [env.engine.nominal] + [w.model for w in env.worlds]
            assert all(bool(m.opt.disableflags & ISLAND) == skipped for m in models), task
        finally:
            env.close()
