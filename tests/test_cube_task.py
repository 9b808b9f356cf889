"""The cube tasks on the engine: observation terms against the simulator's state (the orientation error
worked by hand), relative joint targets, hold-and-advance counting scripted successes, a drop ending
the episode, the success metrics of an evaluation, and bad input."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robot_rl import sim
from robot_rl.errors import ConfigError
from robot_rl.evaluation import evaluate
from robot_rl.goals import SuccessRule, quat_about_z, quat_error, rotation_angle
from robot_rl.sim.cube_task import ACTION_RATE, CUBE_POS, CUBE_QUAT, HAND_XML, NJ, cube_task, engine_tasks
from robot_rl.sim.engine.batched import BatchedEngine
from robot_rl.spec import ObservationBuilder


@pytest.fixture
def engine():
    e = BatchedEngine(engine_tasks()["cube:rotate-z"], 3, seed=4, threads=1)
    yield e
    e.close()


def _term(engine: BatchedEngine, obs: np.ndarray, name: str) -> np.ndarray:
    return obs[:, engine.spec.observation_slices()[name]]


def _set_cube(engine: BatchedEngine, i: int, yaw: float) -> None:
    """Turn world i's cube to `yaw` about z (in place, at rest) and recompute its kinematics."""
    w = engine.worlds[i]
    w.data.qpos[CUBE_QUAT] = quat_about_z(np.array([yaw]))[0]
    w.data.qvel[NJ:] = 0.0
    mujoco.mj_forward(w.model, w.data)


def test_the_tasks_are_registered_and_on_the_engine():
    assert {"cube:rotate-z", "cube:reorient"} <= set(sim.task_names())
    assert {"cube:rotate-z", "cube:reorient"} <= set(sim.registry.engine_task_names())
    spec = sim.get_spec("cube:rotate-z")
    assert spec.act_dim == 9 and spec.action.kind == "position_delta" and spec.goal_fields == ("cube_goal",)
    span = np.array(spec.action.high) - np.array(spec.action.low)  # the ctrlrange: target bounds
    np.testing.assert_allclose(spec.action.scale, 0.075 * span)  # a full action: 7.5 % of the range a step
    assert spec.action.offset == (0.0,) * 9
    assert [t.name for t in spec.observation] == ["joint_pos", "joint_vel", "cube_pos", "cube_to_goal",
                                                  "joint_targets", "last_action"]
    assert spec.control_period == pytest.approx(0.05) and spec.physics_steps == 10


def test_observation_terms_equal_the_simulator_state(engine):
    obs, _ = engine.reset()
    rng = np.random.default_rng(0)
    for _ in range(10):
        obs, *_ = engine.step(rng.uniform(-1, 1, (3, 9)))
    for i, w in enumerate(engine.worlds):  # the spec's builder on the world's state = the engine's row
        np.testing.assert_allclose(ObservationBuilder(engine.spec).build(engine.world_state(i)), obs[i],
                                   atol=1e-12)
        d = w.data
        np.testing.assert_allclose(_term(engine, obs, "joint_pos")[i], d.qpos[:NJ], atol=1e-12)
        np.testing.assert_allclose(_term(engine, obs, "joint_vel")[i], 0.1 * np.clip(d.qvel[:NJ], -20, 20),
                                   atol=1e-12)
        # the cube's position in the palm frame: the palm is fixed at the origin, unrotated
        np.testing.assert_array_equal(d.xpos[w.model.body("palm").id], 0.0)
        np.testing.assert_array_equal(d.xquat[w.model.body("palm").id], [1, 0, 0, 0])
        np.testing.assert_allclose(_term(engine, obs, "cube_pos")[i], 10 * d.qpos[CUBE_POS], atol=1e-12)
        np.testing.assert_allclose(_term(engine, obs, "joint_targets")[i], d.ctrl, atol=1e-12)


def test_the_orientation_error_by_hand(engine):
    """Cube at yaw 0.3 rad, goal at yaw 1.0 rad: the error conj(goal) * cube is a -0.7 rad turn about z,
    (cos 0.35, 0, 0, -sin 0.35), made w >= 0."""
    engine.reset()
    for i, (cube_yaw, goal_yaw) in enumerate([(0.3, 1.0), (0.0, 0.0), (3.0, -3.0)]):
        _set_cube(engine, i, cube_yaw)
        engine._goals["cube_goal"][i] = [math.cos(goal_yaw / 2), 0, 0, math.sin(goal_yaw / 2)]
        for dst, src in engine._copies[i]:
            dst[...] = src
    err = _term(engine, engine._observe(), "cube_to_goal")
    np.testing.assert_allclose(err[0], [math.cos(0.35), 0, 0, -math.sin(0.35)], atol=1e-12)
    np.testing.assert_allclose(err[1], [1, 0, 0, 0], atol=1e-12)
    # 3 - (-3) = 6 rad is -0.283 rad the short way: (cos 3, 0, 0, sin 3) flipped to w >= 0
    np.testing.assert_allclose(err[2], [-math.cos(3.0), 0, 0, -math.sin(3.0)], atol=1e-12)
    assert 2 * math.acos(err[2][0]) == pytest.approx(2 * math.pi - 6.0)


