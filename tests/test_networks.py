"""MLP construction, orthogonal initialisation, actor/critic shapes and the numpy export."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from robot_rl.distributions import DiagGaussian, SquashedDiagGaussian
from robot_rl.errors import ConfigError
from robot_rl.networks import Critic, GaussianActor, mlp


def _linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def _assert_orthogonal(weight: torch.Tensor, gain: float) -> None:
    w = weight.detach().double()
    out_dim, in_dim = w.shape
    gram = w @ w.T if out_dim <= in_dim else w.T @ w  # the smaller Gram matrix is gain² I
    torch.testing.assert_close(gram, gain**2 * torch.eye(min(out_dim, in_dim), dtype=torch.float64),
                               atol=1e-5 * max(gain**2, 1.0), rtol=0)


@pytest.mark.parametrize("hidden", [(64, 64), (8, 32, 5)])
def test_mlp_is_orthogonal_with_zero_biases(hidden: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = mlp(17, hidden, 4, "relu", output_gain=0.5)
    layers = _linears(net)
    sizes = (17, *hidden, 4)
    assert [(m.in_features, m.out_features) for m in layers] == list(itertools.pairwise(sizes))
    for layer in layers[:-1]:
        _assert_orthogonal(layer.weight, math.sqrt(2.0))
    _assert_orthogonal(layers[-1].weight, 0.5)
    for layer in layers:
        assert torch.all(layer.bias == 0.0)
    assert isinstance(net[1], nn.ReLU) and not isinstance(net[-1], nn.ReLU)
    assert net(torch.zeros(3, 17)).shape == (3, 4)


def test_ortho_init_false_keeps_torchs_default_initialisation() -> None:
    """The RL Zoo's tuned MuJoCo PPO settings build their networks with torch's default init."""
    torch.manual_seed(0)
    net = mlp(17, (256, 256), 6, "relu", output_gain=0.01, orthogonal=False)
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(17, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 6))
    for ours, theirs in zip(_linears(net), _linears(plain), strict=True):
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    assert torch.any(_linears(net)[0].bias != 0.0)
    actor = GaussianActor(17, 6, hidden=(256, 256), activation="relu", log_std_init=-2.0, ortho_init=False)
    # a default-initialised last layer has weights of order 1/sqrt(256), not the 0.01 gain
    assert _linears(actor.mean_net)[-1].weight.abs().max() > 0.03
    assert torch.allclose(actor.log_std, torch.full((6,), -2.0))


def test_unknown_activation_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="tanh, relu, elu"):
        mlp(3, (4,), 2, "sigmoid")
    with pytest.raises(ConfigError, match="'swish'"):
        GaussianActor(3, 2, activation="swish")


def test_actor_starts_near_zero_mean_with_the_given_log_std() -> None:
    torch.manual_seed(1)
    actor = GaussianActor(11, 3, log_std_init=-0.5)
    obs = torch.randn(256, 11) * 3.0
    dist = actor(obs)
    assert isinstance(dist, DiagGaussian)
    assert dist.mean.shape == (256, 3)
    assert dist.mean.abs().max() < 0.1  # output gain 0.01: ≈ 100× smaller than a unit-gain head
    torch.testing.assert_close(actor.log_std.detach(), torch.full((3,), -0.5))
    _assert_orthogonal(_linears(actor)[-1].weight, 0.01)
    assert dist.log_prob(dist.sample()).shape == (256,)
    # the log-std is learned: it receives a gradient
    dist.entropy().sum().backward()
    assert actor.log_std.grad is not None


def test_actor_act_and_squash() -> None:
    torch.manual_seed(2)
    actor = GaussianActor(4, 2, hidden=(16,), squash=True, log_std_init=1.0)
    obs = np.random.default_rng(0).normal(size=(50, 4))
    assert isinstance(actor(torch.as_tensor(obs, dtype=torch.float32)), SquashedDiagGaussian)
    stochastic = actor.act(obs)
    assert stochastic.shape == (50, 2) and stochastic.abs().max() <= 1.0 and not stochastic.requires_grad
    deterministic = actor.act(obs, deterministic=True)
    torch.testing.assert_close(deterministic, actor.act(obs, deterministic=True))
    torch.testing.assert_close(deterministic, torch.tanh(actor.mean_net(torch.as_tensor(obs).float())))


def test_critic_returns_one_value_per_observation_with_unit_output_gain() -> None:
    torch.manual_seed(3)
    critic = Critic(6, hidden=(32, 32), activation="elu")
    assert critic(torch.randn(9, 6)).shape == (9,)
    _assert_orthogonal(_linears(critic)[-1].weight, 1.0)


def _numpy_forward(layers: list[tuple[np.ndarray, np.ndarray]], activation: str, x: np.ndarray) -> np.ndarray:
    act = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0),
           "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0.0)))}[activation]
    for i, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if i < len(layers) - 1:
            x = act(x)
    return x


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
def test_exported_layers_reproduce_the_torch_network_in_numpy(activation: str) -> None:
    torch.manual_seed(4)
    actor = GaussianActor(5, 2, hidden=(16, 8), activation=activation)
    critic = Critic(5, hidden=(12,), activation=activation)
    with torch.no_grad():  # move off the near-zero init so the check is not trivially ≈ 0
        for p in actor.parameters():
            p.add_(0.3 * torch.randn_like(p))
    obs = np.random.default_rng(1).normal(size=(20, 5)).astype(np.float32)
    exported = actor.export_layers()
    assert exported.activation == activation
    assert [w.shape for w, _ in exported.layers] == [(16, 5), (8, 16), (2, 8)]
    assert all(w.dtype == np.float32 and b.dtype == np.float32 for w, b in exported.layers)
    expected = actor(torch.from_numpy(obs)).mean.detach().numpy()
    np.testing.assert_allclose(_numpy_forward(exported.layers, activation, obs), expected, atol=1e-5)
    values = critic(torch.from_numpy(obs)).detach().numpy()
    crit = critic.export_layers()
    np.testing.assert_allclose(_numpy_forward(crit.layers, activation, obs)[:, 0], values, atol=1e-5)
    # the export is a copy: training further does not change it
    with torch.no_grad():
        actor.mean_net[0].weight.add_(1.0)
    assert not np.allclose(exported.layers[0][0], actor.mean_net[0].weight.detach().numpy())


def _actor_critic_loss(actor: GaussianActor, critic: Critic, obs: torch.Tensor) -> torch.Tensor:
    actions = torch.full((obs.shape[0], actor.log_std.numel()), 0.5)
    return actor(obs).log_prob(actions).mean() + critic(obs).square().mean()


def test_flattened_parameters_train_like_separate_ones_and_survive_loading() -> None:
    """One flat tensor for all parameters (one Adam kernel) changes nothing but the speed."""
    from robot_rl.networks import flatten_parameters

    torch.manual_seed(0)
    nets = [GaussianActor(11, 3), Critic(11)]
    twins = [GaussianActor(11, 3), Critic(11)]
    for net, twin in zip(nets, twins, strict=True):
        twin.load_state_dict(net.state_dict())
    params = [p for n in nets for p in n.parameters()]
    flat = flatten_parameters(params)
    assert flat.numel() == sum(p.numel() for p in params)
    assert all(p.data_ptr() >= flat.data_ptr() for p in params)  # views into the flat storage
    opt = torch.optim.Adam([flat], lr=1e-2, fused=True)
    twin_params = [p for n in twins for p in n.parameters()]
    twin_opt = torch.optim.Adam(twin_params, lr=1e-2)
    obs = torch.randn(64, 11)

    def loss(actor: GaussianActor, critic: Critic) -> torch.Tensor:
        return _actor_critic_loss(actor, critic, obs)

    for _ in range(5):
        flat.grad.zero_()
        loss(*nets).backward()
        nn.utils.clip_grad_norm_(flat, 0.5)
        opt.step()
        twin_opt.zero_grad()
        loss(*twins).backward()
        nn.utils.clip_grad_norm_(twin_params, 0.5)
        twin_opt.step()
    for p, q in zip(params, twin_params, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    # loading a checkpoint copies into the views: the optimiser keeps training the loaded weights
    nets[0].load_state_dict(twins[0].state_dict())
    before = nets[0].mean_net[0].weight.detach().clone()
    flat.grad.zero_()
    loss(*nets).backward()
    opt.step()
    assert not torch.equal(nets[0].mean_net[0].weight, before)


def test_a_per_tensor_adam_state_loads_into_the_flat_optimizer() -> None:
    """Checkpoints from before the flattening keep their Adam moments (and so resume the same)."""
    from robot_rl.networks import flatten_optimizer_state, flatten_parameters

    torch.manual_seed(1)
    old_nets = [GaussianActor(5, 2), Critic(5)]
    old_params = [p for n in old_nets for p in n.parameters()]
    old_opt = torch.optim.Adam(old_params, lr=1e-2)
    obs = torch.randn(32, 5)

    def loss(actor: GaussianActor, critic: Critic) -> torch.Tensor:
        return _actor_critic_loss(actor, critic, obs)

    for _ in range(3):
        old_opt.zero_grad()
        loss(*old_nets).backward()
        old_opt.step()
    new_nets = [GaussianActor(5, 2), Critic(5)]
    for new, old in zip(new_nets, old_nets, strict=True):
        new.load_state_dict(old.state_dict())
    flat = flatten_parameters([p for n in new_nets for p in n.parameters()])
    new_opt = torch.optim.Adam([flat], lr=1e-2)
    new_opt.load_state_dict(flatten_optimizer_state(old_opt.state_dict()))
    for _ in range(2):  # one more step each, from the same moments
        old_opt.zero_grad()
        loss(*old_nets).backward()
        old_opt.step()
        flat.grad.zero_()
        loss(*new_nets).backward()
        new_opt.step()
    for p, q in zip((p for n in new_nets for p in n.parameters()), old_params, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    flat_state = new_opt.state_dict()
    assert flatten_optimizer_state(flat_state) is flat_state  # a flat state passes through unchanged
