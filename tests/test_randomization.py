"""Domain randomization: the actuation delay acts as a delayed actuator would, per episode, seeded."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.sim import make, make_env
from robot_rl.sim.randomization import RandomizationConfig
from robot_rl.spec import action_to_robot


def test_a_one_step_delay_holds_the_previous_command_for_one_physics_step() -> None:
    delayed = make_env("Hopper-v5", seed=5, randomize=RandomizationConfig(actuation_delay=(0.002, 0.002)))
    reference = make_env("Hopper-v5", seed=5)
    delayed.reset()
    reference.reset()
    sim = reference.unwrapped.simulator
    spec = reference.unwrapped.task_spec
    assert delayed.unwrapped.actuation_delay_steps == 1 and spec.physics_dt == 0.002
    rng = np.random.default_rng(0)
    held = np.zeros(sim.model.nu)  # actuators start unpowered
    for _ in range(20):
        action = rng.uniform(-1, 1, spec.act_dim)
        delayed.step(action)
        ctrl = action_to_robot(spec, action)
        sim.data.ctrl[:] = held
        mujoco.mj_step(sim.model, sim.data, 1)
        sim.data.ctrl[:] = ctrl
        mujoco.mj_step(sim.model, sim.data, sim.frame_skip - 1)
        held = ctrl
        got = delayed.unwrapped.simulator.data
        np.testing.assert_array_equal(got.qpos, sim.data.qpos)
        np.testing.assert_array_equal(got.qvel, sim.data.qvel)


def test_the_delay_changes_the_motion_and_no_delay_does_not() -> None:
    def rollout(randomize: RandomizationConfig | None) -> np.ndarray:
        env = make_env("Hopper-v5", seed=2, randomize=randomize)
        env.reset()
        actions = np.random.default_rng(1).uniform(-1, 1, (30, 3))
        return np.array([env.step(a)[0] for a in actions])

    nominal = rollout(None)
    np.testing.assert_array_equal(rollout(RandomizationConfig()), nominal)
    assert not np.allclose(rollout(RandomizationConfig(actuation_delay=(0.004, 0.004))), nominal)


def test_each_episode_draws_its_delay_reproducibly_from_the_range() -> None:
    def draws(seed: int) -> list[int]:
        env = make_env("Hopper-v5", seed=seed, randomize=RandomizationConfig(actuation_delay=(0.0, 0.004)))
        out = []
        for _ in range(40):
            env.reset()
            out.append(env.unwrapped.actuation_delay_steps)
        return out

    first = draws(7)
    assert set(first) == {0, 1, 2}
    assert draws(7) == first
    assert draws(8) != first


def test_unsupported_or_impossible_randomization_is_a_config_error() -> None:
    config = RandomizationConfig(actuation_delay=(0.0, 0.01))
    with pytest.raises(ConfigError, match=r"randomize.actuation_delay: task 'CartPole-v1' does not support"):
        make("CartPole-v1", num_envs=2, vectorization="async", randomize=config)
    with pytest.raises(ConfigError, match=r"randomize.actuation_delay: .*one control period"):
        make_env("Hopper-v5", randomize=RandomizationConfig(actuation_delay=(0.0, 0.1)))
    with pytest.raises(ConfigError, match="0 <= low <= high"):
        RandomizationConfig(actuation_delay=(0.004, 0.002))


def test_a_training_run_randomizes_and_records_it(tmp_path: Path) -> None:
    from robot_rl.launch import load_train_config, read_run_config
    from robot_rl.trainer import Trainer

    root = Path(__file__).resolve().parents[1]
    config = load_train_config(root / "launch" / "hopper_ppo.yaml", [
        "total_steps=2048", "randomize.actuation_delay=[0.0, 0.004]", "eval.episodes=1",
        "log.progress_bar=false", "log.plot=false", "log.tensorboard=false",
        "vectorization=sync"])  # it reads the sync sub-envs' hook (the launch file trains batched)
    trainer = Trainer(config, tmp_path / "run")
    assert all(env.unwrapped._delay_range == (0, 2) for env in trainer.envs.envs)
    trainer.train()
    assert read_run_config(tmp_path / "run").randomize.actuation_delay == (0.0, 0.004)


def test_evaluation_under_randomization_is_reproducible_and_differs_from_nominal(tmp_path: Path) -> None:
    """eval.randomize: the trainer's evaluations (periodic, final, best.pt) run under the training
    perturbations, drawn per episode from the episode's seed; without it, the nominal model."""
    from robot_rl.evaluation import evaluate
    from robot_rl.launch import load_train_config
    from robot_rl.trainer import Trainer

    root = Path(__file__).resolve().parents[1]
    quiet = ["total_steps=2048", "eval.episodes=2", "log.progress_bar=false", "log.plot=false",
             "log.tensorboard=false", "randomize.actuation_delay=[0.008, 0.008]",
             "vectorization=sync"]  # the batched engine randomizes through sim.randomization.Randomizer
    config = load_train_config(root / "launch" / "hopper_ppo.yaml", [*quiet, "eval.randomize=true"])
    trainer = Trainer(config, tmp_path / "run")
    policy, seed = trainer.policy_fn(), config.eval.seed
    delayed = evaluate("Hopper-v5", policy, 2, seed, randomize=config.randomize)
    nominal = evaluate("Hopper-v5", policy, 2, seed)
    assert trainer.evaluate(2)["returns"] == delayed["returns"]  # the trainer's own evaluation
    assert delayed["returns"] != nominal["returns"]  # 8 ms late (a whole control period) is another plant
    assert evaluate("Hopper-v5", policy, 2, seed, randomize=config.randomize)["returns"] == delayed["returns"]
    nominal_config = load_train_config(root / "launch" / "hopper_ppo.yaml", quiet)
    assert Trainer(nominal_config, tmp_path / "nominal").evaluate(2)["returns"] != delayed["returns"]


def test_eval_randomize_without_randomization_is_a_config_error() -> None:
    from robot_rl.launch import load_train_config

    root = Path(__file__).resolve().parents[1]
    with pytest.raises(ConfigError, match=r"eval.randomize: .*randomizes nothing"):
        load_train_config(root / "launch" / "hopper_ppo.yaml", ["eval.randomize=true"])
