"""The cube tasks' goal math, hold-and-advance and drop rule, against hand-worked cases and MuJoCo's
own quaternion functions."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from robot_rl.goals import (
    HoldAndAdvance,
    SuccessRule,
    dropped,
    next_goals,
    quat_about_z,
    quat_error,
    quat_multiply,
    rotation_angle,
    uniform_quaternions,
)


def _axis_angle(axis, angle) -> np.ndarray:
    q, axis = np.zeros(4), np.asarray(axis, dtype=np.float64)
    mujoco.mju_axisAngle2Quat(q, axis / np.linalg.norm(axis), angle)
    return q


def test_product_matches_mujoco() -> None:
    rng = np.random.default_rng(0)
    a, b = uniform_quaternions(rng, 20), uniform_quaternions(rng, 20)
    ours = quat_multiply(a, b)
    for i in range(20):
        ref = np.zeros(4)
        mujoco.mju_mulQuat(ref, a[i], b[i])
        np.testing.assert_allclose(ours[i], ref, atol=1e-12)


@pytest.mark.parametrize(("axis", "angle"), [((0, 0, 1), 0.3), ((1, 0, 0), math.pi / 2), ((0, 1, 1), 2.5),
                                              ((1, 1, 1), math.pi - 1e-3)])
def test_error_angle_of_known_poses(axis, angle) -> None:
    start = _axis_angle((0.2, -0.4, 1.0), 0.7)
    goal = quat_multiply(_axis_angle(axis, angle)[None], start[None])
    err = quat_error(start[None], goal)
    assert rotation_angle(err)[0] == pytest.approx(angle, abs=1e-9)
    np.testing.assert_allclose(quat_multiply(err, start[None]), goal, atol=1e-12)  # err takes start to goal
    assert rotation_angle(quat_error(goal, goal))[0] == pytest.approx(0.0, abs=1e-7)
    assert rotation_angle(-goal)[0] == pytest.approx(rotation_angle(goal)[0])  # q and -q: one rotation


def test_rotate_z_goals_turn_90_degrees_about_vertical_both_ways() -> None:
    rng = np.random.default_rng(1)
    goals = np.tile([1.0, 0.0, 0.0, 0.0], (2000, 1))
    new = next_goals("rotate-z", goals, rng)
    assert np.allclose(rotation_angle(quat_error(goals, new)), np.pi / 2)
    assert np.allclose(new[:, 1:3], 0.0)  # about z only
    yaw = 2 * np.arctan2(new[:, 3], new[:, 0])
    assert set(np.round(yaw, 6)) == {round(np.pi / 2, 6), round(-np.pi / 2, 6)}
    assert 0.45 < np.mean(yaw > 0) < 0.55
    chained = next_goals("rotate-z", new, rng)  # relative to the previous goal, not to the start
    assert np.allclose(rotation_angle(quat_error(new, chained)), np.pi / 2)


def test_reorient_goals_are_uniform() -> None:
    q = next_goals("reorient", np.zeros((20000, 4)), np.random.default_rng(2))
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0)
    # uniform rotations have angle density (1 - cos θ)/π on [0, π]: mean angle π/2 + 2/π
    assert rotation_angle(q).mean() == pytest.approx(np.pi / 2 + 2 / np.pi, abs=0.02)
    # the rotated z axis is uniform on the sphere: its mean is the origin
    z = np.array([[0, 0, 0, 1.0]])
    rotated = quat_multiply(quat_multiply(q, np.tile(z, (len(q), 1))), q * [1, -1, -1, -1])[:, 1:]
    assert np.abs(rotated.mean(axis=0)).max() < 0.02
    with pytest.raises(ValueError, match="rotate-z, reorient"):
        next_goals("spin", q, np.random.default_rng(0))


def test_hold_and_advance_counts_scripted_successes() -> None:
    rule = SuccessRule(tolerance=0.4, hold_steps=3)
    track = HoldAndAdvance(3, rule)
    # world 0 holds inside for 7 steps (two successes: steps 3 and 6), world 1 dips out before 3 steps,
    # world 2 stays outside
    angles = [[0.1, 0.1, 1.0], [0.2, 0.39, 1.0], [0.3, 0.5, 1.0], [0.1, 0.1, 1.0], [0.1, 0.1, 1.0],
              [0.1, 0.1, 1.0], [0.1, 0.1, 1.0]]
    reached = [track.update(np.array(a)) for a in angles]
    assert [r[0] for r in reached] == [False, False, True, False, False, True, False]
    assert [r[1] for r in reached] == [False, False, False, False, False, True, False]
    assert track.successes.tolist() == [2, 1, 0]
    track.reset(np.array([True, False, False]))
    assert track.successes.tolist() == [0, 1, 0] and track.held.tolist() == [0, 1, 0]


def test_a_drop_is_below_the_palm_or_off_its_side() -> None:
    rule = SuccessRule(drop_height=-0.01, drop_radius=0.1)
    pos = np.array([[0, 0, 0.03], [0, 0, -0.02], [0.09, 0.0, 0.03], [0.08, 0.08, 0.03]])
    assert dropped(pos, rule).tolist() == [False, True, False, True]


@pytest.mark.parametrize("bad", [0.0, -0.1, math.nan, 4.0])
def test_goal_tolerance_must_be_positive_and_below_pi(bad) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        SuccessRule(tolerance=bad)


def test_quat_about_z_matches_mujoco() -> None:
    for angle in (-2.0, 0.0, 0.5, np.pi):
        ours = quat_about_z(np.array([angle]))[0]
        np.testing.assert_allclose(ours, _axis_angle((0, 0, 1), angle), atol=1e-12)
