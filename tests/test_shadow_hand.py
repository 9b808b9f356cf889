"""The Shadow Hand block tasks of gymnasium-robotics through robot_rl's task API (sim/shadow_hand.py)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from robot_rl import sim
from robot_rl.evaluation import evaluate
from robot_rl.sim.shadow_hand import (
    TASK_IDS,
    ShadowBlockEnv,
    fixed_utils,
    get_joint_qpos,
    get_joint_qvel,
    robotics_available,
    set_joint_qpos,
)
from robot_rl.spec import action_to_robot

pytestmark = pytest.mark.skipif(not robotics_available(),
                                reason="needs gymnasium-robotics: pip install 'robot-rl[robotics]'")


@pytest.fixture(scope="module")
def rotate_z():
    env = ShadowBlockEnv("HandManipulateBlockRotateZ-v1", seed=3)
    yield env
    env.close()


def _angle(q: np.ndarray) -> float:
    return float(2.0 * np.arccos(np.clip(abs(q[0]), -1.0, 1.0)))


def test_their_env_asserts_on_this_mujoco_and_ours_builds():
    """The known bug: gymnasium-robotics' own accessor rejects a hinge joint (the enum == numpy int
    comparison); the adapter's reads the same slices of qpos/qvel without it."""
    import gymnasium
    from gymnasium_robotics.utils import mujoco_utils

    env = ShadowBlockEnv("HandManipulateBlock-v1", seed=0)
    try:
        model, data = env.simulator.model, env.simulator.data
        if mujoco.__version__.startswith("3.17"):
            with pytest.raises(AssertionError):
                mujoco_utils.get_joint_qpos(model, data, "robot0:WRJ1")
            with pytest.raises(AssertionError):
                gymnasium.make("HandManipulateBlockRotateZ-v1")
        j = model.joint("robot0:WRJ1")
        assert get_joint_qpos(model, data, "robot0:WRJ1") == pytest.approx(data.qpos[j.qposadr[0]])
        assert get_joint_qvel(model, data, "robot0:WRJ1") == pytest.approx(data.qvel[j.dofadr[0]])
        block = model.joint("object:joint")
        np.testing.assert_array_equal(get_joint_qpos(model, data, "object:joint"),
                                      data.qpos[block.qposadr[0]:block.qposadr[0] + 7])
        assert get_joint_qvel(model, data, "object:joint").shape == (6,)
        with pytest.raises(ValueError, match="nope"):
            get_joint_qpos(model, data, "nope")
        # the module itself is untouched: only the adapter's env reads the fixed functions
        assert mujoco_utils.get_joint_qpos is not get_joint_qpos
        assert env.simulator._utils is fixed_utils() and fixed_utils().get_joint_qpos is get_joint_qpos
    finally:
        env.close()


@pytest.mark.parametrize("task", TASK_IDS)
def test_resets_and_steps_through_the_spec(task):
    env = sim.make_env(task, seed=1)
    spec = sim.get_spec(task)
    try:
        assert spec.act_dim == 20 and spec.goal_fields == ("goal",)
        obs, _ = env.reset()
        assert obs.shape == (spec.obs_dim,) and np.isfinite(obs).all()
        steps, truncated = 0, False
        while not truncated:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            steps += 1
            assert not terminated and isinstance(info["is_success"], bool) and np.isfinite(reward)
        assert steps == 100  # their registered time limit, a truncation
    finally:
        env.close()


def test_observation_terms_equal_their_dict_observation(rotate_z):
    env = rotate_z
    obs, _ = env.reset(seed=5)
    for _ in range(3):
        obs, *_ = env.step(np.full(20, 0.3))
    theirs = env.simulator._get_obs()
    flat, achieved, goal = theirs["observation"], theirs["achieved_goal"], theirs["desired_goal"]
    np.testing.assert_allclose(obs[:48], flat[:48])  # joint positions and velocities
    np.testing.assert_allclose(obs[48:54], flat[48:54])  # the block's velocity
    np.testing.assert_allclose(obs[54:61], achieved)  # the block's pose
    error = obs[61:65]
    assert error[0] >= 0 and np.linalg.norm(error) == pytest.approx(1.0)
    _, their_angle = env.simulator._goal_distance(achieved, goal)
    # theirs is 2 arccos(w) without |w|, in [0, 2 pi): the same rotation, the other way round past pi
    shortest = min(float(their_angle), 2 * np.pi - float(their_angle))
    assert _angle(error) == pytest.approx(shortest, abs=1e-6)


def test_action_reaches_the_actuators_as_the_spec_maps_it(rotate_z):
    env = rotate_z
    env.reset(seed=0)
    action = np.linspace(-1.2, 1.2, 20)  # beyond [-1, 1] at the ends: clipped as a deployment clips
    env.step(action)
    np.testing.assert_allclose(env.simulator.data.ctrl, action_to_robot(env.task_spec, action), atol=1e-12)


def test_success_is_reported_when_the_block_is_at_its_goal(rotate_z):
    env = rotate_z
    env.reset(seed=2)
    sim_env = env.simulator
    _, info = env.step(np.zeros(20))[3:]
    assert info["is_success"] is False  # a fresh goal is a random yaw away
    pose = get_joint_qpos(sim_env.model, sim_env.data, "object:joint")
    pose[3:] = sim_env.goal[3:]
    set_joint_qpos(sim_env.model, sim_env.data, "object:joint", pose)
    mujoco.mj_forward(sim_env.model, sim_env.data)
    obs, *_, info = env.step(np.zeros(20))
    assert info["is_success"] is True
    assert _angle(obs[61:65]) < 0.1


def test_eval_reports_the_success_rate():
    result = evaluate("HandManipulateBlockRotateZDense-v1", lambda obs: np.zeros(20), episodes=2, seed=0)
    assert result["episodes"] == 2 and result["lengths"] == [100, 100]
    assert "success_rate" in result and 0.0 <= result["success_rate"] <= 1.0
    assert result["mean_return"] < 0  # the dense reward: minus the orientation error


def test_a_bad_id_names_the_valid_ones():
    from robot_rl.errors import ConfigError

    with pytest.raises(ConfigError, match="HandManipulateBlockRotateZ-v1"):
        ShadowBlockEnv("HandManipulateEgg-v1")


def test_a_short_ppo_run_trains_and_eval_json_reports_its_success_rate(tmp_path, capsys):
    """The launch file runs (one update of 2 x 64 steps), and `robot-rl eval --json` of the run gives
    their success as `success_rate`."""
    import json
    from pathlib import Path

    from robot_rl.cli import main
    from robot_rl.launch import load_train_config, trainer_class

    launch = Path(__file__).resolve().parents[1] / "launch" / "handmanipulateblockrotatezdense_ppo.yaml"
    config = load_train_config(launch, ["total_steps=128", "num_envs=2", "ppo.num_steps=64",
                                        "ppo.minibatch_size=64", "eval.episodes=1", "eval.every_steps=0",
                                        "log.progress_bar=false", "log.tensorboard=false", "log.plot=false"])
    trainer_class(config.algo)(config, tmp_path / "run").train()
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--episodes", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 2
    assert out["success_rate"] in (0.0, 0.5, 1.0) and out["mean_return"] < 0
