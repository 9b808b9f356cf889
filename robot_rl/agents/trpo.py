"""Trust Region Policy Optimization (Schulman et al. 2015), as the course presents it.

    maximise  L(θ) = E[π_θ(a|s) / π_θold(a|s) · Â]   subject to   E_s[KL(π_θold(·|s) ‖ π_θ(·|s))] ≤ δ

1. Â by GAE(λ) over the rollout, standardised; old log-probs from the actor before the step.
2. g = ∇_θ L at θ_old (where the ratio is 1, so g is the policy gradient).
3. s ≈ F⁻¹ g by conjugate gradient, with Fisher-vector products F v = ∇²KL · v + damping · v
   (robot_rl.conjugate_gradient); F is never formed.
4. The full step β s with β = sqrt(2δ / sᵀF s): the step that makes the quadratic model of the KL,
   ½ (βs)ᵀ F (βs), equal δ (F here includes the damping, which only shortens the step).
5. Backtracking line search on θ_old + f^i β s, i = 0 … max_iter − 1, f the shrinking factor: the first
   step whose exact mean KL(old ‖ new) ≤ δ and whose surrogate L improves on L(θ_old) is kept. If none
   is, θ_old is restored and the update reports `line_search_success = 0`.
6. The critic (not part of the trust region) is fitted to the GAE returns by Adam, several epochs of
   minibatches.

Defaults are the RL Baselines3 Zoo's tuned TRPO settings for the MuJoCo tasks (hyperparams/trpo.yml,
`&mujoco-defaults`: n_steps 1024, batch_size 128, cg_max_steps 25, cg_damping 0.1, n_critic_updates 20,
learning_rate 1e-3, γ 0.99, λ 0.95, with sb3-contrib's defaults target_kl 0.01, line-search shrinking
factor 0.8 × 10 tries), with which the Zoo's benchmark reports its Hopper/Walker2d/HalfCheetah/Ant
results. The Zoo runs them with 2 environments and observation + reward normalisation; sb3-contrib's
own class defaults differ (n_steps 2048, cg_max_steps 15, n_critic_updates 10).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from robot_rl.agents.base import OnPolicyAgent, explained_variance, fit_baseline
from robot_rl.agents.configs import TRPOConfig
from robot_rl.conjugate_gradient import (
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    flat_params,
    set_flat_params,
)
from robot_rl.rollout import RolloutBuffer, compute_gae, standardize


def surrogate(actor: nn.Module, obs: Tensor, actions: Tensor, old_log_probs: Tensor,
              advantages: Tensor) -> Tensor:
    """L(θ) = mean of π_θ(a|s)/π_old(a|s) · Â over the batch (a scalar)."""
    return (torch.exp(actor(obs).log_prob(actions) - old_log_probs) * advantages).mean()


def natural_gradient(kl_fn: Any, params: list[Tensor], g: Tensor, damping: float,
                     iterations: int) -> tuple[Tensor, Tensor]:
    """(s, sᵀ(F + damping·I)s): CG's approximate solution of (F + damping·I) s = g, F = ∇²KL at θ_old."""
    fvp = fisher_vector_product(kl_fn, params, damping)
    direction = conjugate_gradient(fvp, g, iterations)
    return direction, torch.dot(direction, fvp(direction))


def trpo_step(actor: nn.Module, obs: Tensor, actions: Tensor, advantages: Tensor, max_kl: float,
              cg_max_steps: int = 25, cg_damping: float = 0.1, shrinking_factor: float = 0.8,
              max_iter: int = 10) -> dict[str, float]:
    """One trust-region policy step on a batch (obs `(B, obs_dim)`, actions `(B, act_dim)`, Â `(B,)`).

    Changes `actor`'s parameters in place (or leaves them exactly as they were if no step is
    accepted) and returns the step's metrics.
    """
    params: list[Tensor] = list(actor.parameters())
    with torch.no_grad():
        dist = actor(obs)
        # cloned: a detached log_std would still share storage with the parameter we are about to move
        old = type(dist)(dist.mean.clone(), dist.log_std.clone())
        old_log_probs = old.log_prob(actions)
    theta_old = flat_params(params)
    surrogate_old = surrogate(actor, obs, actions, old_log_probs, advantages)
    g = flat_grad(surrogate_old, params)
    direction, sfs = natural_gradient(lambda: old.kl(actor(obs)).mean(), params, g, cg_damping,
                                      cg_max_steps)
    stats = {"surrogate_improvement": 0.0, "kl": 0.0, "line_search_steps": float(max_iter),
             "line_search_success": 0.0, "step_fraction": 0.0, "entropy": old.entropy().mean().item(),
             "grad_norm": g.norm().item()}
    if not (math.isfinite(sfs.item()) and sfs.item() > 0):  # zero gradient: there is nowhere to go
        stats["line_search_steps"] = 0.0
        return stats
    full_step = math.sqrt(2.0 * max_kl / sfs.item()) * direction
    with torch.no_grad():
        for i in range(max_iter):
            fraction = shrinking_factor ** i
            set_flat_params(params, theta_old + fraction * full_step)
            new = actor(obs)
            kl = old.kl(new).mean().item()
            improvement = ((torch.exp(new.log_prob(actions) - old_log_probs) * advantages).mean()
                           - surrogate_old).item()
            if kl <= max_kl and improvement > 0:
                stats.update(surrogate_improvement=improvement, kl=kl, line_search_steps=float(i + 1),
                             line_search_success=1.0, step_fraction=fraction)
                return stats
        set_flat_params(params, theta_old)
    return stats


class TRPO(OnPolicyAgent):
    def __init__(self, obs_dim: int, act_dim: int, policy: Any, config: TRPOConfig,
                 total_updates: int, critic_obs_dim: int | None = None) -> None:
        super().__init__(obs_dim, act_dim, policy, config, total_updates, critic_obs_dim)
        assert self.critic is not None  # TRPO fits a value baseline (uses_critic)
        self.value_net: nn.Module = self.critic
        self.critic_optimizer = torch.optim.Adam(self.value_net.parameters(), lr=config.critic_learning_rate,
                                                 eps=1e-5)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.critic_optimizer}

    def update(self, buffer: RolloutBuffer, last_values: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        advantages, returns = compute_gae(buffer.rewards, buffer.values, buffer.terminated,
                                          buffer.truncated, buffer.bootstrap_values, last_values,
                                          cfg.gamma, cfg.gae_lambda)
        obs, actions = buffer.obs.flatten(0, 1), buffer.actions.flatten(0, 1)
        advantages, returns = advantages.flatten(), returns.flatten()
        if cfg.normalize_advantages:
            advantages = standardize(advantages)
        stats = trpo_step(self.actor, obs, actions, advantages, cfg.max_kl, cfg.cg_max_steps,
                          cfg.cg_damping, cfg.line_search_shrinking_factor, cfg.line_search_max_iter)
        critic_obs = buffer.critic_obs()
        critic_in = obs if critic_obs is None else critic_obs.flatten(0, 1)
        stats.update(fit_baseline(self.value_net, self.critic_optimizer, critic_in, returns,
                                  cfg.n_critic_updates, cfg.critic_minibatch_size, self.generator))
        stats["explained_variance"] = explained_variance(buffer.values.flatten(), returns)
        self.updates_done += 1
        return stats
