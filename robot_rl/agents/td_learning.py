"""Temporal-difference learning for DQN: targets, losses (and their gradient w.r.t. Q), target-network
updates, and a replayed minibatch as tensors.

    y = r + γ (1 − terminated) max_a' Q_θ⁻(s', a')                       (DQN)
    y = r + γ (1 − terminated) Q_θ⁻(s', argmax_a' Q_θ(s', a'))           (Double DQN)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robot_rl.replay import Batch


def td_targets(rewards: Tensor, terminated: Tensor, next_q_target: Tensor, gamma: float,
               next_q_online: Tensor | None = None) -> Tensor:
    """y `(batch,)`: r + γ(1 − terminated)·Q⁻(s', a*), a* = argmax Q⁻ (DQN) or argmax Q (Double DQN).

    `next_q_target`, `next_q_online`: Q-values of s' `(batch, num_actions)` from the target and the
    online network. Truncated transitions are ordinary here: their s' is the real last observation.
    """
    if next_q_online is None:
        next_value = next_q_target.max(dim=1).values
    else:
        best = next_q_online.argmax(dim=1, keepdim=True)
        next_value = next_q_target.gather(1, best).squeeze(1)
    return rewards + gamma * (~terminated).to(rewards.dtype) * next_value


def td_loss(q_taken: Tensor, targets: Tensor, kind: str = "mse", huber_delta: float = 1.0,
            weights: Tensor | None = None) -> Tensor:
    """mse: mean ½(y − Q)²; huber: mean Huber_δ(y − Q) (= ½(y − Q)² for |y − Q| ≤ δ); optionally weighted."""
    if kind == "mse":
        per_sample = 0.5 * (targets - q_taken).square()
    else:
        per_sample = nn.functional.huber_loss(q_taken, targets, reduction="none", delta=huber_delta)
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


@torch.no_grad()
def td_loss_grad(q_taken: Tensor, targets: Tensor, kind: str = "mse", huber_delta: float = 1.0,
                 weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """`td_loss` and its gradient ∂L/∂Q(s, a) `(batch,)`, in closed form: (Q − y)/B for mse, the TD
    error clipped to ±δ, over B, for Huber; times the importance weights."""
    error = q_taken - targets
    if kind == "mse":
        per_sample, grad = 0.5 * error.square(), error
    else:
        per_sample = nn.functional.huber_loss(q_taken, targets, reduction="none", delta=huber_delta)
        grad = error.clamp(-huber_delta, huber_delta)
    if weights is not None:
        per_sample, grad = per_sample * weights, grad * weights
    return per_sample.mean(), grad.div_(error.shape[0])


@torch.no_grad()
def hard_update(target: nn.Module, online: nn.Module) -> None:
    """θ⁻ ← θ."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.copy_(o)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """θ⁻ ← τθ + (1 − τ)θ⁻."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o, tau)


@dataclass
class TorchBatch:
    """A replayed minibatch as tensors (views of the sampled numpy arrays)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminated: Tensor
    weights: Tensor | None

    def rows(self, rows: slice) -> TorchBatch:
        w = None if self.weights is None else self.weights[rows]
        return TorchBatch(self.obs[rows], self.actions[rows], self.rewards[rows], self.next_obs[rows],
                          self.terminated[rows], w)


def to_torch(batch: Batch) -> TorchBatch:
    return TorchBatch(torch.from_numpy(batch.obs), torch.from_numpy(batch.actions),
                      torch.from_numpy(batch.rewards), torch.from_numpy(batch.next_obs),
                      torch.from_numpy(batch.terminated),
                      None if batch.weights is None else torch.from_numpy(batch.weights))
