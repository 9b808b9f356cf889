"""REINFORCE's per-step updates and VPG's batch gradient against explicit autograd computations."""

from __future__ import annotations

import copy

import pytest
import torch

from robot_rl.agents.base import fit_baseline
from robot_rl.agents.reinforce import Reinforce, ReinforceConfig
from robot_rl.agents.vpg import VPG, VPGConfig, vpg_loss
from robot_rl.errors import ConfigError
from robot_rl.launch import PolicyConfig
from robot_rl.networks import Critic
from robot_rl.rollout import RolloutBuffer, episode_time, finished_mask, monte_carlo_returns

POLICY = PolicyConfig(hidden=(8,), critic_hidden=(8,), log_std_init=-0.5)
OBS_DIM, ACT_DIM = 3, 2


def _buffer(rewards: list[list[float]], terminated: list[tuple[int, int]] = (),
            truncated: list[tuple[int, int, float]] = (),
            values: torch.Tensor | None = None) -> RolloutBuffer:
    """rewards[t][n]; terminated (t, n); truncated (t, n, V(final obs)); random obs and actions."""
    r = torch.tensor(rewards, dtype=torch.float32)
    steps, envs = r.shape
    buf = RolloutBuffer(steps, envs, OBS_DIM, ACT_DIM)
    g = torch.Generator().manual_seed(7)
    buf.obs.copy_(torch.randn(buf.obs.shape, generator=g))
    buf.actions.copy_(torch.randn(buf.actions.shape, generator=g))
    buf.rewards.copy_(r)
    for t, n in terminated:
        buf.terminated[t, n] = True
    for t, n, v in truncated:
        buf.truncated[t, n] = True
        buf.bootstrap_values[t, n] = v
    if values is not None:
        buf.values.copy_(values)
    return buf


def _reinforce(**kw) -> Reinforce:
    torch.manual_seed(0)
    return Reinforce(OBS_DIM, ACT_DIM, POLICY, ReinforceConfig(**kw), 1)


def _vpg(**kw) -> VPG:
    torch.manual_seed(0)
    return VPG(OBS_DIM, ACT_DIM, POLICY, VPGConfig(**kw), 1)


def _grad_log_prob(actor: torch.nn.Module, obs: torch.Tensor, action: torch.Tensor) -> list[torch.Tensor]:
    """∇_θ log π(a|s) of one (s, a), by autograd."""
    log_prob = actor(obs[None]).log_prob(action[None]).sum()
    return list(torch.autograd.grad(log_prob, list(actor.parameters())))


def _sequential_reference(actor: torch.nn.Module, steps: list[tuple[torch.Tensor, torch.Tensor, float]],
                          alpha: float) -> list[torch.Tensor]:
    """θ ← θ + α w ∇log π(a|s) for each (s, a, w) in order, by hand on a copy."""
    ref = copy.deepcopy(actor)
    for obs, action, weight in steps:
        grads = _grad_log_prob(ref, obs, action)
        with torch.no_grad():
            for p, g in zip(ref.parameters(), grads, strict=True):
                p.add_(alpha * weight * g)
    return [p.detach() for p in ref.parameters()]


