"""What every on-policy agent shares: the actor, the critic, acting, and saving.

An algorithm file (ppo.py, trpo.py, reinforce.py, vpg.py) subclasses `OnPolicyAgent` and writes only
what is its own: its config, its optimisers and `update(buffer, last_values)`. The trainer owns the
environment, the normalisers, the rollout buffer and the logs; the agent never sees raw observations,
only normalised ones, and returns actions in the policy's normalised space ([-1, 1] nominal).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robot_rl.launch import PolicyConfig
from robot_rl.networks import Critic, GaussianActor
from robot_rl.rollout import RolloutBuffer


class OnPolicyAgent:
    """Actor (diagonal Gaussian) and optional critic. Subclasses implement `update`."""

    uses_critic: bool = True

    def __init__(self, obs_dim: int, act_dim: int, policy: PolicyConfig, config: Any,
                 total_updates: int, critic_obs_dim: int | None = None) -> None:
        """`critic_obs_dim`: the critic's input width when it sees more than the observation (asymmetric
        actor-critic: the observation, then the privileged terms); default `obs_dim`."""
        self.config = config
        self.total_updates = max(1, total_updates)
        self.actor = GaussianActor(obs_dim, act_dim, hidden=policy.hidden, activation=policy.activation,
                                   log_std_init=policy.log_std_init, squash=policy.squash,
                                   ortho_init=policy.ortho_init, log_std_min=policy.log_std_min)
        critic_in = obs_dim if critic_obs_dim is None else critic_obs_dim
        self.critic = (Critic(critic_in, hidden=policy.critic_hidden, activation=policy.activation,
                              ortho_init=policy.ortho_init)
                       if self.uses_critic else None)
        self.updates_done = 0
        self.generator = torch.Generator().manual_seed(0)
        """Shuffles minibatches; seeded by the trainer and saved in checkpoints."""

    @property
    def num_steps(self) -> int:
        """Rollout length per environment between updates."""
        return int(self.config.num_steps)

    @torch.inference_mode()
    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions for `(num_envs, obs_dim)` observations: (actions, log_probs, values)."""
        dist = self.actor(obs)
        actions = dist.sample()
        values = self.critic(obs) if self.critic is not None else torch.zeros(obs.shape[0])
        return actions, dist.log_prob(actions), values

    @torch.inference_mode()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs), `(batch,)`; zeros for an agent without a critic."""
        if self.critic is None:
            return torch.zeros(obs.shape[0])
        return self.critic(obs)

    @torch.inference_mode()
    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The action a deployed policy takes: the Gaussian mean (squashed if trained so)."""
        return self.actor.act(obs, deterministic=True)

    def update(self, buffer: RolloutBuffer, last_values: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def parameters_finite(self) -> bool:
        modules = [self.actor] + ([self.critic] if self.critic is not None else [])
        return all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers, saved and restored with the agent."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Algorithm state beyond networks and optimisers (e.g. PPO's adaptive KL coefficient)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict() if self.critic is not None else None,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "updates_done": self.updates_done,
            "generator": self.generator.get_state(),
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        self.updates_done = int(state["updates_done"])
        if "generator" in state:
            self.generator.set_state(state["generator"])
        self.load_extra_state(state.get("extra", {}))

    def learning_rate_fraction(self) -> float:
        """1 → 0 linearly over training, for learning-rate annealing."""
        return max(0.0, 1.0 - self.updates_done / self.total_updates)


def fit_baseline(critic: nn.Module, optimizer: torch.optim.Optimizer, obs: Tensor, targets: Tensor,
                 epochs: int, minibatch_size: int, generator: torch.Generator) -> dict[str, float]:
    """Regress V(s) on `targets` `(B,)` for obs `(B, obs_dim)`: Adam on the mean squared error.

    Returns the mean minibatch loss over the fit (`value_loss`) and the full-batch loss before and
    after it (`value_loss_before`, `value_loss_after`): the "before" figure is the baseline's error on
    returns it has not been trained on.
    """
    with torch.no_grad():
        before = (critic(obs) - targets).pow(2).mean().item()
    total, n = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(obs.shape[0], generator=generator)
        for idx in torch.tensor_split(order, max(1, obs.shape[0] // minibatch_size)):
            loss = (critic(obs[idx]) - targets[idx]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            n += 1
    with torch.no_grad():
        after = (critic(obs) - targets).pow(2).mean().item()
    return {"value_loss": total / max(n, 1), "value_loss_before": before, "value_loss_after": after}


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 − Var[target − predicted] / Var[target]: 1 is a perfect critic, ≤ 0 is no better than a mean."""
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - predicted).var() / var)
