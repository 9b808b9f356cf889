"""Each declared-task term against a hand computation on a known state, two worlds at once."""

import math

import numpy as np
import pytest

from robot_rl.sim.declared import terms

# qpos: base position (3), base quaternion w x y z (4), two hinge joints; qvel: base lin (3), ang (3), joints.
LAYOUT = terms.Layout(qpos_index=np.array([7, 8]), dof_index=np.array([6, 7]),
                      default_pose=np.array([0.1, -0.2]), base_qpos=0, base_dof=0,
                      lower=np.array([-1.0, -np.inf]), upper=np.array([0.3, 0.1]))


def _quat_x(angle: float) -> list[float]:
    return [math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0]


def _quat_z(angle: float) -> list[float]:
    return [math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]


QPOS = np.array([[0.0, 0.0, 0.25, *_quat_x(math.pi / 2), 0.4, 0.2],
                 [1.0, 2.0, 0.40, *_quat_z(math.pi / 2), 0.1, -0.2]])
QVEL = np.array([[1.0, 0.0, 0.0, 0.1, 0.2, 0.3, 5.0, -6.0],
                 [1.0, 0.0, 0.0, -0.1, 0.0, 0.7, 0.5, 0.25]])


def test_joint_pos_is_relative_to_the_default_pose() -> None:
    np.testing.assert_allclose(terms.joint_pos(QPOS, LAYOUT), [[0.3, 0.4], [0.0, 0.0]], atol=1e-12)


def test_joint_vel_reads_the_joint_dofs() -> None:
    np.testing.assert_array_equal(terms.joint_vel(QVEL, LAYOUT), [[5.0, -6.0], [0.5, 0.25]])


def test_projected_gravity_rolled_a_quarter_turn_and_upright() -> None:
    # Rolled +90° about x: R^T (0, 0, -1) = (0, -sin, -cos) = (0, -1, 0); yawed only: still (0, 0, -1).
    np.testing.assert_allclose(terms.projected_gravity(QPOS, LAYOUT), [[0, -1, 0], [0, 0, -1]], atol=1e-12)


def test_base_lin_vel_is_in_the_base_frame() -> None:
    # World velocity (1, 0, 0): rolled about x it stays (1, 0, 0); yawed +90° it is (0, -1, 0) in the base.
    np.testing.assert_allclose(terms.base_lin_vel(QPOS, QVEL, LAYOUT), [[1, 0, 0], [0, -1, 0]], atol=1e-12)


def test_base_ang_vel_is_mujocos_local_angular_velocity() -> None:
    np.testing.assert_array_equal(terms.base_ang_vel(QVEL, LAYOUT), [[0.1, 0.2, 0.3], [-0.1, 0.0, 0.7]])


def test_rotate_inverse_matches_mujocos_rotation_matrix() -> None:
    mujoco = pytest.importorskip("mujoco")
    rng = np.random.default_rng(3)
    quat = rng.normal(size=(6, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    v = rng.normal(size=(6, 3))
    for i in range(6):
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, quat[i])
        np.testing.assert_allclose(terms.rotate_inverse(quat, v)[i], mat.reshape(3, 3).T @ v[i], atol=1e-12)


def test_rewards_by_hand() -> None:
    np.testing.assert_array_equal(terms.alive(2), [1.0, 1.0])
    np.testing.assert_allclose(terms.joint_pos_deviation(QPOS, LAYOUT), [0.09 + 0.16, 0.0], atol=1e-12)
    ctrl, before = np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[0.5, 2.5], [3.0, -4.0]])
    np.testing.assert_allclose(terms.action_rate(ctrl, before), [0.5, 25.0])
    force = np.zeros((2, 8))
    force[0, 6:] = [3.0, 4.0]
    force[1, :6] = 100.0  # forces on the base's dofs are not the robot's torques
    np.testing.assert_allclose(terms.torque(force, LAYOUT), [25.0, 0.0])
    np.testing.assert_allclose(terms.base_height(QPOS, LAYOUT, target=0.3), [0.0025, 0.01], atol=1e-12)
    # World 0: joints (0.4, 0.2) are 0.1 past the upper limits (0.3, 0.1); world 1 is inside them.
    np.testing.assert_allclose(terms.joint_limit(QPOS, LAYOUT), [0.2, 0.0], atol=1e-12)
    below = QPOS.copy()
    below[:, 7:] = [[-1.5, -50.0], [-1.0, 0.1]]  # 0.5 under -1; no lower limit on joint 2; on the limits
    np.testing.assert_allclose(terms.joint_limit(below, LAYOUT), [0.5, 0.0], atol=1e-12)
    # Rolled 90°: gravity (0, -1, 0) in the base, tilt² = 1; yawed only: upright, 0.
    np.testing.assert_allclose(terms.orientation(QPOS, LAYOUT), [1.0, 0.0], atol=1e-12)


