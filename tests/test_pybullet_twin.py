"""MJCF -> PyBullet: the carried parameters equal MuJoCo's, read back from PyBullet, and behave as
MuJoCo's do (closed-form motions of a one-joint model); the Gymnasium models' kinematics agree."""

from __future__ import annotations

import math

import gymnasium
import mujoco
import numpy as np
import pytest

from robot_rl.sim.pybullet_twin import ROTOR_RATIO, PyBulletTwin, TransferError

TASKS = ["InvertedPendulum-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5"]


@pytest.fixture(scope="module", params=TASKS)
def gym_twin(request):
    sim = gymnasium.make(request.param).unwrapped
    twin = PyBulletTwin(sim.model, sim.fullpath)
    yield request.param, sim.model, twin
    twin.close()
    sim.close()


def test_masses_and_inertias_equal_mujocos(gym_twin):
    _, m, twin = gym_twin
    total = 0.0
    for b in range(1, m.nbody):
        d = twin.dynamics(b)
        assert d["mass"] == pytest.approx(m.body_mass[b], rel=1e-12)
        np.testing.assert_allclose(d["inertia"], m.body_inertia[b], rtol=1e-9)
        total += d["mass"]
    # loadMJCF alone makes the Ant 182 kg (density 1000, <default> and settotalmass ignored)
    assert total == pytest.approx(m.body_mass.sum(), rel=1e-12)


def test_inertial_frames_and_kinematics_equal_mujocos(gym_twin):
    _, m, twin = gym_twin
    data = mujoco.MjData(m)
    rng = np.random.default_rng(5)
    for trial in range(4):
        qpos = m.qpos0.copy()
        if trial:
            for j in range(m.njnt):
                a = m.jnt_qposadr[j]
                if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
                    qpos[a:a + 3] += rng.uniform(-1, 1, 3)
                    q = rng.normal(size=4)
                    qpos[a + 3:a + 7] = q / np.linalg.norm(q)
                elif m.jnt_limited[j]:
                    qpos[a] = rng.uniform(*m.jnt_range[j])
                else:
                    qpos[a] += rng.uniform(-1, 1)
        twin.set_state(qpos, np.zeros(m.nv))
        data.qpos[:] = qpos
        mujoco.mj_kinematics(m, data)
        for b in range(1, m.nbody):
            d = twin.dynamics(b)
            # PyBullet keeps the MJCF's frames in single precision: 1e-7 m
            np.testing.assert_allclose(d["com"], data.xipos[b], atol=1e-6)
            np.testing.assert_allclose(d["frame"], data.ximat[b].reshape(3, 3), atol=1e-6)


def test_state_round_trips_in_mujocos_layout(gym_twin):
    _, m, twin = gym_twin
    rng = np.random.default_rng(1)
    qpos = m.qpos0 + rng.uniform(-0.1, 0.1, m.nq)
    if m.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE:
        qpos[3:7] /= np.linalg.norm(qpos[3:7])
    qvel = rng.uniform(-1, 1, m.nv)
    twin.set_state(qpos, qvel)
    q, v = twin.get_state()
    np.testing.assert_allclose(q, qpos, atol=1e-9)
    np.testing.assert_allclose(v, qvel, atol=1e-9)


def test_joint_limits_and_armature_rotors(gym_twin):
    _, m, twin = gym_twin
    for j in range(m.njnt):
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
        if m.jnt_limited[j]:
            np.testing.assert_allclose(twin.joint_limits(name), m.jnt_range[j], atol=1e-9)
    with_armature = {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(m.njnt)
                     if m.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE and m.dof_armature[m.jnt_dofadr[j]] > 0}
    assert {r.joint for r in twin.rotors} == with_armature
    for r in twin.rotors:
        j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, r.joint)
        # reflected inertia N^2 J of the rotor, as PyBullet holds it, is the joint's armature
        held = twin._pb.getDynamicsInfo(r.body, r.index, physicsClientId=twin.client)[2]
        np.testing.assert_allclose(np.array(held) * r.ratio**2, m.dof_armature[m.jnt_dofadr[j]], rtol=1e-9)


def test_hopper_starts_at_its_own_height():
    sim = gymnasium.make("Hopper-v5").unwrapped
    twin = PyBulletTwin(sim.model, sim.fullpath)
    try:
        torso = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        assert twin.dynamics(torso)["com"][2] == pytest.approx(1.25)  # loadMJCF alone: 2.5
    finally:
        twin.close()
        sim.close()


def test_hopper_in_the_air_moves_as_in_mujoco():
    """Armature, damping, gear and inertias together: 0.4 s of random torques off the ground, against
    MuJoCo's Euler integrator (RK4 vs semi-implicit Euler is a gap of its own, not carried here)."""
    sim = gymnasium.make("Hopper-v5").unwrapped
    m = sim.model
    m.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
    twin = PyBulletTwin(m, sim.fullpath)
    try:
        data = mujoco.MjData(m)
        rng = np.random.default_rng(1)
        data.qpos[:] = [0.0, 6.25, 0.05, -0.5, -0.5, 0.1]  # 5 m up, joints away from their limits
        data.qvel[:] = rng.uniform(-0.1, 0.1, m.nv)
        mujoco.mj_forward(m, data)
        twin.set_state(data.qpos, data.qvel)
        for _ in range(200):
            ctrl = rng.uniform(-1, 1, m.nu)
            data.ctrl[:] = ctrl
            mujoco.mj_step(m, data)
            twin.step(ctrl, 1)
        q, v = twin.get_state()
        assert np.abs(q - data.qpos).max() < 2e-3
        assert np.abs(v - data.qvel).max() < 2e-2
    finally:
        twin.close()
        sim.close()


