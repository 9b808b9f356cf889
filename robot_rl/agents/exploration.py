"""How DQN acts: ε-greedy over the Q-network (in numpy between updates), the greedy policy of a
deployment, and the schedules of ε and of prioritized replay's β over the run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_rl.agents.configs import DQNConfig
from robot_rl.agents.q_networks import QNetwork

if TYPE_CHECKING:
    from robot_rl.agents.dqn import DQN


def epsilon_at(step: int, config: DQNConfig, total_steps: int) -> float:
    """ε after `step` environment steps of `total_steps`."""
    horizon = config.exploration_fraction * total_steps
    progress = min(1.0, step / horizon) if horizon > 0 else 1.0
    start, end = config.epsilon_start, config.epsilon_end
    if config.epsilon_schedule == "linear":
        return start + progress * (end - start)
    return start * (end / start) ** progress if start > 0 else 0.0


def beta_at(step: int, config: DQNConfig, total_steps: int) -> float:
    """Prioritized replay's importance exponent β, annealed linearly from β_start to 1."""
    progress = min(1.0, step / max(1, total_steps))
    return config.priority_beta_start + progress * (1.0 - config.priority_beta_start)


# --------------------------------------------------------------------------------------------------
# Targets, losses and target-network updates


class EpsilonGreedy:
    """ε-greedy actions for `(num_envs, obs_dim)` observations, computed in numpy for an MLP.

    The Q-network changes only in `update`, so its weights are snapshotted (`refresh`) and the
    argmax computed with numpy: a few µs per step where a torch forward costs tens. A CNN runs in
    torch. Q-values are computed only for the environments that act greedily.
    """

    q: Callable[[np.ndarray], np.ndarray]
    """Q-values `(n, num_actions)` for observations `(n, obs_dim)`, of the last `refresh`."""

    def __init__(self, agent: DQN, seed: int) -> None:
        self.agent = agent
        self.rng = np.random.default_rng(seed)
        self.refresh()

    def refresh(self) -> None:
        """Copy the online network's weights (call after every update)."""
        from robot_rl.policies.numpy_mlp import NumpyMLP

        net = self.agent.q_net
        if isinstance(net, QNetwork):
            exported = net.export_layers()
            self.q = NumpyMLP(exported.layers, exported.activation)
        else:
            self.q = lambda obs: self.agent.q_values(obs).numpy()

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """argmax_a Q(s, a) `(n,)` int64 for observations `(n, obs_dim)`."""
        return np.asarray(np.argmax(self.q(obs), axis=1))

    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """With probability ε a uniformly random action, else the greedy one: `(n,)` int64."""
        n = int(obs.shape[0])
        explore = self.rng.random(n) < epsilon
        actions = self.rng.integers(0, self.agent.num_actions, size=n)
        if not explore.all():
            keep = ~explore
            actions[keep] = self.greedy(obs[keep])
        return actions

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def greedy_policy(q: Callable[[np.ndarray], np.ndarray], normalize: Callable[[np.ndarray], np.ndarray]
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """raw observation `(obs_dim,)` → greedy action index (0-d int64), as a deployment runs it."""

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.asarray(np.argmax(q(normalize(np.asarray(obs)[None]))[0]))

    return policy
