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
