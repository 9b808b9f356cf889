"""Experience replay: preallocated ring buffers of transitions, sampled uniformly or by priority.

A transition is (s, a, r, s', terminated, truncated). `terminated` and `truncated` are stored apart
because they mean different things for the TD target: at termination the future is worth 0 (the
bootstrap is cut); at a time-limit truncation the state s' is an ordinary state, so the target still
bootstraps from it. s' is always the *real* next observation: with a SAME_STEP-autoreset vector env
the trainer stores `info["final_obs"][i]`, not the next episode's first observation.

Arrays are allocated once, `(capacity, ...)`; `add` writes a vector step of n transitions with one
fancy-indexed assignment per array, wrapping around the end (the oldest transitions are overwritten).
Observations are stored as float32, or uint8 for pixels, whatever the env hands over.

`PrioritizedReplayBuffer` is proportional prioritized replay (Schaul et al., 2016): P(i) = p_i^α /
Σ_k p_k^α with p_i = |δ_i| + ε, kept in a sum tree so that sampling and updating cost O(log N) per
transition (vectorised over the batch); new transitions get the largest priority seen so far, so each
is replayed at least about once. Importance weights w_i = (N·P(i))^−β, divided by the batch's largest,
correct the bias; β is annealed towards 1 by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Batch:
    """Sampled transitions; leading axis `(batch,)`."""

    obs: np.ndarray
    """`(batch, *obs_shape)`, the storage dtype."""
    actions: np.ndarray
    """`(batch,)` int64 action indices."""
    rewards: np.ndarray
    """`(batch,)` float32."""
    next_obs: np.ndarray
    """`(batch, *obs_shape)`: the real next observation, also after a truncation."""
    terminated: np.ndarray
    """`(batch,)` bool: the bootstrap is cut."""
    truncated: np.ndarray
    """`(batch,)` bool: the episode was cut by a time limit (the target still bootstraps)."""
    indices: np.ndarray
    """`(batch,)` int64 positions in the buffer (for priority updates)."""
    weights: np.ndarray | None = None
    """`(batch,)` float32 importance weights (prioritized replay), None for uniform sampling."""


class ReplayBuffer:
    """Uniform experience replay over the last `capacity` transitions."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: Any = np.float32,
                 seed: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs_shape = tuple(obs_shape)
        self.obs = np.zeros((self.capacity, *self.obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=bool)
        self.truncated = np.zeros(self.capacity, dtype=bool)
        self.pos = 0
        """Where the next transition goes."""
        self.size = 0
        """Transitions stored (≤ capacity)."""
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """Store n transitions (one vector step: `obs` `(n, *obs_shape)`, the rest `(n,)`).

        Returns the positions written, `(n,)`. More than `capacity` at once keeps the last ones.
        """
        actions = np.asarray(actions).reshape(-1)
        n = actions.shape[0]
        first = max(0, n - self.capacity)
        idx = (self.pos + np.arange(first, n)) % self.capacity
        self.obs[idx] = np.asarray(obs).reshape(n, *self.obs_shape)[first:]
        self.next_obs[idx] = np.asarray(next_obs).reshape(n, *self.obs_shape)[first:]
        self.actions[idx] = actions[first:]
        self.rewards[idx] = np.asarray(rewards).reshape(-1)[first:]
        self.terminated[idx] = np.asarray(terminated).reshape(-1)[first:]
        self.truncated[idx] = np.asarray(truncated).reshape(-1)[first:]
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)
        self._written(idx)
        return idx

    def _written(self, idx: np.ndarray) -> None:
        """Hook for subclasses: positions just (over)written."""

    def sample(self, batch_size: int) -> Batch:
        """`batch_size` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.get(self.rng.integers(0, self.size, size=batch_size))

    def get(self, indices: np.ndarray) -> Batch:
        """The transitions at `indices` (copies)."""
        i = np.asarray(indices, dtype=np.int64)
        return Batch(self.obs[i], self.actions[i], self.rewards[i], self.next_obs[i], self.terminated[i],
                     self.truncated[i], i)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The stored part as plain arrays, and the position, size and RNG state."""
        n = self.size
        return {"obs": self.obs[:n].copy(), "next_obs": self.next_obs[:n].copy(),
                "actions": self.actions[:n].copy(), "rewards": self.rewards[:n].copy(),
                "terminated": self.terminated[:n].copy(), "truncated": self.truncated[:n].copy(),
                "pos": self.pos, "size": n, "capacity": self.capacity, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = int(state["size"])
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay state has capacity {state['capacity']}, this buffer {self.capacity}")
        for key in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated"):
            getattr(self, key)[:n] = np.asarray(state[key])
        self.pos, self.size = int(state["pos"]), n
        self.rng.bit_generator.state = state["rng"]
        self._written(np.arange(n))


class SumTree:
    """A binary tree whose leaves hold non-negative values and whose nodes hold their children's sum.

    Leaves live at `[leaves, 2·leaves)` of one float64 array (`leaves` = capacity rounded up to a power
    of two; the root is node 1). `update` and `find` take whole batches: the tree is walked one level
    at a time for every element at once.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.leaves = 1 << max(0, (self.capacity - 1).bit_length())
        self.depth = self.leaves.bit_length() - 1
        self.tree = np.zeros(2 * self.leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def values(self, indices: np.ndarray) -> np.ndarray:
        return self.tree[self.leaves + np.asarray(indices, dtype=np.int64)]

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaves `indices` to `values` and recompute their ancestors (later duplicates win)."""
        nodes = self.leaves + np.asarray(indices, dtype=np.int64)
        self.tree[nodes] = values
        for _ in range(self.depth):
            nodes = np.unique(nodes >> 1)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]

    def find(self, prefix: np.ndarray) -> np.ndarray:
        """Leaf i with Σ_{k<i} v_k ≤ prefix < Σ_{k≤i} v_k for each prefix in [0, total)."""
        value = np.array(prefix, dtype=np.float64)
        nodes = np.ones(value.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = self.tree[2 * nodes]
            right = value >= left
            value -= np.where(right, left, 0.0)
            nodes = 2 * nodes + right
        return nodes - self.leaves


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay: P(i) ∝ (|δ_i| + ε)^α, importance weights (N·P(i))^−β."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: Any = np.float32,
                 seed: int | None = None, alpha: float = 0.6, eps: float = 1e-6) -> None:
        super().__init__(capacity, obs_shape, obs_dtype, seed)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.tree = SumTree(self.capacity)
        self.max_priority = 1.0
        """Largest p_i = |δ| + ε seen (before the exponent α); new transitions get it."""

    def _written(self, idx: np.ndarray) -> None:
        self.tree.update(idx, np.full(len(idx), self.max_priority ** self.alpha))

    def sample(self, batch_size: int, beta: float = 0.4) -> Batch:
        """Stratified: one draw from each of `batch_size` equal slices of the priority mass."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        total = self.tree.total
        bounds = np.linspace(0.0, total, batch_size + 1)
        prefix = self.rng.uniform(bounds[:-1], bounds[1:])
        idx = np.minimum(self.tree.find(np.minimum(prefix, np.nextafter(total, 0.0))), self.size - 1)
        probs = self.tree.values(idx) / total
        weights = (self.size * probs) ** (-beta)
        batch = self.get(idx)
        batch.weights = (weights / weights.max()).astype(np.float32)
        return batch

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """p_i = |δ_i| + ε for the sampled transitions (after their gradient step)."""
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices, priorities ** self.alpha)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(priorities=self.tree.values(np.arange(self.size)).copy(), max_priority=self.max_priority)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.max_priority = float(state["max_priority"])
        self.tree.update(np.arange(self.size), np.asarray(state["priorities"], dtype=np.float64))
