"""Rollout-time acting in numpy: the same Gaussian policy as the torch actor, without torch's overhead.

Collecting a rollout calls the actor and the critic once per vector step on a handful of observations;
torch spends tens of microseconds of dispatch on each such call, numpy a few. The networks change only
in `update`, so the trainer snapshots their weights after each update (`refresh`) and samples here;
the update itself recomputes log-probabilities with torch. The formulas are the ones of
`robot_rl.distributions` (tests hold the two equal), so PPO's ratio starts at 1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from robot_rl.distributions import ATANH_EPS
from robot_rl.policies.numpy_mlp import NumpyMLP

if TYPE_CHECKING:
    from robot_rl.networks import ExportedMLP

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class PolicyWeights(NamedTuple):
    """What acting needs of an agent, as numpy arrays: what a rollout worker receives after each update."""

    actor: ExportedMLP
    critic: ExportedMLP | None
    log_std: np.ndarray  # (act_dim,) float32
    squash: bool


def policy_weights(agent: Any) -> PolicyWeights:
    """Snapshot an on-policy agent's actor (mean network, log-std, squashing) and critic."""
    actor = agent.actor
    critic = agent.critic.export_layers() if agent.critic is not None else None
    return PolicyWeights(actor.export_layers(), critic,
                         actor.noise_log_std().detach().numpy().astype(np.float32).copy(), bool(actor.squash))


class NumpyActing:
    """Samples actions, log-probs and values for `(num_envs, obs_dim)` float32 observations.

    `agent` None: no agent in this process (a rollout worker); `load_weights` sets the networks.
    """

    def __init__(self, agent: Any, seed: int) -> None:
        self.agent = agent
        self.rng = np.random.default_rng(seed)
        if agent is not None:
            self.refresh()

    def refresh(self) -> None:
        """Copy the current actor and critic weights (call after every update)."""
        self.load_weights(policy_weights(self.agent))

    def load_weights(self, weights: PolicyWeights) -> None:
        """Act with `weights` from now on."""
        self.actor = NumpyMLP(weights.actor.layers, weights.actor.activation)
        self.critic = (NumpyMLP(weights.critic.layers, weights.critic.activation)
                       if weights.critic is not None else None)
        self.log_std = np.asarray(weights.log_std, dtype=np.float32).copy()
        self.std = np.exp(self.log_std)
        self.squash = bool(weights.squash)
        self._log_norm = float(self.log_std.sum()) + _HALF_LOG_2PI * self.log_std.size

    def act(self, obs: np.ndarray, critic_obs: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions `(N, act_dim)`, log_probs `(N,)`, values `(N,)`), all float32; the values of
        `critic_obs` where the critic sees more than the observation (asymmetric actor-critic)."""
        value_in = obs if critic_obs is None else critic_obs
        mean = self.actor(obs)
        noise = self.rng.standard_normal(mean.shape, dtype=np.float32)
        pre_tanh = mean + self.std * noise
        if not self.squash:
            log_probs = -0.5 * np.square(noise).sum(-1) - self._log_norm
            return pre_tanh, log_probs.astype(np.float32), self.value(value_in)
        actions = np.tanh(pre_tanh)
        bound = 1.0 - ATANH_EPS
        u = np.arctanh(np.clip(actions, -bound, bound))  # as SquashedDiagGaussian.log_prob recovers it
        z = (u - mean) / self.std
        log_det = 2.0 * (_LOG_2 - u - np.logaddexp(0.0, -2.0 * u))
        log_probs = -0.5 * np.square(z).sum(-1) - self._log_norm - log_det.sum(-1)
        return actions, log_probs.astype(np.float32), self.value(value_in)

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) `(N,)`; zeros without a critic."""
        if self.critic is None:
            return np.zeros(obs.shape[0], dtype=np.float32)
        return self.critic(obs)[:, 0]

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
