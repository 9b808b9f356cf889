"""Proximal Policy Optimization (Schulman et al., 2017), as the course presents it.

The surrogate objective L(θ) = E[r_t(θ) Â_t], r_t = π_θ(a_t|s_t) / π_θold(a_t|s_t), is maximised
within a trust region in one of two ways:
  clip:       L^CLIP = E[min(r_t Â_t, clip(r_t, 1−ε, 1+ε) Â_t)]
  kl_penalty: L^KLPEN = E[r_t Â_t − β KL(π_θold ‖ π_θ)], β doubled when KL > 1.5·d_targ and halved
              when KL < d_targ/1.5 ("from constraint to penalty").
plus a value loss (optionally clipped around the old values), an entropy bonus κ·H[π], minibatch
epochs, gradient-norm clipping, early stopping on an approximate KL, and learning-rate annealing.
Defaults are the original paper's MuJoCo settings (as CleanRL's ppo_continuous_action).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from robot_rl.agents.base import OnPolicyAgent, explained_variance
from robot_rl.agents.configs import PPOConfig
from robot_rl.networks import flatten_optimizer_state, flatten_parameters
from robot_rl.rollout import RolloutBuffer


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip_range: float) -> torch.Tensor:
    """−L^CLIP: the loss to minimise. Its gradient is zero where the clip is the active branch."""
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * advantages
    return -torch.min(unclipped, clipped).mean()


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               clip_range: float | None) -> torch.Tensor:
    """½(V − R)², or with clipping ½ max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²)."""
    loss = (values - returns).pow(2)
    if clip_range is not None:
        clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
        loss = torch.max(loss, (clipped - returns).pow(2))
    return 0.5 * loss.mean()


def adapt_kl_beta(beta: float, kl: float, target: float) -> float:
    """The course's β schedule: double when the KL overshoots 1.5·target, halve when under target/1.5."""
    if kl > 1.5 * target:
        return beta * 2.0
    if kl < target / 1.5:
        return beta / 2.0
    return beta


STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac")
"""The per-minibatch statistics, in the order `update` stacks them."""


class PPOMinibatch(NamedTuple):
    """One minibatch of flattened rollout samples `(B, ...)`; the old policy's Gaussian only for the
    KL-penalty objective."""

    obs: Tensor
    actions: Tensor
    old_log_probs: Tensor
    old_values: Tensor
    advantages: Tensor
    returns: Tensor
    old_mean: Tensor | None = None
    old_log_std: Tensor | None = None
    critic_obs: Tensor | None = None
    """The critic's input where it differs from `obs` (asymmetric actor-critic)."""


