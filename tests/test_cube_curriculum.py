"""cube:reorient's goal curriculum (`adr.goal_angle`): goals drawn uniformly on SO(3) within an angle of
the cube's orientation, that angle a range ADR widens on success at its boundary and narrows on failure,
handed to the task state each episode; the eval path keeps the task's own goals; bad keys are one error."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.goals import goals_within, quat_error, quat_multiply, rotation_angle, uniform_quaternions
from robot_rl.launch import load_train_config, trainer_class
from robot_rl.sim.adr import ADR, ADRConfig
from robot_rl.sim.adr_randomizer import ADRRandomizer, adr_parameters
from robot_rl.sim.cube_task import CUBE_QUAT
from robot_rl.sim.engine.batched import BatchedEngine
from robot_rl.sim.randomization import RandomizationConfig
from robot_rl.sim.registry import engine_task

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "cube_reorient_ppo_curriculum.yaml"
QUIET = ["log.progress_bar=false", "log.tensorboard=false", "eval.episodes=1", "eval.every_steps=0",
         "log.checkpoint_every_steps=0"]


def _cdf(theta: float) -> float:
    """Cumulative (unnormalised) of a uniform rotation's angle density (1 - cos θ)/π."""
    return theta - math.sin(theta)


# ---------------------------------------------------------------------------------- the goals
def test_goals_lie_in_the_shell_around_each_orientation_with_the_uniform_angle_density() -> None:
    rng = np.random.default_rng(0)
    current = uniform_quaternions(rng, 20000)  # not the identity: the shell is around each cube
    top = np.where(np.arange(20000) < 10000, 1.0, 2.0)
    goals = goals_within(current, 0.4, top, rng)
    assert np.allclose(np.linalg.norm(goals, axis=1), 1.0)
    angle = rotation_angle(quat_error(current, goals))
    assert (angle >= 0.4 - 1e-9).all() and (angle <= top + 1e-9).all()
    first = angle[:10000]  # density ∝ 1 - cos θ on [0.4, 1.0]: P(θ < 0.7) worked by hand
    expected = (_cdf(0.7) - _cdf(0.4)) / (_cdf(1.0) - _cdf(0.4))
    assert expected == pytest.approx(0.3055, abs=1e-3)
    assert np.mean(first < 0.7) == pytest.approx(expected, abs=0.015)
    assert angle[10000:].max() > 1.9  # each row keeps its own bound


def test_at_pi_the_curriculum_goals_are_the_task_own_uniform_goals() -> None:
    rng = np.random.default_rng(1)
    current = uniform_quaternions(rng, 20000)
    goals = goals_within(current, 0.0, np.full(20000, np.pi), rng)
    # uniform on SO(3): the angle from anything has mean π/2 + 2/π, the rotated z axis averages to 0
    assert rotation_angle(goals).mean() == pytest.approx(np.pi / 2 + 2 / np.pi, abs=0.02)
    assert rotation_angle(quat_error(current, goals)).mean() == pytest.approx(np.pi / 2 + 2 / np.pi, abs=0.02)
    z = np.tile([0.0, 0.0, 0.0, 1.0], (len(goals), 1))
    rotated = quat_multiply(quat_multiply(goals, z), goals * [1, -1, -1, -1])[:, 1:]
    assert np.abs(rotated.mean(axis=0)).max() < 0.02


# ---------------------------------------------------------------------------------- ADR on the engine
def _curriculum(boundary_probability: float = 1.0) -> tuple[ADR, ADRConfig]:
    config = ADRConfig(enabled=True, goal_angle=(0.6, math.pi), window=4, high=0.6, low=0.2,
                       boundary_probability=boundary_probability)
    return ADR(adr_parameters(RandomizationConfig(), config), config), config


def _engine(adr: ADR, task: str = "cube:reorient", n: int = 8) -> BatchedEngine:
    engine = BatchedEngine(engine_task(task), n, seed=3, threads=1)
    engine.randomizer = ADRRandomizer(adr, RandomizationConfig(), engine.nominal, engine.physics_dt, 10,
                                      task, task_state=engine.task_state)
    return engine


def _angles(engine: BatchedEngine) -> np.ndarray:
    """Each world's orientation error to its goal, rad."""
    cube = np.stack([w.raw_data.qpos[CUBE_QUAT] for w in engine.worlds])
    goal = np.stack([engine.world_state(i)["cube_goal"] for i in range(engine.num_envs)])
    return rotation_angle(quat_error(cube, goal))


