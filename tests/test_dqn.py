"""DQN: TD targets, Double DQN, losses and their hand-written gradients, target updates, ε schedules,
the trainer's transitions (the real final observation after a truncation), bad input, the run
directory, resume, eval, export, frame stacking and the Nature CNN.

Targets and schedules are checked against hand-worked numbers; the hand-written backward pass
against autograd.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robot_rl.agents.configs import DQNConfig
from robot_rl.agents.dqn import DQN
from robot_rl.agents.exploration import beta_at, epsilon_at
from robot_rl.agents.mlp_backprop import MLPBackprop
from robot_rl.agents.q_networks import NatureCNN, QNetwork
from robot_rl.agents.td_learning import (
    TorchBatch,
    hard_update,
    polyak_update,
    td_loss,
    td_loss_grad,
    td_targets,
)
from robot_rl.cli import main
from robot_rl.config import apply_overrides
from robot_rl.dqn_trainer import DQNTrainer
from robot_rl.errors import ConfigError
from robot_rl.launch import PolicyConfig, load_train_config, parse_train_config
from robot_rl.replay import ReplayBuffer

LAUNCH = Path(__file__).resolve().parents[1] / "launch"


# ---------------------------------------------------------------------------------------- targets


def test_td_target_of_terminal_truncated_and_ordinary_transitions():
    rewards = torch.tensor([1.0, 1.0, 1.0, -2.0])
    terminated = torch.tensor([True, False, False, True])  # 1: truncated (stored apart), 2: ordinary
    next_q = torch.tensor([[5.0, 7.0], [3.0, 4.0], [-1.0, -3.0], [9.0, 9.0]])
    y = td_targets(rewards, terminated, next_q, gamma=0.5)
    # terminal: r; truncated and ordinary: r + γ max_a' Q⁻(s', a') from the real next observation
    np.testing.assert_allclose(y, [1.0, 1.0 + 0.5 * 4.0, 1.0 + 0.5 * -1.0, -2.0])


def test_double_dqn_target_uses_the_online_argmax_and_the_target_value():
    rewards = torch.tensor([0.0, 1.0, 2.0])
    terminated = torch.tensor([False, False, True])
    next_q_target = torch.tensor([[1.0, 10.0, 3.0], [4.0, 2.0, 0.0], [5.0, 6.0, 7.0]])
    next_q_online = torch.tensor([[9.0, 0.0, 1.0], [0.0, 0.0, 8.0], [0.0, 9.0, 0.0]])
    y = td_targets(rewards, terminated, next_q_target, 0.9, next_q_online)
    # online argmax: 0, 2, 1 → target values 1, 0, (cut); plain DQN would take 10, 4
    np.testing.assert_allclose(y, [0.9 * 1.0, 1.0 + 0.9 * 0.0, 2.0])
    np.testing.assert_allclose(td_targets(rewards, terminated, next_q_target, 0.9), [9.0, 1.0 + 3.6, 2.0])


def test_losses_by_hand():
    q = torch.tensor([1.0, 0.0, 4.0])
    y = torch.tensor([0.0, 0.5, 1.0])  # errors 1, -0.5, 3
    assert td_loss(q, y, "mse").item() == pytest.approx((0.5 + 0.125 + 4.5) / 3)
    assert td_loss(q, y, "huber", 1.0).item() == pytest.approx((0.5 + 0.125 + 2.5) / 3)  # δ(|e| − δ/2)
    w = torch.tensor([1.0, 2.0, 0.0])
    assert td_loss(q, y, "mse", weights=w).item() == pytest.approx((0.5 + 0.25) / 3)
    loss, grad = td_loss_grad(q, y, "huber", 1.0, w)
    assert loss.item() == pytest.approx((0.5 + 0.25) / 3)
    np.testing.assert_allclose(grad, [1.0 / 3, -1.0 / 3, 0.0])  # clip(e, ±δ)·w / B


@pytest.mark.parametrize("kind", ["mse", "huber"])
@pytest.mark.parametrize("weighted", [False, True])
def test_closed_form_loss_gradient_equals_autograd(kind, weighted):
    gen = torch.Generator().manual_seed(0)
    q = (3 * torch.randn(32, generator=gen)).requires_grad_()
    y = 3 * torch.randn(32, generator=gen)
    w = torch.rand(32, generator=gen) if weighted else None
    td_loss(q, y, kind, 1.5, w).backward()
    loss, grad = td_loss_grad(q.detach(), y, kind, 1.5, w)
    assert loss.item() == pytest.approx(td_loss(q.detach(), y, kind, 1.5, w).item(), rel=1e-6)
    np.testing.assert_allclose(grad, q.grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
def test_hand_written_backward_equals_autograd(activation):
    torch.manual_seed(0)
    net = QNetwork(5, 3, (16, 8), activation)
    obs = torch.randn(20, 5)
    grad_q = torch.randn(20, 3)
    (net(obs) * grad_q).sum().backward()  # ∂/∂θ of Σ Q·G is the backward pass of G
    expected = [p.grad.clone() for p in net.parameters()]
    backprop = MLPBackprop(net)  # preallocates .grad
    q, inputs = backprop.forward(obs)
    np.testing.assert_allclose(q, net(obs).detach(), rtol=1e-6, atol=1e-6)
    backprop.backward(grad_q, inputs)
    for got, want in zip((p.grad for p in net.parameters()), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("double_dqn", [False, True])
def test_update_with_the_hand_written_backward_equals_autograd(double_dqn):
    config = DQNConfig(batch_size=16, double_dqn=double_dqn, loss="huber", learning_rate=1e-3,
                       max_grad_norm=0.5)
    policy = PolicyConfig(hidden=(32, 32), activation="relu")
    torch.manual_seed(3)
    fast = DQN(4, 3, policy, config)
    slow = DQN(4, 3, policy, config)
    slow.q_net.load_state_dict(fast.q_net.state_dict())
    slow.target_net.load_state_dict(fast.target_net.state_dict())
    slow.backprop = None  # autograd
    buffer = _random_buffer(4, 3)
    for agent in (fast, slow):
        buffer.rng = np.random.default_rng(1)
        metrics = agent.update(buffer.sample, gradient_steps=12)
        assert set(metrics) == {"loss", "q_mean"} and math.isfinite(metrics["loss"])
    for a, b in zip(fast.q_net.parameters(), slow.q_net.parameters(), strict=True):
        np.testing.assert_allclose(a.detach(), b.detach(), rtol=1e-4, atol=1e-6)
    assert fast.updates_done == slow.updates_done == 12


def _random_buffer(obs_dim: int, num_actions: int, size: int = 500) -> ReplayBuffer:
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(size, (obs_dim,), seed=0)
    buffer.add(rng.normal(size=(size, obs_dim)), rng.integers(0, num_actions, size), rng.normal(size=size),
               rng.normal(size=(size, obs_dim)), rng.random(size) < 0.1, rng.random(size) < 0.05)
    return buffer


def test_uniform_update_draws_every_minibatch_and_uses_the_fixed_target():
    """One update of k steps equals k single steps on the same minibatches with the same target."""
    config = DQNConfig(batch_size=8, learning_rate=1e-2)
    torch.manual_seed(0)
    once = DQN(3, 2, PolicyConfig(hidden=(16,), activation="tanh"), config)
    stepwise = DQN(3, 2, PolicyConfig(hidden=(16,), activation="tanh"), config)
    stepwise.q_net.load_state_dict(once.q_net.state_dict())
    stepwise.target_net.load_state_dict(once.target_net.state_dict())
    buffer = _random_buffer(3, 2)
    indices = np.random.default_rng(5).integers(0, len(buffer), size=5 * 8)
    once.update(lambda n: buffer.get(indices[:n]), gradient_steps=5)
    for k in range(5):
        stepwise.update(lambda n, k=k: buffer.get(indices[k * 8:k * 8 + n]), gradient_steps=1)
    for a, b in zip(once.q_net.parameters(), stepwise.q_net.parameters(), strict=True):
        np.testing.assert_allclose(a.detach(), b.detach(), rtol=1e-5, atol=1e-7)


def test_prioritized_update_stores_the_td_errors_as_priorities():
    config = DQNConfig(batch_size=4, prioritized=True)
    agent = DQN(2, 2, PolicyConfig(hidden=(8,)), config)
    buffer = _random_buffer(2, 2, size=50)
    seen = []

    def priorities(indices, td_errors):
        assert indices.shape == td_errors.shape == (4,)
        seen.append(td_errors)

    agent.update(buffer.sample, gradient_steps=3, priorities=priorities)
    assert len(seen) == 3 and all(np.isfinite(e).all() for e in seen)


def test_torch_batch_rows_are_views():
    t = TorchBatch(torch.zeros(6, 2), torch.zeros(6, dtype=torch.int64), torch.arange(6.0), torch.zeros(6, 2),
                   torch.zeros(6, dtype=torch.bool), None)
    assert t.rows(slice(2, 4)).rewards.tolist() == [2.0, 3.0]


# ---------------------------------------------------------------------------------------- target network


def test_hard_and_polyak_updates():
    torch.manual_seed(0)
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    polyak_update(target, online, 0.25)
    for t, o, b in zip(target.parameters(), online.parameters(), before, strict=True):
        np.testing.assert_allclose(t.detach(), 0.25 * o.detach() + 0.75 * b, rtol=1e-6)
    hard_update(target, online)
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        assert torch.equal(t, o) and t.data_ptr() != o.data_ptr()


def test_agent_target_update_applies_tau_per_interval():
    policy = PolicyConfig(hidden=(4,))
    agent = DQN(2, 2, policy, DQNConfig(tau=0.5))
    with torch.no_grad():
        for p in agent.q_net.parameters():
            p.fill_(1.0)
        for p in agent.target_net.parameters():
            p.fill_(0.0)
    agent.update_target(times=3)  # three Polyak steps of τ = 0.5: 1 − 0.5³
    for p in agent.target_net.parameters():
        np.testing.assert_allclose(p.detach(), 0.875)
    agent.update_target(times=0)
    assert all(torch.all(p == 0.875) for p in agent.target_net.parameters())
    hard = DQN(2, 2, policy, DQNConfig(tau=1.0))
    hard.update_target(times=5)
    for t, o in zip(hard.target_net.parameters(), hard.q_net.parameters(), strict=True):
        assert torch.equal(t, o)


# ---------------------------------------------------------------------------------------- schedules


def test_linear_and_exponential_epsilon():
    linear = DQNConfig(epsilon_start=1.0, epsilon_end=0.1, exploration_fraction=0.5)
    assert [epsilon_at(s, linear, 1000) for s in (0, 250, 500, 900)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    expo = DQNConfig(epsilon_start=0.8, epsilon_end=0.05, epsilon_schedule="exponential",
                     exploration_fraction=0.4)
    values = [epsilon_at(s, expo, 1000) for s in (0, 100, 200, 400, 1000)]
    assert values == pytest.approx([0.8, 0.4, 0.2, 0.05, 0.05])  # halves every 100 steps: (1/16)^(t/400)
    prioritized = DQNConfig(priority_beta_start=0.4)
    assert [beta_at(s, prioritized, 1000) for s in (0, 500, 2000)] == pytest.approx([0.4, 0.7, 1.0])


# ---------------------------------------------------------------------------------------- bad input


def _config(*overrides: str, task: str = "CartPole-v1"):
    return parse_train_config(apply_overrides({"task": task, "algo": "dqn"}, list(overrides)))


@pytest.mark.parametrize(("overrides", "pattern"), [
    (["dqn.buffer_size=32", "dqn.batch_size=64"], r"dqn\.buffer_size: 32 is smaller than batch_size 64"),
    (["dqn.epsilon_start=1.5"], r"dqn\.epsilon_start: 1.5 is outside \[0, 1\]"),
    (["dqn.epsilon_end=-0.1"], r"dqn\.epsilon_end: -0.1 is outside \[0, 1\]"),
    (["dqn.epsilon_schedule=exponential", "dqn.epsilon_end=0"], r"dqn\.epsilon_end: must be > 0"),
    (["dqn.loss=l1"], r"dqn\.loss.*mse, huber"),
])
def test_bad_dqn_settings_are_named(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        _config(*overrides)


def test_continuous_task_is_refused_naming_the_task(tmp_path):
    with pytest.raises(ConfigError, match=r"^task: 'InvertedPendulum-v5' has a continuous \(torque\) action "
                                          r"space.*CartPole-v1"):
        DQNTrainer(_config(task="InvertedPendulum-v5"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_discrete_tasks_named_by_the_refusal_are_the_registrys(tmp_path):
    from robot_rl.sim.registry import TASKS, discrete_task_names

    with pytest.raises(ConfigError) as err:
        DQNTrainer(_config(task="Hopper-v5"), tmp_path / "run")
    listed = str(err.value).split("discrete tasks: ")[1].split(", ")
    assert listed == list(discrete_task_names())
    assert "atari:pong" in listed and "grid:book" in listed and "CartPole-v1" in listed
    assert not set(listed) & {"Hopper-v5", "dmc:cheetah-run"} and set(listed) <= set(TASKS)


@pytest.mark.parametrize(("setting", "word"), [
    ("task=Hopper-v5", "continuous"), ("dqn.buffer_size=10", "buffer_size"),
    ("dqn.epsilon_end=2", "epsilon_end")])
def test_cli_exits_2_with_one_line(tmp_path, capsys, setting, word):
    code = main(["train", str(LAUNCH / "cartpole_dqn.yaml"), "--set", setting, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and word in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ---------------------------------------------------------------------------------------- the trainer


def _small(tmp_path: Path, *more: str, task: str = "CartPole-v1") -> DQNTrainer:
    config = _config(
        "total_steps=600", "num_envs=2", "policy.hidden=[32, 32]", "policy.activation=relu",
        "normalize.observations=false", "normalize.rewards=false", "eval.episodes=2",
        "log.progress_bar=false", "log.tensorboard=false", "log.plot=false", "log.checkpoint_every_steps=300",
        "dqn.learning_starts=100", "dqn.train_freq=25", "dqn.gradient_steps=5", "dqn.batch_size=16",
        "dqn.buffer_size=1000", "dqn.log_every_steps=100", *more, task=task)
    return DQNTrainer(config, tmp_path / "run")


def test_transitions_store_the_real_final_observation_and_both_flags(tmp_path):
    from robot_rl.sim import make, make_env

    trainer = _small(tmp_path)
    trainer.envs.close()
    limit = 14  # short episodes: some end by truncation, some by the pole falling
    trainer.envs = make("CartPole-v1", num_envs=2, seed=0, max_episode_steps=limit)
    state = trainer.envs.reset(seed=0)[0], (np.zeros(2), np.zeros(2, dtype=np.int64))
    for _ in range(4):  # 4 × 25 vector steps of random actions (before learning_starts)
        state = trainer._collect(*state)
    stored = trainer.replay.get(np.arange(len(trainer.replay)))
    assert len(trainer.replay) == 200
    truncations = terminations = 0
    for i in range(2):  # replay env i's actions in a reference env: rows i, i+2, i+4, ...
        ref = make_env("CartPole-v1", seed=i, max_episode_steps=limit)
        expected_obs, _ = ref.reset()
        for row in range(i, 200, 2):
            np.testing.assert_allclose(stored.obs[row], expected_obs, rtol=1e-6)
            next_obs, reward, terminated, truncated, _ = ref.step(stored.actions[row])
            np.testing.assert_allclose(stored.next_obs[row], next_obs, rtol=1e-6)  # the real s', also at ends
            assert (stored.rewards[row], stored.terminated[row], stored.truncated[row]) == \
                (reward, terminated, truncated)
            truncations += truncated and not terminated
            terminations += terminated
            expected_obs = ref.reset()[0] if terminated or truncated else next_obs
    assert truncations > 0 and terminations > 0
    trainer.envs.close()


def test_run_directory_resume_and_eval(tmp_path, capsys):
    trainer = _small(tmp_path)
    result = trainer.train()
    run = tmp_path / "run"
    assert result["step"] == 600 and set(result) >= {"mean_return", "std_return", "episodes", "wall_time_s"}
    assert (run / "config.yaml").is_file() and (run / "eval.json").is_file()
    assert json.loads((run / "eval.json").read_text())["step"] == 600
    header, *rows = (run / "progress.csv").read_text().splitlines()
    assert header.startswith("step,update,time_s,sps,episode_return")
    assert "loss" in header and "epsilon" in header
    assert [int(r.split(",")[0]) for r in rows] == [100, 200, 300, 400, 500, 600]
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["step_000000000300.pt", "step_000000000600.pt"]

    # a run killed after its step-300 checkpoint resumes there with its replay and optimiser
    (run / "checkpoints" / "step_000000000600.pt").unlink()
    resumed = DQNTrainer.resume(run)
    assert resumed.step == 300 and len(resumed.replay) == 300
    assert resumed.agent.updates_done == trainer_updates_at(run, 300)
    assert len((run / "progress.csv").read_text().splitlines()) == 1 + 3  # rows after 300 dropped
    resumed.train()
    assert [int(r.split(",")[0]) for r in (run / "progress.csv").read_text().splitlines()[1:]] == \
        [100, 200, 300, 400, 500, 600]

    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 3 and out["mean_return"] > 0


def trainer_updates_at(run: Path, step: int) -> int:
    """Gradient steps taken by `step`, read from progress.csv."""
    import csv

    with open(run / "progress.csv", newline="") as f:
        return next(int(r["update"]) for r in csv.DictReader(f) if int(r["step"]) == step)


def test_policy_from_checkpoint_is_the_trainers_greedy_policy(tmp_path):
    from robot_rl.checkpoint import load_latest_checkpoint

    trainer = _small(tmp_path, "normalize.observations=true", "normalize.rewards=true",
                     "dqn.prioritized=true", "dqn.double_dqn=true")
    trainer.train()
    state, _ = load_latest_checkpoint(tmp_path / "run")
    restored = DQNTrainer.policy_from_checkpoint(trainer.config, state)
    live = trainer.policy_fn()
    for obs in np.random.default_rng(0).normal(size=(50, 4)):
        assert int(restored(obs)) == int(live(obs))


def test_grid_task_trains_through_the_same_loop(tmp_path):
    trainer = _small(tmp_path, "dqn.gamma=0.9", task="grid:book")
    result = trainer.train()
    assert result["step"] == 600 and np.isfinite(result["mean_return"])


# ---------------------------------------------------------------------------------------- launch files


@pytest.mark.parametrize("name", ["cartpole_dqn", "acrobot_dqn", "mountaincar_dqn", "lunarlander_dqn",
                                  "grid_book_dqn", "atari_pong_dqn"])
def test_dqn_launch_files_validate(name):
    config = load_train_config(LAUNCH / f"{name}.yaml")
    assert config.algo == "dqn" and config.normalize.observations is False
    assert config.algorithm.buffer_size >= config.algorithm.batch_size


# ---------------------------------------------------------------------------------------- export


def test_export_writes_an_argmax_bundle_that_acts_as_the_run(tmp_path):
    from robot_rl.evaluation import evaluate
    from robot_rl.export import export_run
    from robot_rl.policies import load
    from robot_rl.trainer import load_run_policy

    trainer = _small(tmp_path, "normalize.observations=true")
    trainer.train()
    bundle = export_run(tmp_path / "run", tmp_path / "bundle", episodes=3, seed=7)
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["kind"] == "argmax" and manifest["head"]["num_actions"] == 2
    assert manifest["normalizer"] is not None
    policy = load(bundle.path)
    _, run_policy, _ = load_run_policy(tmp_path / "run")
    for obs in np.random.default_rng(1).normal(size=(100, 4)):
        assert policy.act(obs).tolist() == [float(run_policy(obs))]
    ours = evaluate("CartPole-v1", run_policy, 3, 7)
    assert manifest["provenance"]["evaluation"]["returns"] == ours["returns"]


def test_best_checkpoint_leaves_the_replay_buffer_out_and_exports(tmp_path):
    from robot_rl.checkpoint import list_checkpoints, load_checkpoint
    from robot_rl.export import export_run

    trainer = _small(tmp_path, "eval.every_steps=200", "dqn.save_replay=true")
    trainer.train()
    run = tmp_path / "run"
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["replay"] is None and best["best_eval"] is not None
    assert load_checkpoint(list_checkpoints(run)[-1][1])["replay"] is not None  # resuming keeps it
    bundle = export_run(run, tmp_path / "bundle", episodes=2, checkpoint="best")
    assert bundle.manifest.provenance["steps"] == best["step"]


# ---------------------------------------------------------------------------------------- images


def test_frame_stack_keeps_the_last_k_frames_oldest_first():
    import gymnasium

    from robot_rl.sim.frame_stack import FrameStack

    class Counter(gymnasium.Env):
        observation_space = gymnasium.spaces.Box(0, 100, (2,), np.int64)
        action_space = gymnasium.spaces.Discrete(1)

        def reset(self, *, seed=None, options=None):
            self.t = 1
            return np.array([self.t, -self.t]), {}

        def step(self, action):
            self.t += 1
            return np.array([self.t, -self.t]), 0.0, False, False, {}

    env = FrameStack(Counter(), 3)
    assert env.observation_space.shape == (3, 2)
    first, _ = env.reset()
    assert first[:, 0].tolist() == [1, 1, 1]  # the first frame fills every slot
    assert [env.step(0)[0][:, 0].tolist() for _ in range(3)] == [[1, 1, 2], [1, 2, 3], [2, 3, 4]]
    again, _ = env.reset()
    assert again[:, 0].tolist() == [1, 1, 1]  # no frame of the last episode survives
    with pytest.raises(ValueError, match="k"):
        FrameStack(Counter(), 0)


def test_area_downsampling_averages_blocks():
    from robot_rl.sim.atari import area_matrix

    m = area_matrix(6, 3)
    np.testing.assert_allclose(m @ np.arange(6.0), [0.5, 2.5, 4.5])
    np.testing.assert_allclose(area_matrix(3, 2) @ np.array([0.0, 3.0, 6.0]), [1.0, 5.0])  # 1.5 cells each
    np.testing.assert_allclose(area_matrix(210, 84).sum(axis=1), 1.0)


def test_frame_downsampling_equals_the_area_matrices():
    import gymnasium

    from robot_rl.sim.atari import _Downsample, area_matrix

    class Screen(gymnasium.Env):
        observation_space = gymnasium.spaces.Box(0, 255, (210, 160), np.uint8)
        action_space = gymnasium.spaces.Discrete(2)

    screen = np.random.default_rng(0).integers(0, 256, (210, 160)).astype(np.uint8)
    small = _Downsample(Screen()).observation(screen)
    exact = area_matrix(210, 84) @ screen.astype(np.float64) @ area_matrix(160, 84).T
    assert small.shape == (84, 84) and small.dtype == np.uint8
    assert np.abs(small - exact).max() <= 0.5 + 1e-3  # rounded to the nearest grey level


def test_nature_cnn_shapes():
    net = NatureCNN(4 * 84 * 84, 6)
    pixels = torch.randint(0, 256, (2, 4 * 84 * 84), dtype=torch.uint8)
    assert net(pixels).shape == (2, 6)
    assert sum(p.numel() for p in net.parameters()) == 1_687_206  # Mnih et al.'s layer sizes
    with pytest.raises(ValueError, match="84"):
        NatureCNN(100, 2)
