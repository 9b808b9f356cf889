"""TRPO: the trust-region step on synthetic batches, the CG direction against the explicit Fisher."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.func import functional_call

from robot_rl.agents.trpo import TRPO, TRPOConfig, natural_gradient, surrogate, trpo_step
from robot_rl.conjugate_gradient import flat_grad, flat_params, set_flat_params
from robot_rl.errors import ConfigError
from robot_rl.launch import PolicyConfig
from robot_rl.networks import GaussianActor
from robot_rl.rollout import RolloutBuffer


def _batch(n: int = 256, obs_dim: int = 3, act_dim: int = 2, hidden: tuple[int, ...] = (8,)):
    torch.manual_seed(0)
    actor = GaussianActor(obs_dim, act_dim, hidden=hidden).double()
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(n, obs_dim, generator=g, dtype=torch.float64)
    actions = torch.randn(n, act_dim, generator=g, dtype=torch.float64)
    advantages = torch.randn(n, generator=g, dtype=torch.float64)
    return actor, obs, actions, advantages


def _kl_and_surrogate(old_actor, actor, obs, actions, advantages) -> tuple[float, float, float]:
    """Independently: mean KL(old ‖ new), L(new) and L(old) (= mean Â, the ratio being 1)."""
    with torch.no_grad():
        old, new = old_actor(obs), actor(obs)
        kl = old.kl(new).mean().item()
        ratio = torch.exp(new.log_prob(actions) - old.log_prob(actions))
        return kl, (ratio * advantages).mean().item(), advantages.mean().item()


@pytest.mark.parametrize(("max_kl", "damping"), [(0.01, 0.1), (0.1, 1e-3), (10.0, 0.1)])
def test_accepted_step_keeps_the_kl_bound_and_improves_the_surrogate(max_kl: float, damping: float) -> None:
    actor, obs, actions, advantages = _batch()
    old_actor = copy.deepcopy(actor)
    stats = trpo_step(actor, obs, actions, advantages, max_kl, cg_damping=damping)
    kl, surr_new, surr_old = _kl_and_surrogate(old_actor, actor, obs, actions, advantages)
    assert stats["line_search_success"] == 1.0
    assert 0.0 < kl <= max_kl * (1 + 1e-9)
    assert surr_new > surr_old
    assert stats["kl"] == pytest.approx(kl)
    assert stats["surrogate_improvement"] == pytest.approx(surr_new - surr_old)
    if stats["line_search_steps"] > 1:  # backtracked: the longer step it rejected broke a condition
        theta_old = flat_params(old_actor)
        longer = copy.deepcopy(actor)
        set_flat_params(longer, theta_old + (flat_params(actor) - theta_old) / 0.8)  # the try before
        kl_long, surr_long, _ = _kl_and_surrogate(old_actor, longer, obs, actions, advantages)
        assert kl_long > max_kl or surr_long <= surr_old


def test_backtracking_happens_for_a_trust_region_the_quadratic_model_misjudges() -> None:
    # With little damping, the full step of δ = 0.1 overshoots the exact KL and is shrunk once (f = 0.8).
    actor, obs, actions, advantages = _batch()
    stats = trpo_step(actor, obs, actions, advantages, 0.1, cg_damping=1e-3)
    assert stats["line_search_steps"] >= 2
    assert stats["step_fraction"] == pytest.approx(0.8 ** (stats["line_search_steps"] - 1))


def test_the_step_scales_with_the_square_root_of_delta() -> None:
    # β = sqrt(2δ / sᵀFs): δ 100× smaller → a step 10× shorter, and (quadratic regime) a KL 100× smaller.
    steps, kls = [], []
    for max_kl in (1e-6, 1e-8):
        actor, obs, actions, advantages = _batch()
        old_actor = copy.deepcopy(actor)
        theta = flat_params(actor)
        stats = trpo_step(actor, obs, actions, advantages, max_kl)
        assert stats["line_search_steps"] == 1.0 and stats["line_search_success"] == 1.0
        steps.append((flat_params(actor) - theta).norm().item())
        kl, _, _ = _kl_and_surrogate(old_actor, actor, obs, actions, advantages)
        assert kl <= max_kl
        kls.append(kl)
    assert steps[0] / steps[1] == pytest.approx(10.0, rel=1e-6)
    assert kls[0] / kls[1] == pytest.approx(100.0, rel=1e-3)


def test_zero_advantages_leave_the_parameters_exactly_unchanged() -> None:
    actor, obs, actions, advantages = _batch()
    before = [p.detach().clone() for p in actor.parameters()]
    stats = trpo_step(actor, obs, actions, torch.zeros_like(advantages), 0.01)
    assert stats["line_search_success"] == 0.0 and stats["kl"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, actor.parameters(), strict=True))


def test_a_rejected_line_search_restores_the_old_parameters() -> None:
    # δ = 1000 with a single try: the full step overshoots so far that the surrogate gets worse.
    actor, obs, actions, advantages = _batch()
    before = [p.detach().clone() for p in actor.parameters()]
    stats = trpo_step(actor, obs, actions, advantages, 1000.0, max_iter=1)
    assert stats["line_search_success"] == 0.0
    assert stats["surrogate_improvement"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, actor.parameters(), strict=True))


def test_the_log_std_of_the_old_policy_does_not_move_with_the_parameters() -> None:
    # A state-independent log-std is the parameter itself; the "old" policy must hold a copy, else
    # KL(old ‖ new) would read 0 in the log-std direction. Train only a log-std step and check its KL.
    actor, obs, actions, _ = _batch()
    advantages = (actions.pow(2).sum(-1) - 2.0)  # rewards wide actions: the optimum is to widen σ
    old_actor = copy.deepcopy(actor)
    stats = trpo_step(actor, obs, actions, advantages, 0.01)
    assert (actor.log_std > old_actor.log_std).all()
    kl, _, _ = _kl_and_surrogate(old_actor, actor, obs, actions, advantages)
    assert stats["kl"] == pytest.approx(kl) and kl > 1e-4


def test_cg_direction_solves_the_fisher_system_of_the_explicit_kl_hessian() -> None:
    actor, obs, actions, advantages = _batch(n=32, obs_dim=2, act_dim=1, hidden=(3,))
    with torch.no_grad():
        for p in actor.parameters():  # away from the near-zero output init, so F is not degenerate
            p.add_(0.5 * torch.randn_like(p))
        old = actor(obs).detach()
        old = type(old)(old.mean.clone(), old.log_std.clone())
    params = list(actor.parameters())
    names = [n for n, _ in actor.named_parameters()]
    theta = flat_params(actor)

    def kl_of_flat(flat: torch.Tensor) -> torch.Tensor:
        chunks, offset = {}, 0
        for name, p in zip(names, params, strict=True):
            chunks[name] = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        return old.kl(functional_call(actor, chunks, (obs,))).mean()

    fisher = torch.autograd.functional.hessian(kl_of_flat, theta)
    g = flat_grad(surrogate(actor, obs, actions, old.log_prob(actions), advantages), params)
    damping = 0.1
    assert theta.numel() <= TRPOConfig().cg_max_steps  # CG is exact in dim steps: the default suffices
    s, sfs = natural_gradient(lambda: old.kl(actor(obs)).mean(), params, g, damping,
                              TRPOConfig().cg_max_steps)
    a = fisher + damping * torch.eye(theta.numel(), dtype=torch.float64)
    # CG stops once its squared residual is below 1e-10 (conjugate_gradient's residual_tol)
    assert (a @ s - g).pow(2).sum().item() < 1e-9
    assert g.norm().item() > 0.1  # so that this is a small residual relative to g, too
    # and s is as close to the exact solution as that residual allows: ‖s − s*‖ ≤ ‖r‖ / λ_min(F + δI)
    error = (s - torch.linalg.solve(a, g)).norm().item()
    assert error <= (a @ s - g).norm().item() / torch.linalg.eigvalsh(a).min().item() * (1 + 1e-6)
    assert sfs.item() == pytest.approx((s @ a @ s).item())


def _synthetic_buffer(steps: int = 64, envs: int = 2, obs_dim: int = 3, act_dim: int = 2) -> RolloutBuffer:
    g = torch.Generator().manual_seed(3)
    buf = RolloutBuffer(steps, envs, obs_dim, act_dim)
    buf.obs.copy_(torch.randn(buf.obs.shape, generator=g))
    buf.actions.copy_(torch.randn(buf.actions.shape, generator=g))
    buf.rewards.copy_(buf.actions[..., 0] + buf.obs[..., 1])
    buf.terminated[15, 0] = True
    buf.truncated[40, 1] = True
    buf.bootstrap_values[40, 1] = 0.5
    return buf


def _agent(**overrides) -> TRPO:
    torch.manual_seed(0)
    policy = PolicyConfig(hidden=(16,), critic_hidden=(16,))
    return TRPO(3, 2, policy, TRPOConfig(num_steps=64, **overrides), 10)


def test_agent_update_steps_the_policy_within_the_region_and_fits_the_critic() -> None:
    agent = _agent()
    buf = _synthetic_buffer()
    with torch.no_grad():
        buf.values.copy_(agent.critic(buf.obs))
    old_actor = copy.deepcopy(agent.actor)
    stats = agent.update(buf, torch.zeros(2))
    for key in ("surrogate_improvement", "kl", "line_search_steps", "value_loss", "entropy"):
        assert key in stats
    assert stats["line_search_success"] == 1.0
    with torch.no_grad():
        kl = old_actor(buf.obs.flatten(0, 1)).kl(agent.actor(buf.obs.flatten(0, 1))).mean().item()
    assert 0.0 < kl <= agent.config.max_kl
    assert stats["value_loss_after"] < stats["value_loss_before"]
    assert agent.updates_done == 1


def test_state_dict_round_trip_continues_identically() -> None:
    agent = _agent()
    buf = _synthetic_buffer()
    agent.update(buf, torch.zeros(2))
    state = copy.deepcopy(agent.state_dict())
    assert state["optimizers"]["critic"]["state"]  # Adam moments are saved
    clone = _agent()
    clone.load_state_dict(state)
    for a, b in zip(agent.critic_optimizer.state_dict()["state"].values(),
                    clone.critic_optimizer.state_dict()["state"].values(), strict=True):
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"])
    agent.update(buf, torch.zeros(2))
    clone.update(buf, torch.zeros(2))
    for a, b in zip(agent.actor.parameters(), clone.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(agent.critic.parameters(), clone.critic.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert clone.updates_done == 2


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="max_kl"):
        TRPOConfig(max_kl=0.0)
    with pytest.raises(ConfigError, match="line_search_shrinking_factor"):
        TRPOConfig(line_search_shrinking_factor=1.0)
