"""`NativeBatch.post_constraint` against MuJoCo's own `mj_rnePostConstraint` after `mj_step`, as
Gymnasium calls it.

Each world of the batch is stepped beside its own MjData (the batch is bit-identical to such a loop);
after every control period the reference MjData gets `mj_rnePostConstraint`, and the batch's bound
`cfrc_ext` (computed on the batch's threads through `mjb_apply`) must equal it bit for bit, in
contact-rich states (worlds dropped onto the floor, pushed by `xfrc_applied`, held by a weld) and in
worlds where nothing acts (exactly zero there), with the trajectories themselves unchanged by the call.
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest
from mujoco.batch import SimulationError

from robot_rl.sim.engine.native_batch import NativeBatch
from robot_rl.sim.engine.task import load_model
from robot_rl.sim.registry import engine_task

INTEGRATION = int(mujoco.mjtState.mjSTATE_INTEGRATION)

# Two free bodies over a floor: the first welded to the world, the second free; Euler integration
# (the v5 tasks' RK4 is covered by Ant and Humanoid).
WELDED = """
<mujoco>
  <worldbody>
    <geom name="floor" type="plane" size="5 5 .1"/>
    <body name="held" pos="0 0 .3">
      <freejoint/>
      <geom type="box" size=".1 .1 .1" mass="1"/>
      <body name="arm" pos=".2 0 0">
        <joint type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 .2 0 0" size=".04" mass=".3"/>
      </body>
    </body>
    <body name="loose" pos=".8 0 .12">
      <freejoint/>
      <geom type="sphere" size=".1" mass=".5"/>
    </body>
  </worldbody>
  <equality>
    <weld body1="held"/>
  </equality>
  <actuator>
    <motor joint="hinge_arm" gear="1" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
