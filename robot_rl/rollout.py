"""On-policy rollout storage and the return estimators of the policy-gradient agents.

Termination and time-limit truncation are different (STYLE.md, lesson 5). At a step that ended by
*termination* the future is worth nothing: no bootstrap. At a step that ended by *truncation* (a time
limit) the episode could have gone on: the TD target bootstraps from V(real final observation), which
the collector evaluates before the vector env auto-resets and stores as `bootstrap_values[t]`. The
return recursion never flows across an episode boundary of either kind, because `values[t + 1]`
there is the value of the *next* episode's first observation. If a step is both terminated and
truncated, termination wins.

All tensors are time-major, `(T, N)` = `(num_steps, num_envs)`; one backward loop over time,
vectorised over envs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


def _scan(a: Tensor, c: Tensor, init: Tensor) -> Tensor:
    """x_t = a_t + c_t·x_{t+1} backwards over time from x_T = init `(N,)`; a, c `(T, N)` → x `(T, N)`.

    On the CPU the loop runs in numpy, in place (≈ 4× faster than per-step torch ops on small arrays).
    """
    if a.device.type == "cpu":
        a_np, c_np = a.numpy(), c.numpy()
        out_np = np.empty_like(a_np)
        running_np = init.numpy().astype(a_np.dtype, copy=True)
        for t in range(a_np.shape[0] - 1, -1, -1):
            running_np *= c_np[t]
            running_np += a_np[t]
            out_np[t] = running_np
        return torch.from_numpy(out_np)
    out = torch.empty_like(a)
    running = init.to(a.dtype).clone()
    for t in range(a.shape[0] - 1, -1, -1):
        running.mul_(c[t]).add_(a[t])
        out[t] = running
    return out


def _boundaries(values: Tensor, terminated: Tensor, truncated: Tensor,
                bootstrap_values: Tensor) -> tuple[Tensor, Tensor]:
    """`(end_values, continues)`, both `(T, N)`: the value a step ending its episode bootstraps from
    (bootstrap_values[t] if truncated, 0 if terminated or not ending) and 1.0 where the episode goes on.
    """
    terminated, truncated = terminated.bool(), truncated.bool()
    end_values = torch.where(truncated & ~terminated, bootstrap_values.to(values.dtype), 0.0)
    continues = (~(terminated | truncated)).to(values.dtype)
    return end_values, continues


def compute_gae(rewards: Tensor, values: Tensor, terminated: Tensor, truncated: Tensor,
                bootstrap_values: Tensor, last_values: Tensor, gamma: float,
                lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) with correct episode boundaries.

    δ_t = r_t + γ·next_t − V(s_t), next_t = V(s_{t+1}) | bootstrap_values[t] (truncated) | 0
    (terminated), and last_values `(N,)` for the rollout's last step;
    A_t = δ_t + γλ·(1 − done_t)·A_{t+1}, done = terminated or truncated.
    Inputs `(T, N)` (terminated/truncated bool or 0/1); returns `(advantages, returns)`, both `(T, N)`,
    returns = advantages + values (the critic's regression target). No gradient flows into `values`.
    """
    values = values.detach()
    end_values, continues = _boundaries(values, terminated, truncated, bootstrap_values)
    following = torch.cat((values[1:], last_values.detach().reshape(1, -1).to(values.dtype)), dim=0)
    deltas = rewards.detach() + gamma * (continues * following + end_values) - values
    advantages = _scan(deltas, continues * (gamma * lam), torch.zeros_like(values[0]))
    return advantages, advantages + values


def discounted_returns(rewards: Tensor, terminated: Tensor, truncated: Tensor, bootstrap_values: Tensor,
                       last_values: Tensor, gamma: float) -> Tensor:
    """Monte-Carlo returns G_t = r_t + γ·G_{t+1} for REINFORCE/VPG, `(T, N)`.

    Same boundary rules as `compute_gae`: G_{t+1} is replaced by 0 after a termination, by
    bootstrap_values[t] after a truncation, and by last_values `(N,)` after the rollout's last step
    (pass zeros for pure Monte-Carlo returns over complete episodes).
    """
    rewards = rewards.detach()
    end_values, continues = _boundaries(rewards, terminated, truncated, bootstrap_values)
    return _scan(rewards + gamma * end_values, gamma * continues,
                 last_values.detach().reshape(-1).to(rewards.dtype))


