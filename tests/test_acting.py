"""The numpy acting path samples from the same distribution the torch actor scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl.acting import NumpyActing
from robot_rl.agents.ppo import PPO, PPOConfig
from robot_rl.launch import PolicyConfig
from robot_rl.policies.numpy_mlp import NumpyMLP


@pytest.mark.parametrize("squash", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
def test_numpy_log_probs_and_values_equal_torch(squash: bool, activation: str) -> None:
    torch.manual_seed(0)
    agent = PPO(5, 3, PolicyConfig(activation=activation, squash=squash, log_std_init=-0.5), PPOConfig(), 1)
    with torch.no_grad():  # move away from the initial near-zero output layer
        for p in agent.actor.parameters():
            p.add_(0.3 * torch.randn_like(p))
    acting = NumpyActing(agent, seed=0)
    obs = np.random.default_rng(1).standard_normal((256, 5)).astype(np.float32)
    actions, log_probs, values = acting.act(obs)
    with torch.no_grad():
        dist = agent.actor(torch.as_tensor(obs))
        expected_lp = dist.log_prob(torch.as_tensor(actions)).numpy()
        expected_v = agent.critic(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(log_probs, expected_lp, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(values, expected_v, rtol=1e-5, atol=1e-5)
    if squash:
        assert np.all(np.abs(actions) <= 1.0)


def test_samples_have_the_policy_mean_and_std() -> None:
    torch.manual_seed(0)
    agent = PPO(2, 2, PolicyConfig(log_std_init=np.log(0.5)), PPOConfig(), 1)
    acting = NumpyActing(agent, seed=3)
    obs = np.zeros((20000, 2), dtype=np.float32)
    actions, _, _ = acting.act(obs)
    mean = agent.actor(torch.zeros(1, 2)).mean.detach().numpy()[0]
    np.testing.assert_allclose(actions.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(actions.std(0), [0.5, 0.5], atol=0.02)


def test_a_log_std_floor_bounds_the_noise_sampled_scored_and_exported_and_stops_its_gradient() -> None:
    """`policy.log_std_min`: below the floor the parameter acts as the floor everywhere a policy's noise
    is used (the torch distribution PPO scores, the numpy sampler of the rollouts, the exported head),
    and the loss no longer pulls it down; above the floor it is the parameter."""
    from robot_rl.acting import policy_weights

    agent = PPO(2, 2, PolicyConfig(log_std_init=-1.0, log_std_min=-1.5), PPOConfig(), 1)
    with torch.no_grad():
        agent.actor.log_std.copy_(torch.tensor([-3.0, -1.2]))  # one below the floor, one above
    dist = agent.actor(torch.zeros(1, 2))
    np.testing.assert_allclose(dist.log_std.detach().numpy().ravel(), [-1.5, -1.2])
    np.testing.assert_allclose(policy_weights(agent).log_std, [-1.5, -1.2], rtol=1e-6)
    actions, _, _ = NumpyActing(agent, seed=3).act(np.zeros((20000, 2), dtype=np.float32))
    np.testing.assert_allclose(actions.std(0), np.exp([-1.5, -1.2]), rtol=0.03)
    (-dist.entropy().sum()).backward()  # a loss that would shrink the noise
    assert agent.actor.log_std.grad is not None
    assert agent.actor.log_std.grad[0] == 0.0 and agent.actor.log_std.grad[1] != 0.0


def test_refresh_follows_the_torch_weights() -> None:
    agent = PPO(3, 1, PolicyConfig(), PPOConfig(), 1)
    acting = NumpyActing(agent, seed=0)
    obs = np.ones((1, 3), dtype=np.float32)
    before = acting.value(obs).copy()
    with torch.no_grad():
        agent.critic.net[-1].bias.add_(1.0)
    np.testing.assert_array_equal(acting.value(obs), before)  # a snapshot until refreshed
    acting.refresh()
    np.testing.assert_allclose(acting.value(obs), before + 1.0, rtol=1e-6)


def test_numpy_mlp_rejects_layers_that_do_not_fit() -> None:
    w1, b1 = np.zeros((8, 4)), np.zeros(8)
    with pytest.raises(ValueError, match="layer 1"):
        NumpyMLP([(w1, b1), (np.zeros((2, 7)), np.zeros(2))], "tanh")
    with pytest.raises(ValueError, match=r"sigmoid.*tanh, relu, elu"):
        NumpyMLP([(w1, b1)], "sigmoid")