def test_actions_move_the_joint_targets_relative_to_the_current_ones(engine):
    engine.reset()
    start = engine._state.targets.copy()
    low, high = engine.nominal.actuator_ctrlrange.T
    action = np.zeros((3, 9))
    action[:, 0], action[:, 4] = 0.5, -1.0
    engine.step(action)
    engine.step(action)
    expected = np.clip(start + 2 * action * ACTION_RATE * (high - low), low, high)
    np.testing.assert_allclose(np.stack([w.data.ctrl for w in engine.worlds]), expected, atol=1e-12)
    obs, *_ = engine.step(np.zeros((3, 9)))  # a zero action holds the targets
    np.testing.assert_allclose(np.stack([w.data.ctrl for w in engine.worlds]), expected, atol=1e-12)
    np.testing.assert_array_equal(_term(engine, obs, "last_action"), 0.0)


def test_hold_and_advance_counts_scripted_successes(engine):
    """Goal = the cube's own orientation: after `hold_steps` steps a success, and the next goal is 90
    degrees about z from it; leaving the tolerance before that restarts the hold."""
    engine.reset()
    hold = SuccessRule().hold_steps
    zero = np.zeros((3, 9))
    for k in range(1, 4):
        cube = np.stack([w.data.qpos[CUBE_QUAT] for w in engine.worlds])
        engine._goals["cube_goal"][:] = cube
        goals = cube.copy()
        for step in range(hold):
            _, reward, terminated, _, _ = engine.step(zero)
            assert not terminated.any()
            if step < hold - 1:
                np.testing.assert_array_equal(engine._state.successes(), k - 1)
        np.testing.assert_array_equal(engine._state.successes(), k)
        turned = rotation_angle(quat_error(goals, engine._goals["cube_goal"]))
        np.testing.assert_allclose(turned, np.pi / 2, atol=1e-9)  # the next goal: +-90 deg about z
        assert (reward > 4.0).all()  # the success bonus was paid on the step that reached it
    # world 0 leaves the tolerance for one step in the middle of its hold: no success for it
    cube = np.stack([w.data.qpos[CUBE_QUAT] for w in engine.worlds])
    engine._goals["cube_goal"][:] = cube
    for step in range(hold):
        if step == 2:
            engine._goals["cube_goal"][0] = quat_about_z(np.array([1.0]))[0]
        if step == 3:
            engine._goals["cube_goal"][0] = cube[0]
        engine.step(zero)
    np.testing.assert_array_equal(engine._state.successes(), [3, 4, 4])


def test_a_drop_terminates_and_reports_the_episodes_successes(engine):
    engine.reset()
    w = engine.worlds[1]
    w.data.qpos[CUBE_POS] = [0.0, 0.2, -0.05]  # off the palm, beside it
    mujoco.mj_forward(w.model, w.data)
    engine._state.hold.successes[1] = 2
    _, reward, terminated, truncated, info = engine.step(np.zeros((3, 9)))
    np.testing.assert_array_equal(terminated, [False, True, False])
    assert not truncated.any() and reward[1] < -19.0  # the drop penalty
    assert info["_final_info"][1] and info["final_info"]["successes"][1] == 2
    assert engine._state.successes()[1] == 0  # a new episode began (SAME_STEP autoreset)
    assert engine.worlds[1].data.qpos[CUBE_POS][2] == pytest.approx(0.03, abs=1e-3)


def test_an_evaluation_reports_success_rate_and_consecutive_successes():
    """A policy that holds still on a cube whose first goal is 90 degrees away reaches no goal."""
    result = evaluate("cube:rotate-z", lambda obs: np.zeros(9), episodes=2, seed=0, max_steps=20)
    assert result["success_rate"] == 0.0 and result["consecutive_successes"] == 0.0
    assert result["successes"] == [0, 0]


def test_single_env_info_carries_the_successes_so_far():
    env = sim.make_env("cube:rotate-z", seed=1)
    env.reset(seed=1)
    engine = env.unwrapped.engine
    engine._goals["cube_goal"][0] = engine.worlds[0].data.qpos[CUBE_QUAT]
    for _ in range(SuccessRule().hold_steps):
        *_, info = env.step(np.zeros(9, dtype=np.float32))
    assert info["successes"] == 1
    env.close()


# ---------------------------------------------------------------------------------------- bad input


def test_a_hand_with_a_joint_the_spec_does_not_name_is_refused(tmp_path: Path):
    xml = Path(HAND_XML).read_text().replace(
        '<joint name="f1_abd" axis="1 0 0" range="-0.6 0.6"/>',
        '<joint name="f1_abd" axis="1 0 0" range="-0.6 0.6"/>\n'
        '        <joint name="f1_twist" axis="0 0 1" range="-0.1 0.1"/>')
    xml = xml.replace('qpos="0 -0.3425 2.125  0', 'qpos="0 0 -0.3425 2.125  0', 1)
    path = tmp_path / "hand.xml"
    path.write_text(xml)
    task = dataclasses.replace(cube_task("rotate-z"), mjcf=str(path))
    with pytest.raises(ConfigError, match="f1_twist"):
        BatchedEngine(task, 1)


@pytest.mark.parametrize("tolerance", [0.0, -0.1, float("nan")])
def test_a_goal_tolerance_that_is_not_positive_is_refused(tolerance):
    with pytest.raises(ConfigError, match="tolerance"):
        cube_task("rotate-z", tolerance=tolerance)


def test_an_unknown_goal_mode_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="rotate-z, reorient"):
        cube_task("spin")
