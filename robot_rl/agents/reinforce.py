"""REINFORCE (Williams 1992), as the course presents it: Monte-Carlo returns, one update per step.

For every step of every episode, in order:
    θ ← θ + α · A_t · ∇_θ log π_θ(a_t|s_t),   A_t = G_t            (no baseline)
                                              A_t = G_t − b(s_t)   (learned baseline)
with G_t = r_t + γ r_{t+1} + … the discounted return from t to the episode's end. Each step is its own
plain SGD step (batch of one), so the policy moves between the steps of an episode, as in the
textbook's per-step loop. The baseline b is the critic, fitted after the policy steps by regressing
V(s_t) on G_t (Adam, minibatch epochs); A_t uses the baseline that was in force when the data was
collected (`buffer.values`), never one fitted on the same returns.

The γ^t factor. Sutton & Barto's episodic REINFORCE multiplies step t's update by γ^t (t counted from
the episode's start). With γ = 0.99 and 1000-step episodes that factor is 4e-5 by the end, so the
late part of an episode barely trains; almost every practical implementation drops it (a biased but
better-behaved estimator, Thomas 2014). `discount_weighting: false` (default) drops it; `true` keeps
it, with t counted from the episode's start by a per-environment counter that the agent carries
across rollouts. The counter is not checkpointed: the trainer resets the environments when it
(re)starts, and the counter restarts at 0 with them.

The unfinished tail. The trainer's rollouts are `num_steps` long per environment and an episode can
straddle two of them. Steps up to an environment's last episode end inside the rollout have a known
G_t (an episode begun in an earlier rollout contributes the part that falls in this one). For the
steps after it (the "tail", whose episode is still running):
  - without a baseline, G_t is unknown and those steps are dropped: they are not used for any update
    (their episode's later part is used in the next rollout). Set `num_steps` several episode lengths
    long so that little is dropped;
  - with a baseline, G_t bootstraps from it: G_t = r_t + … + γ^k V(s_T), s_T the observation after
    the rollout's last step (the trainer's `last_values`), i.e. an n-step return.
A time-limit truncation is a finished episode: without a baseline its return is the sum up to the
limit; with one, it bootstraps from V(final observation) (`buffer.bootstrap_values`).

Defaults. There is no field-standard benchmark of the per-step textbook REINFORCE, so the defaults
are tuned here on InvertedPendulum-v5 (launch/invertedpendulum_reinforce.yaml): α = 1e-4 plain SGD,
2000-step rollouts, a baseline fitted by Adam 1e-3 × 10 epochs of 64, standardised advantages. They
reach the maximum deterministic evaluation return (1000) within 100k steps for seeds 1-3.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robot_rl.agents.base import OnPolicyAgent, explained_variance, fit_baseline
from robot_rl.agents.configs import ReinforceConfig
from robot_rl.rollout import RolloutBuffer, episode_time, monte_carlo_returns, standardize


def per_step_updates(actor: nn.Module, optimizer: torch.optim.Optimizer, obs: Tensor, actions: Tensor,
                     weights: Tensor, max_grad_norm: float | None = None) -> None:
    """For i = 0, 1, …: one optimizer step on −w_i log π(a_i|s_i) (with SGD: θ ← θ + α w_i ∇log π).

    obs `(B, obs_dim)`, actions `(B, act_dim)`, weights `(B,)`, used in this order.
    """
    for i in range(obs.shape[0]):
        log_prob = actor(obs[i:i + 1]).log_prob(actions[i:i + 1])
        loss = -(weights[i] * log_prob).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(actor.parameters(), max_grad_norm)
        optimizer.step()


class Reinforce(OnPolicyAgent):
    def __init__(self, obs_dim: int, act_dim: int, policy: Any, config: ReinforceConfig,
                 total_updates: int) -> None:
        self.uses_critic = config.baseline  # the instance attribute decides whether base builds a critic
        super().__init__(obs_dim, act_dim, policy, config, total_updates)
        self.policy_optimizer = torch.optim.SGD(self.actor.parameters(), lr=config.learning_rate)
        self.critic_optimizer = (torch.optim.Adam(self.critic.parameters(), lr=config.critic_learning_rate,
                                                  eps=1e-5) if self.critic is not None else None)
        self._episode_step: Tensor | None = None  # (N,) steps taken in each env's running episode

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"policy": self.policy_optimizer}
        if self.critic_optimizer is not None:
            opts["critic"] = self.critic_optimizer
        return opts

    def update(self, buffer: RolloutBuffer, last_values: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        returns, used = monte_carlo_returns(buffer, last_values, cfg.gamma, bootstrap_tail=cfg.baseline)
        advantages = returns - buffer.values if cfg.baseline else returns.clone()
        if self._episode_step is None or self._episode_step.shape[0] != buffer.num_envs:
            self._episode_step = torch.zeros(buffer.num_envs, dtype=torch.long)
        t_index, self._episode_step = episode_time(buffer.terminated, buffer.truncated, self._episode_step)
        # env by env, each in time order: the order the textbook loop visits the steps
        order = used.T.reshape(-1)
        obs = buffer.obs.transpose(0, 1).reshape(-1, buffer.obs.shape[-1])[order]
        actions = buffer.actions.transpose(0, 1).reshape(-1, buffer.actions.shape[-1])[order]
        weights = advantages.T.reshape(-1)[order]
        if cfg.normalize_advantages:
            weights = standardize(weights)
        if cfg.discount_weighting:
            weights = weights * cfg.gamma ** t_index.T.reshape(-1)[order].to(weights.dtype)
        stats: dict[str, float] = {"used_fraction": float(used.float().mean()),
                                   "policy_updates": float(obs.shape[0])}
        if obs.shape[0] > 0:
            with torch.no_grad():
                dist = self.actor(obs)
                stats["policy_loss"] = -(weights * dist.log_prob(actions)).mean().item()
                stats["entropy"] = dist.entropy().mean().item()
            per_step_updates(self.actor, self.policy_optimizer, obs, actions, weights, cfg.max_grad_norm)
            targets = returns.T.reshape(-1)[order]
            stats["mean_return_estimate"] = targets.mean().item()
            if self.critic is not None and self.critic_optimizer is not None:
                stats.update(fit_baseline(self.critic, self.critic_optimizer, obs, targets, cfg.critic_epochs,
                                          cfg.critic_minibatch_size, self.generator))
                if targets.numel() > 1:
                    stats["explained_variance"] = explained_variance(buffer.values.T.reshape(-1)[order],
                                                                     targets)
        self.updates_done += 1
        return stats