# ---------------------------------------------------------------------------------------------------
# One hinge, closed forms. The link: 1 kg at 0.3 m, 0.01 kg m^2 about its COM -> I = 0.1 kg m^2.

I_JOINT = 0.1


def one_hinge(tmp_path, damping=0.0, armature=0.0, frictionloss=0.0, stiffness=0.0, gear=1.0,
              limit: tuple[float, float] | None = None, gravity=False):
    limited = f'limited="true" range="{limit[0]} {limit[1]}"' if limit else 'limited="false"'
    xml = f"""<mujoco model="hinge">
  <compiler angle="radian"/>
  <option timestep="0.001" integrator="Euler" gravity="0 0 {-9.81 if gravity else 0}"/>
  <default><joint damping="99" armature="99"/></default>
  <worldbody>
    <body name="base" pos="0 0 1">
      <geom name="base_geom" type="sphere" size="0.02" mass="0" contype="0" conaffinity="0"/>
      <body name="link">
        <joint name="hinge" type="hinge" axis="0 1 0" damping="{damping}" armature="{armature}"
               frictionloss="{frictionloss}" stiffness="{stiffness}" {limited}/>
        <geom name="link_geom" type="capsule" fromto="0 0 0 0 0 -0.6" size="0.02" contype="0"
              conaffinity="0"/>
        <inertial pos="0 0 -0.3" mass="1" diaginertia="0.01 0.01 0.01"/>
      </body>
    </body>
  </worldbody>
  <actuator><motor joint="hinge" gear="{gear}" ctrlrange="-1 1"/></actuator>
</mujoco>"""
    path = tmp_path / "hinge.xml"
    path.write_text(xml)
    model = mujoco.MjModel.from_xml_path(str(path))
    return model, PyBulletTwin(model, path)


def run(twin, seconds, ctrl=0.0, q0=0.0, v0=0.0):
    twin.set_state(np.array([q0]), np.array([v0]))
    twin.step(np.array([ctrl]), round(seconds / 0.001))
    q, v = twin.get_state()
    return float(q[0]), float(v[0])


def test_damping_decays_velocity_exponentially(tmp_path):
    _, twin = one_hinge(tmp_path, damping=0.2)
    _, v = run(twin, 1.0, v0=1.0)
    twin.close()
    assert v == pytest.approx(math.exp(-0.2 * 1.0 / I_JOINT), rel=5e-3)  # undamped: 1.0


def test_armature_and_gear_set_the_acceleration(tmp_path):
    _, twin = one_hinge(tmp_path, armature=0.3, gear=5.0)
    _, v = run(twin, 0.5, ctrl=0.4)  # torque 5 * 0.4 = 2 N m on I + armature = 0.4 kg m^2
    assert len(twin.rotors) == 1 and twin.rotors[0].ratio == ROTOR_RATIO
    twin.close()
    assert v == pytest.approx(2.0 / (I_JOINT + 0.3) * 0.5, rel=1e-2)  # without armature: 10 rad/s


def test_control_is_clipped_to_ctrlrange(tmp_path):
    _, twin = one_hinge(tmp_path, gear=2.0)
    _, v = run(twin, 0.1, ctrl=5.0)  # ctrl clipped to 1: torque 2
    twin.close()
    assert v == pytest.approx(2.0 / I_JOINT * 0.1, rel=1e-3)


def test_frictionloss_holds_below_and_subtracts_above(tmp_path):
    _, twin = one_hinge(tmp_path, frictionloss=0.5)
    q, v = run(twin, 0.2, ctrl=0.3)
    assert abs(q) < 1e-6 and abs(v) < 1e-6
    _, v = run(twin, 0.2, ctrl=1.0)
    twin.close()
    assert v == pytest.approx((1.0 - 0.5) / I_JOINT * 0.2, rel=1e-2)


def test_stiffness_oscillates_at_its_natural_frequency(tmp_path):
    _, twin = one_hinge(tmp_path, stiffness=2.0)
    q, _ = run(twin, 0.5, q0=0.1)
    twin.close()
    omega = math.sqrt(2.0 / I_JOINT)
    assert q == pytest.approx(0.1 * math.cos(omega * 0.5), rel=2e-2)


def test_limits_stop_the_joint(tmp_path):
    _, twin = one_hinge(tmp_path, limit=(-0.2, 0.2))
    assert twin.joint_limits("hinge") == pytest.approx((-0.2, 0.2))
    q, _ = run(twin, 0.5, ctrl=1.0)
    twin.close()
    assert 0.15 < q < 0.21


def test_gravity_pendulum_period(tmp_path):
    model, twin = one_hinge(tmp_path, gravity=True)
    q, _ = run(twin, 0.3, q0=0.05)
    twin.close()
    omega = math.sqrt(1.0 * 9.81 * 0.3 / I_JOINT)  # small-angle compound pendulum
    assert q == pytest.approx(0.05 * math.cos(omega * 0.3), abs=2e-3)
    assert np.allclose(model.opt.gravity, [0, 0, -9.81])


@pytest.mark.parametrize(("body", "what"), [
    ('<body name="b"><joint name="ball" type="ball"/><geom size="0.1"/></body>', "ball joint"),
    ('<body name="b"><joint name="j" armature="0.1"/><geom size="0.1"/></body>', "armature"),
])
def test_what_cannot_be_carried_is_refused(tmp_path, body, what):
    path = tmp_path / "bad.xml"
    path.write_text(f'<mujoco model="bad"><worldbody>{body}</worldbody></mujoco>')
    model = mujoco.MjModel.from_xml_path(str(path))
    with pytest.raises(TransferError, match=what):
        PyBulletTwin(model, path)
