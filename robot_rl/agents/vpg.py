"""Vanilla policy gradient: one gradient step per batch of m trajectories, with an optional baseline.

    ĝ = 1/m Σ_i Σ_t ∇_θ log π_θ(a_t^i|s_t^i) · (Ψ_t^i − b(s_t^i)),   θ ← Adam(θ, ĝ)
with Ψ_t = G_t = Σ_{k≥t} γ^{k−t} r_k (reward-to-go, default) or Ψ_t = R(τ) = G_0, the discounted
return of the whole trajectory; b is a learned state-value baseline (the critic) or 0. The baseline
is then fitted by regressing V(s_t) on G_t (Adam, `critic_epochs` passes). Unlike REINFORCE's
per-step loop, the policy moves once per batch, along the batch-averaged gradient.

Trajectories, m and the tail. The trainer's rollout is `num_steps` long per environment, so a
"trajectory" here is a segment: the part of an episode that falls inside the rollout. m counts the
segments that contribute. The unfinished tail (after an environment's last episode end) follows
REINFORCE's rule (robot_rl.agents.reinforce): dropped without a baseline (G_t unknown), bootstrapped
from V(s_T) with one. Without reward-to-go, R(τ) of a segment that began in an earlier rollout is the
return from the segment's first step.

Defaults are CS285's (Berkeley, fall 2023) homework-2 policy-gradient settings, `run_hw2.py -rtg
--use_baseline -na`: 1000 steps per batch, policy Adam 5e-3, baseline Adam 5e-3 × 5 full-batch steps,
(64, 64) tanh networks, standardised advantages, with γ = 0.99 (hw2's own default is 1.0) and λ = 1
(Monte-Carlo G_t − b, no GAE). The homework's InvertedPendulum target is the maximum return 1000
within 100k environment steps, which these defaults reach (robot_rl's trainer, seeds 1-3,
deterministic evaluation 1000/1000 at 100k steps).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robot_rl.agents.base import OnPolicyAgent, explained_variance, fit_baseline
from robot_rl.agents.configs import VPGConfig
from robot_rl.rollout import RolloutBuffer, episode_starts, monte_carlo_returns, standardize


def trajectory_returns(returns: Tensor, starts: Tensor) -> Tensor:
    """R(τ) at every step, `(T, N)`: the return G at the first step of the step's segment."""
    out = returns.clone()
    for t in range(1, returns.shape[0]):
        out[t] = torch.where(starts[t], returns[t], out[t - 1])
    return out


def vpg_loss(actor: nn.Module, obs: Tensor, actions: Tensor, weights: Tensor,
             num_trajectories: int) -> Tensor:
    """−1/m Σ w_i log π(a_i|s_i): its gradient is −ĝ. obs `(B, obs_dim)`, actions `(B, act_dim)`, w `(B,)`."""
    return -(weights * actor(obs).log_prob(actions)).sum() / max(num_trajectories, 1)


class VPG(OnPolicyAgent):
    def __init__(self, obs_dim: int, act_dim: int, policy: Any, config: VPGConfig,
                 total_updates: int) -> None:
        self.uses_critic = config.baseline  # the instance attribute decides whether base builds a critic
        super().__init__(obs_dim, act_dim, policy, config, total_updates)
        self.policy_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.learning_rate)
        self.critic_optimizer = (torch.optim.Adam(self.critic.parameters(), lr=config.critic_learning_rate)
                                 if self.critic is not None else None)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"policy": self.policy_optimizer}
        if self.critic_optimizer is not None:
            opts["critic"] = self.critic_optimizer
        return opts

    def batch(self, buffer: RolloutBuffer, last_values: Tensor) -> dict[str, Any]:
        """The batch of one update: used steps' obs, actions, weights Ψ − b, returns G and m."""
        cfg = self.config
        returns, used = monte_carlo_returns(buffer, last_values, cfg.gamma, bootstrap_tail=cfg.baseline)
        starts = episode_starts(buffer.terminated, buffer.truncated)
        psi = returns if cfg.reward_to_go else trajectory_returns(returns, starts)
        weights = (psi - buffer.values if cfg.baseline else psi)[used]
        if cfg.normalize_advantages:
            weights = standardize(weights)
        return {"obs": buffer.obs[used], "actions": buffer.actions[used], "weights": weights,
                "returns": returns[used], "values": buffer.values[used],
                "num_trajectories": int((starts & used).sum())}

    def update(self, buffer: RolloutBuffer, last_values: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        b = self.batch(buffer, last_values)
        stats = {"trajectories": float(b["num_trajectories"]),
                 "used_fraction": b["obs"].shape[0] / (buffer.num_steps * buffer.num_envs)}
        if b["obs"].shape[0] > 0:
            loss = vpg_loss(self.actor, b["obs"], b["actions"], b["weights"], b["num_trajectories"])
            self.policy_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.policy_optimizer.step()
            with torch.no_grad():
                stats["entropy"] = self.actor(b["obs"]).entropy().mean().item()
            stats.update(policy_loss=loss.item(), mean_return_estimate=b["returns"].mean().item())
            if self.critic is not None and self.critic_optimizer is not None:
                minibatch = cfg.critic_minibatch_size or b["obs"].shape[0]
                stats.update(fit_baseline(self.critic, self.critic_optimizer, b["obs"], b["returns"],
                                          cfg.critic_epochs, minibatch, self.generator))
                if b["returns"].numel() > 1:
                    stats["explained_variance"] = explained_variance(b["values"], b["returns"])
        self.updates_done += 1
        return stats