class PPO(OnPolicyAgent):
    def __init__(self, obs_dim: int, act_dim: int, policy: Any, config: PPOConfig,
                 total_updates: int, critic_obs_dim: int | None = None) -> None:
        super().__init__(obs_dim, act_dim, policy, config, total_updates, critic_obs_dim)
        # all parameters as views of one flat tensor, and fused Adam over it: one kernel per step
        assert self.critic is not None  # PPO uses a critic (uses_critic)
        self.value_net: nn.Module = self.critic
        self.flat_params = flatten_parameters(list(self.actor.parameters()) + list(self.critic.parameters()))
        assert self.flat_params.grad is not None  # set by flatten_parameters: the gradients' views
        self.flat_grad: Tensor = self.flat_params.grad
        self.optimizer = torch.optim.Adam([self.flat_params], lr=config.learning_rate, eps=1e-5, fused=True)
        self.kl_beta = config.kl_beta

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.optimizer}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Also loads checkpoints written before the parameters were flattened (per-tensor Adam)."""
        optimizers = {**state["optimizers"], "adam": flatten_optimizer_state(state["optimizers"]["adam"])}
        super().load_state_dict({**state, "optimizers": optimizers})

    def extra_state(self) -> dict[str, Any]:
        return {"kl_beta": self.kl_beta}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.kl_beta = float(state.get("kl_beta", self.config.kl_beta))

    def update(self, buffer: RolloutBuffer, last_values: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        buffer.compute_returns(last_values, cfg.gamma, cfg.gae_lambda)
        advantages, returns = buffer.advantages, buffer.returns
        obs, actions = buffer.obs.flatten(0, 1), buffer.actions.flatten(0, 1)
        old_log_probs, old_values = buffer.log_probs.flatten(0, 1), buffer.values.flatten(0, 1)
        advantages, returns = advantages.flatten(), returns.flatten()
        if cfg.anneal_lr:
            self.optimizer.param_groups[0]["lr"] = cfg.learning_rate * self.learning_rate_fraction()
        if cfg.objective == "kl_penalty":
            with torch.no_grad():
                old_dist = self.actor(obs)
                old_mean = old_dist.mean.clone()
                old_log_std = old_dist.log_std.expand_as(old_mean).clone()

        batch = obs.shape[0]
        n_minibatches = max(1, batch // cfg.minibatch_size)
        names = list(PPOMinibatch._fields[:6])
        columns = [obs, actions, old_log_probs, old_values, advantages, returns]
        if cfg.objective == "kl_penalty":
            names += ["old_mean", "old_log_std"]
            columns += [old_mean, old_log_std]
        critic_obs = buffer.critic_obs()
        if critic_obs is not None:
            names.append("critic_obs")
            columns.append(critic_obs.flatten(0, 1))
        per_step: list[Tensor] = []  # STATS each
        stopped_early = False
        for _ in range(cfg.epochs):
            # one gather per tensor and epoch; the minibatches are then contiguous row slices
            order = torch.randperm(batch, generator=self.generator)
            shuffled = [c[order] for c in columns]
            bounds = [len(part) for part in torch.tensor_split(order, n_minibatches)]
            for parts in zip(*(c.split(bounds) for c in shuffled), strict=True):
                mb = PPOMinibatch(**dict(zip(names, parts, strict=True)))
                adv = mb.advantages
                dist = self.actor(mb.obs)
                log_ratio = dist.log_prob(mb.actions) - mb.old_log_probs
                ratio = log_ratio.exp()
                if cfg.normalize_advantages and len(adv) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                if cfg.objective == "clip":
                    pg_loss = clipped_surrogate(ratio, adv, cfg.clip_range)
                else:
                    old = type(dist)(mb.old_mean, mb.old_log_std)
                    pg_loss = -(ratio * adv).mean() + self.kl_beta * old.kl(dist).mean()
                v_in = mb.obs if mb.critic_obs is None else mb.critic_obs
                v_loss = value_loss(self.value_net(v_in), mb.old_values, mb.returns,
                                    cfg.clip_range if cfg.clip_value_loss else None)
                entropy = dist.entropy().mean()
                loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
                self.flat_grad.zero_()  # the parameters' gradients are views of it
                loss.backward()
                nn.utils.clip_grad_norm_(self.flat_params, cfg.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():  # k3 estimator of KL(old ‖ new), low variance and ≥ 0
                    approx_kl = ((ratio - 1) - log_ratio).mean()
                    clip_frac = ((ratio - 1).abs() > cfg.clip_range).float().mean()
                    per_step.append(torch.stack((pg_loss.detach(), v_loss.detach(), entropy.detach(),
                                                 approx_kl, clip_frac)))
            if cfg.target_kl is not None and per_step[-1][STATS.index("approx_kl")].item() > cfg.target_kl:
                stopped_early = True
                break
        means = torch.stack(per_step).mean(0).tolist()  # one synchronisation for all the statistics
        stats = dict(zip(STATS, means, strict=True))
        if cfg.objective == "kl_penalty":
            with torch.no_grad():
                kl = old_dist.kl(self.actor(obs)).mean().item()
            self.kl_beta = adapt_kl_beta(self.kl_beta, kl, cfg.kl_target)
            stats.update(kl=kl, kl_beta=self.kl_beta)
        self.updates_done += 1
        stats.update(learning_rate=self.optimizer.param_groups[0]["lr"], stopped_early=float(stopped_early),
                     explained_variance=explained_variance(old_values, returns))
        return stats