""".replace('<joint type="hinge"', '<joint name="hinge_arm" type="hinge"')


def _worlds(model: mujoco.MjModel, n: int, rng: np.random.Generator, drop: float
            ) -> tuple[NativeBatch, list[mujoco.MjModel], list[mujoco.MjData]]:
    """A batch of n worlds and a reference MjData each, from the same random states: qpos0
    perturbed, the floating base lowered by up to `drop` metres (into contact) and spun."""
    models = [copy.copy(model) for _ in range(n)]
    batch = NativeBatch(model, n, 2)
    batch.set_models(models)
    refs = []
    for i in range(n):
        d = mujoco.MjData(models[i])
        d.qpos[:] = model.qpos0 + rng.uniform(-0.1, 0.1, model.nq)
        if model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE:
            d.qpos[2] -= rng.uniform(0.0, drop)
        d.qvel[:] = rng.normal(0.0, 0.5, model.nv)
        mujoco.mj_forward(models[i], d)
        mujoco.mj_getState(models[i], d, batch.state[i], INTEGRATION)
        refs.append(d)
    return batch, models, refs


def _run(model: mujoco.MjModel, frame_skip: int, n: int, periods: int, seed: int, drop: float,
         push: float = 0.0) -> dict[str, int]:
    """Step n worlds for `periods` control periods of random controls (and, with `push`, random
    `xfrc_applied` on body 1 in every other world); compare every period. Returns what was seen."""
    rng = np.random.default_rng(seed)
    batch, models, refs = _worlds(model, n, rng, drop)
    ctrl, xfrc = batch.bind("ctrl"), batch.bind("xfrc_applied")
    qpos, cfrc = batch.bind("qpos"), batch.bind("cfrc_ext")
    low, high = model.actuator_ctrlrange.T
    seen = {"idle_zero": 0, "contact_nonzero": 0}
    for t in range(periods):
        u = rng.uniform(low, high, (n, model.nu))
        ctrl[...] = u
        if push:
            xfrc[...] = 0.0
            xfrc[::2, 1] = rng.normal(0.0, push, (len(range(0, n, 2)), 6)) * (t % 3 == 0)
        for i, d in enumerate(refs):
            d.ctrl[:] = u[i]
            d.xfrc_applied[:] = xfrc[i]
        batch.step(nstep=frame_skip)
        batch.post_constraint()
        for i, d in enumerate(refs):
            mujoco.mj_step(models[i], d, frame_skip)
            mujoco.mj_rnePostConstraint(models[i], d)
        for i, d in enumerate(refs):
            np.testing.assert_array_equal(qpos[i], d.qpos, err_msg=f"period {t}, world {i}")
            np.testing.assert_array_equal(cfrc[i], d.cfrc_ext, err_msg=f"period {t}, world {i}")
            seen["contact_nonzero"] += int(d.ncon > 0 and d.cfrc_ext.any())
            seen["idle_zero"] += int(d.ncon == 0 and not d.xfrc_applied.any() and not cfrc[i].any())
    batch.close()
    return seen


@pytest.mark.parametrize("task, drop", [("Ant-v5", 0.5), ("Humanoid-v5", 0.3)])
def test_cfrc_ext_equals_mj_rne_post_constraint_on_the_v5_models(task, drop):
    definition = engine_task(task)
    seen = _run(load_model(definition), definition.frame_skip, n=12, periods=150, seed=7, drop=drop)
    assert seen["contact_nonzero"] > 100  # contact-rich: the comparison saw real contact forces
    if task == "Ant-v5":
        assert seen["idle_zero"] > 0  # and worlds in the air, where it is exactly zero


def test_applied_forces_and_a_weld_reach_cfrc_ext_without_contacts():
    model = mujoco.MjModel.from_xml_string(WELDED)
    seen = _run(model, 4, n=6, periods=120, seed=3, drop=0.0, push=5.0)
    assert seen["idle_zero"] == 0  # the weld holds every world: never a zero cfrc_ext
    assert seen["contact_nonzero"] > 0


def test_xfrc_applied_alone_reaches_cfrc_ext():
    model = mujoco.MjModel.from_xml_string(WELDED.replace("<weld body1=\"held\"/>", ""))
    batch = NativeBatch(model, 2, 1)
    batch.bind("qpos")[:, 2] = 2.0  # both free bodies high in the air: no contact
    batch.bind("qpos")[:, 10] = 2.0  # (the loose sphere)
    batch.bind("xfrc_applied")[1, 1, 2] = 3.0  # an upward push on world 1's base
    batch.step(nstep=1)
    batch.post_constraint()
    out = batch.bind("cfrc_ext")
    assert not out[0].any()
    assert out[1, 1, 5] == 3.0  # the push's z force, in the body's torque:force row
    batch.close()


def test_a_simulation_that_raises_names_itself_and_the_others_run_on():
    """A world whose contacts overflow its arena raises MuJoCo's error as SimulationError naming it;
    the other world stepped."""
    model = mujoco.MjModel.from_xml_string(WELDED.replace("<mujoco>", "<mujoco><size memory=\"6K\"/>"))
    batch = NativeBatch(model, 2, 1)
    batch.bind("qpos")[1, 2] = -0.5  # world 1's base half a metre into the floor: contacts to spare
    t0 = batch.bind("time").copy()
    with pytest.raises(SimulationError) as raised:
        for _ in range(20):
            batch.step(nstep=1)
    assert raised.value.ids.tolist() == [1]
    assert batch.bind("time")[0] > t0[0]
    batch.close()


def test_unknown_fields_are_refused_by_name():
    batch = NativeBatch(mujoco.MjModel.from_xml_string(WELDED), 2, 1)
    with pytest.raises(ValueError, match="qpos_typo"):
        batch.bind("qpos_typo")
    batch.close()


def test_the_engine_rows_and_each_world_data_hold_gymnasium_cfrc_ext():
    """On the engine (Ant on MuJoCo's batch), the observed rows and `world.data` (the declared
    interface, pulled from the batch when read) both carry `mj_rnePostConstraint`'s `cfrc_ext`."""
    from robot_rl import sim

    env = sim.make("Ant-v5", 4, seed=5, vectorization="batched", threads=2)
    try:
        env.reset()
        rng = np.random.default_rng(5)
        touching = 0
        for _ in range(60):
            env.step(rng.uniform(-1.0, 1.0, (4, env.task_spec.act_dim)).astype(np.float32))
            for i, world in enumerate(env.worlds):
                rows = env.engine.world_state(i)["cfrc_ext"]
                np.testing.assert_array_equal(world.data.cfrc_ext.ravel(), rows)
                check = copy.copy(world.data)
                mujoco.mj_rnePostConstraint(world.model, check)
                np.testing.assert_array_equal(check.cfrc_ext.ravel(), rows)
                touching += int(world.data.ncon > 0 and rows.any())
        assert touching > 0
    finally:
        env.close()