def _assert_params(actor: torch.nn.Module, expected: list[torch.Tensor]) -> None:
    for p, e in zip(actor.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------- REINFORCE

def test_one_step_bandit_update_is_alpha_g_grad_log_pi() -> None:
    agent = _reinforce(baseline=False, normalize_advantages=False, learning_rate=0.1)
    buf = _buffer([[2.5]], terminated=[(0, 0)])
    grads = _grad_log_prob(agent.actor, buf.obs[0, 0], buf.actions[0, 0])
    expected = [p.detach() + 0.1 * 2.5 * g for p, g in zip(agent.actor.parameters(), grads, strict=True)]
    stats = agent.update(buf, torch.zeros(1))
    _assert_params(agent.actor, expected)
    assert stats["policy_updates"] == 1.0


def test_with_a_baseline_the_weight_is_g_minus_b() -> None:
    agent = _reinforce(baseline=True, normalize_advantages=False, learning_rate=0.1)
    assert agent.critic is not None
    buf = _buffer([[2.5]], terminated=[(0, 0)], values=torch.tensor([[0.7]]))
    grads = _grad_log_prob(agent.actor, buf.obs[0, 0], buf.actions[0, 0])
    params = agent.actor.parameters()
    expected = [p.detach() + 0.1 * (2.5 - 0.7) * g for p, g in zip(params, grads, strict=True)]
    agent.update(buf, torch.zeros(1))
    _assert_params(agent.actor, expected)


def test_steps_are_updated_one_after_another_in_time_order() -> None:
    # One episode r = [1, 2, 3], γ = 0.5: G = [1 + 0.5·2 + 0.25·3, 2 + 0.5·3, 3] = [2.75, 3.5, 3].
    agent = _reinforce(baseline=False, normalize_advantages=False, learning_rate=0.05, gamma=0.5)
    buf = _buffer([[1.0], [2.0], [3.0]], terminated=[(2, 0)])
    steps = [(buf.obs[t, 0], buf.actions[t, 0], g) for t, g in enumerate([2.75, 3.5, 3.0])]
    expected = _sequential_reference(agent.actor, steps, 0.05)
    # not what one batch step at θ_old would give: the later steps see the moved policy
    batch = [p.detach().clone() for p in agent.actor.parameters()]
    for obs, action, g in steps:
        for b, d in zip(batch, _grad_log_prob(agent.actor, obs, action), strict=True):
            b.add_(0.05 * g * d)
    agent.update(buf, torch.zeros(1))
    _assert_params(agent.actor, expected)
    assert max((p - b).abs().max().item() for p, b in zip(expected, batch, strict=True)) > 1e-4


def test_without_a_baseline_the_unfinished_tail_is_dropped() -> None:
    # env 0: episode ends at t = 1, then t = 2..4 run on past the rollout (G unknown); env 1 ends at t = 4.
    gamma = 0.9
    rewards = [[1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5]]
    buf = _buffer(rewards, terminated=[(1, 0), (4, 1)])
    returns, used = monte_carlo_returns(buf, torch.zeros(2), gamma, bootstrap_tail=False)
    assert used[:, 0].tolist() == [True, True, False, False, False]
    assert used[:, 1].all()
    torch.testing.assert_close(returns[:2, 0], torch.tensor([1.9, 1.0]))
    agent = _reinforce(baseline=False, normalize_advantages=False, learning_rate=0.05, gamma=gamma)
    g1 = [0.5 * sum(gamma**k for k in range(5 - t)) for t in range(5)]
    steps = ([(buf.obs[t, 0], buf.actions[t, 0], g) for t, g in enumerate([1.9, 1.0])]  # env by env
             + [(buf.obs[t, 1], buf.actions[t, 1], g1[t]) for t in range(5)])
    expected = _sequential_reference(agent.actor, steps, 0.05)
    stats = agent.update(buf, torch.full((2,), 100.0))  # last_values are ignored without a baseline
    assert stats["policy_updates"] == 7.0
    assert stats["used_fraction"] == pytest.approx(0.7)
    _assert_params(agent.actor, expected)


def test_with_a_baseline_the_tail_bootstraps_from_the_last_value_and_truncation_from_its_own() -> None:
    gamma = 0.9
    # env 0: terminated at t = 1, tail t = 2..4 with V(s_T) = 2; env 1: truncated at t = 2 with V = 4.
    buf = _buffer([[1.0, 1.0]] * 5, terminated=[(1, 0)], truncated=[(2, 1, 4.0)])
    returns, used = monte_carlo_returns(buf, torch.tensor([2.0, 2.0]), gamma, bootstrap_tail=True)
    assert used.all()
    g4 = 1 + gamma * 2.0
    g3 = 1 + gamma * g4
    g2 = 1 + gamma * g3
    torch.testing.assert_close(returns[:, 0], torch.tensor([1.9, 1.0, g2, g3, g4]))
    g2_trunc = 1 + gamma * 4.0
    torch.testing.assert_close(returns[:3, 1], torch.tensor([1 + gamma * (1 + gamma * g2_trunc),
                                                             1 + gamma * g2_trunc, g2_trunc]))
    agent = _reinforce(baseline=True, learning_rate=0.01)
    assert agent.update(buf, torch.tensor([2.0, 2.0]))["policy_updates"] == 10.0


def test_finished_mask_and_episode_time_by_hand() -> None:
    term = torch.zeros(5, 2, dtype=torch.bool)
    trunc = torch.zeros(5, 2, dtype=torch.bool)
    term[1, 0] = True
    term[0, 1] = True
    trunc[3, 1] = True
    assert finished_mask(term, trunc).T.tolist() == [[True, True, False, False, False],
                                                     [True, True, True, True, False]]
    index, carry = episode_time(term, trunc, torch.tensor([3, 0]))
    assert index.T.tolist() == [[3, 4, 0, 1, 2], [0, 0, 1, 2, 0]]
    assert carry.tolist() == [3, 1]


def test_discount_weighting_multiplies_by_gamma_to_the_episode_time() -> None:
    # Two rollouts of one episode r = [1, 1 | 1, 1]: the second rollout's steps are t = 2, 3 of it.
    gamma = 0.5
    agent = _reinforce(baseline=True, normalize_advantages=False, learning_rate=0.05, gamma=gamma,
                       discount_weighting=True)
    first = _buffer([[1.0], [1.0]])
    agent.update(first, torch.zeros(1))
    second = _buffer([[1.0], [1.0]], terminated=[(1, 0)], values=torch.tensor([[0.25], [0.5]]))
    g = [1.5, 1.0]
    steps = [(second.obs[t, 0], second.actions[t, 0], (g[t] - [0.25, 0.5][t]) * gamma ** (t + 2))
             for t in range(2)]
    expected = _sequential_reference(agent.actor, steps, 0.05)
    agent.update(second, torch.zeros(1))
    _assert_params(agent.actor, expected)


# --------------------------------------------------------------------------------------- VPG

GAMMA = 0.9
REWARDS = [[1.0, -1.0], [0.5, 2.0], [2.0, 0.0], [-1.0, 1.0], [0.0, 3.0], [1.5, -2.0]]


def _vpg_buffer(values: torch.Tensor | None = None) -> RolloutBuffer:
    # env 0: episodes t = 0..2 (terminated) and 3..5 (time-limit truncated, no critic: V = 0)
    # env 1: episode t = 0..3 (terminated), then a tail t = 4, 5 still running
    bootstrap = 0.0 if values is None else 0.8
    return _buffer(REWARDS, terminated=[(2, 0), (3, 1)], truncated=[(5, 0, bootstrap)], values=values)


def _mc(rewards: list[float], gamma: float, tail: float = 0.0) -> list[float]:
    """Reward-to-go Σ_{k≥t} γ^(k−t) r_k (+ γ^(T−t) tail), by explicit sums."""
    n = len(rewards)
    return [sum(gamma ** (k - t) * rewards[k] for k in range(t, n)) + gamma ** (n - t) * tail
            for t in range(n)]


def _episodes(with_tail: bool, last_value: float = 0.0, bootstrap: float = 0.0):
    """(env, first step, last step, G per step) of every trajectory segment in _vpg_buffer."""
    col = [[r[n] for r in REWARDS] for n in range(2)]
    eps = [(0, 0, 2, _mc(col[0][0:3], GAMMA)), (0, 3, 5, _mc(col[0][3:6], GAMMA, bootstrap)),
           (1, 0, 3, _mc(col[1][0:4], GAMMA))]
    if with_tail:
        eps.append((1, 4, 5, _mc(col[1][4:6], GAMMA, last_value)))
    return eps


def _explicit_vpg_gradient(actor: torch.nn.Module, buf: RolloutBuffer, episodes, reward_to_go: bool,
                           baseline: torch.Tensor | None) -> torch.Tensor:
    """1/m Σ_i g_i, g_i = Σ_t ∇log π(a_t|s_t)(Ψ_t − b_t), each g_i by its own autograd pass."""
    per_episode = []
    for env, first, last, returns in episodes:
        total = torch.zeros(())
        for k, t in enumerate(range(first, last + 1)):
            psi = returns[k] if reward_to_go else returns[0]
            b = 0.0 if baseline is None else baseline[t, env].item()
            log_prob = actor(buf.obs[t, env][None]).log_prob(buf.actions[t, env][None]).sum()
            total = total + (psi - b) * log_prob
        grads = torch.autograd.grad(total, list(actor.parameters()))
        per_episode.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(per_episode).mean(0)


def _vpg_gradient(agent: VPG, buf: RolloutBuffer, last_values: torch.Tensor) -> tuple[torch.Tensor, int]:
    batch = agent.batch(buf, last_values)
    loss = vpg_loss(agent.actor, batch["obs"], batch["actions"], batch["weights"], batch["num_trajectories"])
    grads = torch.autograd.grad(loss, list(agent.actor.parameters()))
    return -torch.cat([g.reshape(-1) for g in grads]), batch["num_trajectories"]


@pytest.mark.parametrize("reward_to_go", [True, False])
def test_vpg_gradient_is_the_average_of_per_episode_gradients(reward_to_go: bool) -> None:
    agent = _vpg(baseline=False, normalize_advantages=False, reward_to_go=reward_to_go, gamma=GAMMA)
    buf = _vpg_buffer()
    ghat, m = _vpg_gradient(agent, buf, torch.zeros(2))
    assert m == 3  # env 1's tail is dropped without a baseline
    expected = _explicit_vpg_gradient(agent.actor, buf, _episodes(with_tail=False), reward_to_go, None)
    torch.testing.assert_close(ghat, expected, rtol=1e-5, atol=1e-6)


def test_vpg_with_a_baseline_subtracts_it_and_bootstraps_the_tail() -> None:
    values = torch.linspace(-1.0, 1.0, 12).reshape(6, 2)
    agent = _vpg(baseline=True, normalize_advantages=False, gamma=GAMMA)
    buf = _vpg_buffer(values)
    ghat, m = _vpg_gradient(agent, buf, torch.tensor([0.0, 1.5]))
    assert m == 4  # the tail is a trajectory of its own, bootstrapped from V(s_T) = 1.5
    episodes = _episodes(with_tail=True, last_value=1.5, bootstrap=0.8)
    expected = _explicit_vpg_gradient(agent.actor, buf, episodes, True, values)
    torch.testing.assert_close(ghat, expected, rtol=1e-5, atol=1e-6)


def test_vpg_update_takes_one_adam_step_along_the_batch_gradient() -> None:
    agent = _vpg(baseline=False, normalize_advantages=False, gamma=GAMMA, learning_rate=1e-3)
    buf = _vpg_buffer()
    ghat, _ = _vpg_gradient(agent, buf, torch.zeros(2))
    before = torch.cat([p.detach().reshape(-1) for p in agent.actor.parameters()])
    agent.update(buf, torch.zeros(2))
    step = torch.cat([p.detach().reshape(-1) for p in agent.actor.parameters()]) - before
    # Adam's first step is lr · m̂/(√v̂ + ε) = lr · g/(|g| + ε): lr·sign(ĝ), ascending
    big = ghat.abs() > 1e-4
    assert big.sum() > 10
    torch.testing.assert_close(step[big], 1e-3 * torch.sign(ghat[big]), rtol=1e-3, atol=1e-7)


def test_vpg_normalised_weights_are_standardised() -> None:
    agent = _vpg(baseline=True, gamma=GAMMA)
    batch = agent.batch(_vpg_buffer(torch.zeros(6, 2)), torch.zeros(2))
    assert batch["weights"].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert batch["weights"].std().item() == pytest.approx(1.0, abs=1e-4)


def test_baseline_regression_reduces_its_loss() -> None:
    torch.manual_seed(0)
    critic = Critic(OBS_DIM, hidden=(16,))
    obs = torch.randn(256, OBS_DIM, generator=torch.Generator().manual_seed(1))
    targets = obs @ torch.tensor([1.0, -2.0, 0.5]) + 3.0
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    stats = fit_baseline(critic, opt, obs, targets, epochs=20, minibatch_size=64,
                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = (critic(obs) - targets).pow(2).mean().item()
    assert stats["value_loss_after"] == pytest.approx(after)
    assert after < 0.1 * stats["value_loss_before"]
    # and inside a VPG update
    agent = _vpg(baseline=True, gamma=GAMMA)
    buf = _vpg_buffer()
    with torch.no_grad():
        buf.values.copy_(agent.critic(buf.obs))
    stats = agent.update(buf, torch.zeros(2))
    assert stats["value_loss_after"] < stats["value_loss_before"]


# --------------------------------------------------------------------------------------- both

@pytest.mark.parametrize("make", [lambda: _reinforce(baseline=True), lambda: _reinforce(baseline=False),
                                  lambda: _vpg(baseline=True), lambda: _vpg(baseline=False)])
def test_state_dict_round_trip_continues_identically(make) -> None:
    agent = make()
    buf = _vpg_buffer()
    last = torch.tensor([0.0, 1.5])
    agent.update(buf, last)
    state = copy.deepcopy(agent.state_dict())
    assert set(state["optimizers"]) == ({"policy", "critic"} if agent.critic is not None else {"policy"})
    clone = make()
    clone.load_state_dict(state)
    agent.update(buf, last)
    clone.update(buf, last)
    modules = [(agent.actor, clone.actor)]
    if agent.critic is not None:
        modules.append((agent.critic, clone.critic))
    for a, b in modules:
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert clone.updates_done == 2


def test_configs_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="learning_rate"):
        ReinforceConfig(learning_rate=0.0)
    with pytest.raises(ConfigError, match="critic_minibatch_size"):
        VPGConfig(critic_minibatch_size=0)