def test_the_range_widens_on_boundary_success_and_narrows_on_failure_and_the_goals_follow() -> None:
    adr, _ = _curriculum()
    assert adr.ranges() == {"goal_angle": (0.6, 0.6)}
    engine = _engine(adr)
    try:
        seed, widened = 0, []
        while adr.ranges()["goal_angle"][1] < 1.0 - 1e-9:  # synthetic success at every boundary episode
            engine.reset(seed=seed)
            seed += 1
            for w in engine.worlds:
                name, _, side = w.randomization["adr_boundary"].partition(":")
                if adr.ranges()["goal_angle"][1] < 1.0 - 1e-9 and adr.record((name, side), 1.0):
                    widened.append(adr.ranges()["goal_angle"])
            assert seed < 50
        assert [round(h, 9) for _, h in widened] == [0.7, 0.8, 0.9, 1.0]
        assert all(low == 0.6 for low, _ in widened)  # the lower bound stays at the start
        engine.reset(seed=100)
        state = engine.task_state
        angle = _angles(engine)
        assert ((state.goal_angle >= 0.6 - 1e-9) & (state.goal_angle <= 1.0 + 1e-9)).all()
        assert (angle <= state.goal_angle + 1e-9).all() and (angle >= 0.4 - 1e-9).all()
        for i, w in enumerate(engine.worlds):  # a boundary world's goals sit at the pinned bound
            if w.randomization["adr_boundary"] == "goal_angle:high":
                assert state.goal_angle[i] == pytest.approx(1.0)
                assert w.randomization["goal_angle"] == pytest.approx(1.0)
        while adr.ranges()["goal_angle"][1] > 0.8 + 1e-9:  # synthetic failure: back toward the start
            engine.reset(seed=seed)
            seed += 1
            for w in engine.worlds:
                name, _, side = w.randomization["adr_boundary"].partition(":")
                if adr.ranges()["goal_angle"][1] > 0.8 + 1e-9:
                    adr.record((name, side), 0.0)
            assert seed < 100
        assert adr.ranges()["goal_angle"] == pytest.approx((0.6, 0.8))
    finally:
        engine.close()


def test_a_hold_and_advance_goal_under_the_curriculum_is_drawn_from_the_cube_within_the_angle() -> None:
    adr, _ = _curriculum()
    adr.load_state_dict({"low": {"goal_angle": 0.6}, "high": {"goal_angle": 0.9}})
    engine = _engine(adr, n=4)
    try:
        engine.reset(seed=5)
        state = engine.task_state
        caps = state.goal_angle.copy()
        engine._goals["cube_goal"][:] = np.stack([w.data.qpos[CUBE_QUAT] for w in engine.worlds])
        for _ in range(state.rule.hold_steps):  # scripted: the goal is where the cube is
            engine.step(np.zeros((4, 9)))
        np.testing.assert_array_equal(state.successes(), 1)
        np.testing.assert_array_equal(state.goal_angle, caps)  # the episode keeps its angle
        angle = _angles(engine)
        assert (angle >= 0.4 - 1e-9).all() and (angle <= caps + 1e-9).all()
    finally:
        engine.close()


def test_without_adr_the_task_keeps_its_own_goals_as_evaluation_uses_them() -> None:
    engine = BatchedEngine(engine_task("cube:reorient"), 64, seed=0, threads=1)
    try:
        engine.reset(seed=0)
        assert np.isnan(engine.task_state.goal_angle).all()
        angle = _angles(engine)
        assert angle.max() > 2.0  # uniform on SO(3): most goals are far (mean 2.2 rad)
    finally:
        engine.close()


def test_only_reorient_takes_a_goal_angle() -> None:
    adr, _ = _curriculum()
    engine = BatchedEngine(engine_task("cube:rotate-z"), 2, seed=0, threads=1)
    try:
        with pytest.raises(ConfigError, match=r"adr\.goal_angle.*cube:reorient"):
            ADRRandomizer(adr, RandomizationConfig(), engine.nominal, engine.physics_dt, 10, "cube:rotate-z",
                          task_state=engine.task_state)
        with pytest.raises(ConfigError, match=r"adr\.goal_angle"):
            engine.task_state.set_episode_parameters({"goal_angle": 1.0})
    finally:
        engine.close()


# ---------------------------------------------------------------------------------- launch and training
@pytest.mark.parametrize(("overrides", "key"), [
    (["adr.goal_angle=[0.0, 1.0]"], "adr.goal_angle"),
    (["adr.goal_angle=[1.0, 0.5]"], "adr.goal_angle"),
    (["adr.goal_angle=[0.6, 4.0]"], "adr.goal_angle"),
    (["adr.goal_angle=[0.6]"], "adr.goal_angle"),
    (["task=cube:rotate-z"], "adr.goal_angle"),
    (["adr.steps.goal_angle=-0.1"], "adr.steps.goal_angle"),
    (["rollout_workers=2"], "rollout_workers"),
])
def test_a_bad_curriculum_is_one_config_error_naming_the_key(overrides, key) -> None:
    with pytest.raises(ConfigError) as err:
        load_train_config(LAUNCH, [*QUIET, *overrides])
    assert f"{LAUNCH}: {key}:" in str(err.value), str(err.value)  # the file, then the key


def test_the_launch_file_trains_with_the_curriculum_and_logs_its_range(tmp_path: Path) -> None:
    config = load_train_config(LAUNCH, [*QUIET, "num_envs=4", "total_steps=4096", "ppo.num_steps=128",
                                        "ppo.minibatch_size=256", "ppo.epochs=1", "adr.window=1",
                                        "adr.boundary_probability=1.0"])
    assert config.adr.goal_angle == pytest.approx((0.6, math.pi)) and config.policy.critic_privileged
    trainer = trainer_class(config.algo)(config, tmp_path / "run")
    trainer.train()
    low, high = trainer.adr.ranges()["goal_angle"]
    with open(tmp_path / "run" / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["adr_goal_angle_high"]) == pytest.approx(high)
    assert float(rows[-1]["adr_goal_angle_low"]) == pytest.approx(low) == pytest.approx(0.6)
    assert 0.6 <= high <= math.pi
    assert trainer.episodes >= 8  # 400-step episodes: each of the 4 worlds ended two