class Minibatch(NamedTuple):
    """One minibatch of flattened rollout data; leading dimension B."""

    obs: Tensor  # (B, obs_dim)
    actions: Tensor  # (B, act_dim)
    log_probs: Tensor  # (B,)
    values: Tensor  # (B,)
    advantages: Tensor  # (B,)
    returns: Tensor  # (B,)


_STORED = ("obs", "actions", "log_probs", "rewards", "values", "terminated", "truncated", "bootstrap_values")


class RolloutBuffer:
    """Preallocated float32 storage for one on-policy rollout, `(num_steps, num_envs, ...)`.

    Fill with `add` once per vector step, then `compute_returns(last_values, gamma, lam)`, then iterate
    `minibatches`. Inputs may be numpy arrays or tensors; they are copied into place.
    """

    def __init__(self, num_steps: int, num_envs: int, obs_dim: int, act_dim: int,
                 device: torch.device | str = "cpu", privileged_dim: int = 0) -> None:
        if torch.device(device).type != "cpu":
            raise ValueError(f"RolloutBuffer lives on the CPU (rollouts are collected in numpy): {device}")
        self.num_steps = int(num_steps)
        self.num_envs = int(num_envs)
        shape = (self.num_steps, self.num_envs)
        f32 = torch.float32
        self.obs = torch.zeros((*shape, obs_dim), dtype=f32, device=device)
        self.actions = torch.zeros((*shape, act_dim), dtype=f32, device=device)
        self.log_probs = torch.zeros(shape, dtype=f32, device=device)
        self.rewards = torch.zeros(shape, dtype=f32, device=device)
        self.values = torch.zeros(shape, dtype=f32, device=device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.truncated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.bootstrap_values = torch.zeros(shape, dtype=f32, device=device)
        self.advantages = torch.zeros(shape, dtype=f32, device=device)
        self.returns = torch.zeros(shape, dtype=f32, device=device)
        self.privileged = (torch.zeros((*shape, privileged_dim), dtype=f32, device=device)
                           if privileged_dim else None)
        """`(T, N, privileged_dim)` the critic's privileged terms (asymmetric actor-critic), or None."""
        self.step = 0
        # numpy views sharing the tensors' memory: `add` runs once per vector step, and a numpy
        # assignment costs a fraction of torch's per-call dispatch (CPU only)
        self._views = {name: getattr(self, name).numpy() for name in _STORED}
        if self.privileged is not None:
            self._views["privileged"] = self.privileged.numpy()

    @property
    def full(self) -> bool:
        """True once `num_steps` steps were added."""
        return self.step == self.num_steps

    def reset(self) -> None:
        """Start a new rollout (the storage is reused, not cleared)."""
        self.step = 0

    def add(self, obs: Tensor | np.ndarray, actions: Tensor | np.ndarray, log_probs: Tensor | np.ndarray,
            rewards: Tensor | np.ndarray, values: Tensor | np.ndarray, terminated: Tensor | np.ndarray,
            truncated: Tensor | np.ndarray, bootstrap_values: Tensor | np.ndarray | None = None,
            privileged: Tensor | np.ndarray | None = None) -> None:
        """Store one vector step: obs `(N, obs_dim)` seen, actions `(N, act_dim)` taken, and `(N,)` rest.

        `bootstrap_values[i]` is V(real final observation) where env i was truncated (ignored elsewhere);
        None means no env was truncated. `privileged` `(N, privileged_dim)`: the critic's privileged
        terms of `obs` (required when the buffer has them).
        """
        if self.step >= self.num_steps:
            raise IndexError(f"rollout buffer is full ({self.num_steps} steps); call reset() first")
        t = self.step
        views = self._views
        views["obs"][t] = _numpy(obs)
        views["actions"][t] = np.reshape(_numpy(actions), (self.num_envs, -1))
        views["log_probs"][t] = _numpy(log_probs)
        views["rewards"][t] = _numpy(rewards)
        views["values"][t] = _numpy(values)
        views["terminated"][t] = _numpy(terminated)
        views["truncated"][t] = _numpy(truncated)
        views["bootstrap_values"][t] = 0.0 if bootstrap_values is None else _numpy(bootstrap_values)
        if self.privileged is not None:
            if privileged is None:
                raise ValueError("this buffer stores the critic's privileged terms: pass privileged=")
            views["privileged"][t] = _numpy(privileged)
        self.step += 1

    def critic_obs(self) -> Tensor | None:
        """`(T, N, obs_dim + privileged_dim)` the critic's input where it sees privileged terms (the
        observation, then them); None where it sees the observation alone."""
        if self.privileged is None:
            return None
        return torch.cat((self.obs, self.privileged), dim=-1)

    def compute_returns(self, last_values: Tensor | np.ndarray, gamma: float, lam: float) -> None:
        """Fill `advantages` and `returns` by GAE; `last_values` `(N,)` = V(obs after the last step)."""
        last = torch.as_tensor(last_values, dtype=torch.float32, device=self.values.device)
        self.advantages, self.returns = compute_gae(
            self.rewards, self.values, self.terminated, self.truncated, self.bootstrap_values, last,
            gamma, lam)

    def minibatches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Minibatch]:
        """Shuffled minibatches over all `num_steps * num_envs` samples, each used exactly once.

        The data is split into `max(1, n // batch_size)` near-equal parts (sizes differ by at most 1),
        so no minibatch is a tiny remainder (whose advantage std would be meaningless).
        """
        n = self.num_steps * self.num_envs
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        flat = (self.obs.reshape(n, -1), self.actions.reshape(n, -1), self.log_probs.reshape(n),
                self.values.reshape(n), self.advantages.reshape(n), self.returns.reshape(n))
        order = torch.randperm(n, generator=generator, device=self.obs.device)
        for idx in torch.tensor_split(order, max(1, n // batch_size)):
            yield Minibatch(*(x[idx] for x in flat))


def _numpy(x: Tensor | np.ndarray | float) -> np.ndarray | float:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else x


# ---------------------------------------------------------------------------------- Monte-Carlo helpers
# (REINFORCE, VPG and TRPO use these.)

def finished_mask(terminated: Tensor, truncated: Tensor) -> Tensor:
    """`(T, N)` bool: True at the steps whose episode ends inside the rollout (G_t fully known).

    That is every step up to and including an environment's last termination or truncation.
    """
    done = (terminated.bool() | truncated.bool()).int()
    return done.flip(0).cummax(0).values.flip(0).bool()


def monte_carlo_returns(buffer: RolloutBuffer, last_values: Tensor, gamma: float,
                        bootstrap_tail: bool) -> tuple[Tensor, Tensor]:
    """(G_t, used), both `(T, N)`: discounted returns and the steps whose G_t may be used.

    With `bootstrap_tail` the unfinished tail bootstraps from `last_values` `(N,)` and every step is
    used; without it the tail's G_t is unknown and `used` is False there (its G_t is then
    meaningless). Truncated steps bootstrap from `buffer.bootstrap_values` either way (zeros when
    the agent has no critic).
    """
    tail = last_values if bootstrap_tail else torch.zeros(buffer.num_envs)
    returns = discounted_returns(buffer.rewards, buffer.terminated, buffer.truncated,
                                 buffer.bootstrap_values, tail, gamma)
    if bootstrap_tail:
        return returns, torch.ones_like(returns, dtype=torch.bool)
    return returns, finished_mask(buffer.terminated, buffer.truncated)


def episode_starts(terminated: Tensor, truncated: Tensor) -> Tensor:
    """`(T, N)` bool: True where a trajectory segment starts (the rollout's first step, or after a done)."""
    done = terminated.bool() | truncated.bool()
    starts = torch.ones_like(done)
    starts[1:] = done[:-1]
    return starts


def episode_time(terminated: Tensor, truncated: Tensor, start: Tensor) -> tuple[Tensor, Tensor]:
    """(t, next_start): each step's index within its episode `(T, N)`, and the counters to carry on.

    `start` `(N,)` is the index of the rollout's first step in its episode (steps already taken).
    """
    done = terminated.bool() | truncated.bool()
    index = torch.empty(done.shape, dtype=torch.long)
    current = start.long().clone()
    for t in range(done.shape[0]):
        index[t] = current
        current = torch.where(done[t], 0, current + 1)
    return index, current


def standardize(x: Tensor) -> Tensor:
    """(x − mean) / std over all elements; unchanged when there are fewer than two."""
    if x.numel() < 2:
        return x
    return (x - x.mean()) / (x.std() + 1e-8)