def test_terminations_by_hand() -> None:
    np.testing.assert_array_equal(terms.base_height_below(QPOS, LAYOUT, height=0.3), [True, False])
    # World 0 is tilted 90°, world 1 upright (yaw does not tilt).
    np.testing.assert_array_equal(terms.orientation_beyond(QPOS, LAYOUT, limit=1.5), [True, False])
    np.testing.assert_array_equal(terms.orientation_beyond(QPOS, LAYOUT, limit=1.6), [False, False])


# Commands (forward, lateral, yaw rate) of the two worlds.
COMMAND = np.array([[1.0, 0.5, 0.3], [0.0, -1.0, 0.2]])


def test_velocity_tracking_kernels_by_hand() -> None:
    # World 0: base velocity (1, 0, 0) vs command (1, 0.5): error² 0.25 -> exp(-0.25 / 0.25) = e^-1.
    # World 1: yawed 90°, world (1, 0, 0) is (0, -1, 0) in the base = its command: exp(0) = 1.
    np.testing.assert_allclose(terms.track_lin_vel_xy(QPOS, QVEL, LAYOUT, COMMAND, sigma=0.25),
                               [math.exp(-1.0), 1.0], atol=1e-12)
    # Yaw rates 0.3 and 0.7 vs commands 0.3 and 0.2: errors² 0 and 0.25.
    np.testing.assert_allclose(terms.track_ang_vel_z(QVEL, LAYOUT, COMMAND, sigma=0.5),
                               [1.0, math.exp(-0.5)], atol=1e-12)
    # World 0's world velocity (1, 0, 0) has no vertical part in the rolled base; roll/pitch rates².
    np.testing.assert_allclose(terms.lin_vel_z(QPOS, QVEL, LAYOUT), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(terms.ang_vel_xy(QVEL, LAYOUT), [0.05, 0.01], atol=1e-12)
    rolled = QPOS.copy()
    rolled[0, 3:7] = [math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0]  # pitched 90° about y
    np.testing.assert_allclose(terms.lin_vel_z(rolled, QVEL, LAYOUT)[0], 1.0, atol=1e-12)  # x becomes z


def test_contact_and_feet_air_time_over_a_stride_by_hand() -> None:
    # Two worlds, two feet (bodies 1 and 2 of 3); cfrc_ext rows are (torque, force).
    cfrc = np.zeros((2, 3, 6))
    cfrc[0, 1, 5], cfrc[0, 2, 5], cfrc[1, 1, 3] = 5.0, 0.5, 50.0  # lateral force is not a foot contact
    np.testing.assert_array_equal(terms.contact(cfrc, np.array([1, 2]), force=1.0), [[True, False],
                                                                                       [False, False]])
    dt, command = 0.1, np.array([[1.0, 0.0, 0.0], [0.05, 0.0, 0.0]])
    air, last = np.zeros((2, 1)), np.zeros((2, 1), dtype=bool)
    pattern = [False, False, False, False, False, False, True, True]  # 0.6 s in the air, then down
    rewards = []
    for touching in pattern:
        r, air, last = terms.feet_air_time(np.array([[touching], [touching]]), last, air, dt, command, 0.5)
        rewards.append(r)
    # Air time 0.1 .. 0.6 s; the touchdown step adds dt: (0.7 - 0.5) paid once, in world 0 only (world 1's
    # command is under 0.1 m/s); the next step touches again with air time 0: nothing.
    np.testing.assert_allclose([r[0] for r in rewards], [0, 0, 0, 0, 0, 0, 0.2, 0], atol=1e-12)
    assert all(r[1] == 0 for r in rewards)
    np.testing.assert_array_equal(air, [[0.0], [0.0]])


def test_body_distance_and_base_contact_by_hand() -> None:
    xpos = np.zeros((2, 3, 3))
    xpos[0, 2] = [3.0, 4.0, 0.0]
    xpos[1, 2] = [0.0, 0.0, 1.0]
    np.testing.assert_allclose(terms.body_distance(xpos, 2, np.array([0.0, 0.0, 1.0])), [math.sqrt(26), 0.0])
    cfrc = np.zeros((2, 3, 6))
    cfrc[0, 1, 3:] = [0.0, 0.6, 0.8]  # |f| = 1 N: not above 1 N
    cfrc[1, 1, 3:] = [3.0, 0.0, 4.0]  # 5 N
    cfrc[0, 2, 5] = 100.0  # another body
    np.testing.assert_array_equal(terms.base_contact(cfrc, 1, force=1.0), [False, True])


def test_commands_are_drawn_uniformly_from_the_generator() -> None:
    ranges = np.array([[-1.0, 1.0], [0.0, 0.0], [0.5, 0.5]])
    draws = np.array([terms.draw_commands(np.random.default_rng(7), ranges) for _ in range(2)])
    assert np.array_equal(draws[0], draws[1])  # the generator, nothing else
    many = np.array([terms.draw_commands(np.random.default_rng(s), ranges) for s in range(400)])
    assert -1.0 <= many[:, 0].min() < -0.9 and 0.9 < many[:, 0].max() <= 1.0
    assert (many[:, 1] == 0.0).all() and (many[:, 2] == 0.5).all()
