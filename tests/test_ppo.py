"""PPO's losses against their definitions, and one update on a synthetic batch."""

from __future__ import annotations

import torch

from robot_rl.agents.ppo import PPO, PPOConfig, adapt_kl_beta, clipped_surrogate, value_loss
from robot_rl.launch import PolicyConfig
from robot_rl.rollout import RolloutBuffer


def _grad_of_clipped(ratio_value: float, advantage: float, eps: float = 0.2) -> float:
    ratio = torch.tensor([ratio_value], requires_grad=True)
    clipped_surrogate(ratio, torch.tensor([advantage]), eps).backward()
    return float(ratio.grad[0])


def test_clipped_objective_gradient_is_zero_outside_the_clip_range_on_the_right_side() -> None:
    # Â > 0: the objective stops rewarding increases of r beyond 1 + ε; below 1 − ε it still pulls up.
    assert _grad_of_clipped(1.3, 2.0) == 0.0
    assert _grad_of_clipped(0.7, 2.0) == -2.0  # d(−r·Â)/dr
    # Â < 0: no gradient below 1 − ε (already decreased enough); above 1 + ε it still pushes down.
    assert _grad_of_clipped(0.7, -2.0) == 0.0
    assert _grad_of_clipped(1.3, -2.0) == 2.0
    # inside the range the loss is the plain surrogate −r·Â
    assert _grad_of_clipped(1.1, 2.0) == -2.0
    assert _grad_of_clipped(0.9, -2.0) == 2.0


def test_clipped_objective_value_is_the_pessimistic_bound() -> None:
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # min(r·A, clip(r)·A): [1.2, 0.5, −1.5, −0.8]
    expected = -torch.tensor([1.2, 0.5, -1.5, -0.8]).mean()
    assert torch.isclose(clipped_surrogate(ratio, adv, 0.2), expected)


def test_value_loss_clipping_takes_the_larger_error() -> None:
    values, old, returns = torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([3.0])
    assert torch.isclose(value_loss(values, old, returns, None), torch.tensor(0.5))
    # clipped value: 0 + clip(2, ±0.2) = 0.2 → error 2.8² is larger than 1²
    assert torch.isclose(value_loss(values, old, returns, 0.2), torch.tensor(0.5 * 2.8**2))


def test_kl_penalty_beta_adapts_as_the_course_says() -> None:
    assert adapt_kl_beta(1.0, kl=0.02, target=0.01) == 2.0
    assert adapt_kl_beta(1.0, kl=0.005, target=0.01) == 0.5
    assert adapt_kl_beta(1.0, kl=0.01, target=0.01) == 1.0


def _synthetic_buffer(obs_dim: int = 3, act_dim: int = 2, steps: int = 64, envs: int = 2) -> RolloutBuffer:
    g = torch.Generator().manual_seed(0)
    buf = RolloutBuffer(steps, envs, obs_dim, act_dim)
    buf.obs.copy_(torch.randn(buf.obs.shape, generator=g))
    buf.actions.copy_(torch.randn(buf.actions.shape, generator=g))
    buf.rewards.copy_(buf.actions[..., 0])  # reward the first action dimension
    return buf


def _fill_log_probs(agent: PPO, buf: RolloutBuffer) -> None:
    with torch.no_grad():
        buf.log_probs.copy_(agent.actor(buf.obs).log_prob(buf.actions))
        buf.values.copy_(agent.critic(buf.obs))


def test_ppo_update_raises_the_probability_of_advantageous_actions() -> None:
    for objective in ("clip", "kl_penalty"):
        torch.manual_seed(0)
        agent = PPO(3, 2, PolicyConfig(), PPOConfig(num_steps=64, epochs=4, minibatch_size=32,
                                                    objective=objective, anneal_lr=False), 10)
        buf = _synthetic_buffer()
        _fill_log_probs(agent, buf)
        before = agent.actor(buf.obs.flatten(0, 1)).mean[:, 0].mean().item()
        stats = agent.update(buf, torch.zeros(2))
        after = agent.actor(buf.obs.flatten(0, 1)).mean[:, 0].mean().item()
        assert after > before, objective
        assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
        assert agent.updates_done == 1


def test_target_kl_stops_the_epochs_early() -> None:
    torch.manual_seed(0)
    agent = PPO(3, 2, PolicyConfig(), PPOConfig(num_steps=64, epochs=50, minibatch_size=16,
                                                learning_rate=1e-2, target_kl=1e-4), 10)
    buf = _synthetic_buffer()
    _fill_log_probs(agent, buf)
    assert agent.update(buf, torch.zeros(2))["stopped_early"] == 1.0


def test_state_dict_round_trip_restores_networks_optimizer_and_beta() -> None:
    torch.manual_seed(0)
    cfg = PPOConfig(num_steps=64, epochs=2, minibatch_size=32, objective="kl_penalty")
    agent = PPO(3, 2, PolicyConfig(), cfg, 10)
    buf = _synthetic_buffer()
    _fill_log_probs(agent, buf)
    agent.update(buf, torch.zeros(2))
    other = PPO(3, 2, PolicyConfig(), cfg, 10)
    other.load_state_dict(agent.state_dict())
    assert other.kl_beta == agent.kl_beta and other.updates_done == 1
    for a, b in zip(agent.actor.parameters(), other.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    assert other.optimizer.state_dict()["state"].keys() == agent.optimizer.state_dict()["state"].keys()
