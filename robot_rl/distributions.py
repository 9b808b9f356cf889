"""Diagonal Gaussian action distributions: exactly what PPO, TRPO, REINFORCE and VPG need.

Written by hand instead of via `torch.distributions` because a policy-gradient update evaluates them
millions of times on tiny batches: no argument validation, no broadcasting machinery, one expression
each. Every method is checked against `torch.distributions` in tests/test_distributions.py.

Shapes: `mean` is `(batch, act_dim)`; `log_std` is `(act_dim,)` (state-independent, as our actors
learn it) or `(batch, act_dim)`. Per-sample quantities (`log_prob`, `entropy`, `kl`) are summed over
the action dimensions and come back as `(batch,)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)

#: Squashed actions are clamped to ±(1 − ATANH_EPS) before `atanh`, so an action of exactly ±1 (which
#: float32 `tanh` returns for |u| ≳ 9) maps to a finite pre-tanh value u ≈ ±7.25 instead of ±inf.
ATANH_EPS = 1e-6


class DiagGaussian:
    """N(mean, diag(exp(log_std)²)) over actions; `sample` is reparameterised (differentiable)."""

    __slots__ = ("log_std", "mean")

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.mean = mean
        self.log_std = log_std

    @property
    def std(self) -> Tensor:
        """Standard deviation, broadcast to `(batch, act_dim)`."""
        return self.log_std.exp().expand_as(self.mean)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised draw `mean + std·ε`, ε ~ N(0, I): `(batch, act_dim)`."""
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype,
                            device=self.mean.device)
        return self.mean + self.log_std.exp() * noise

    def log_prob(self, actions: Tensor) -> Tensor:
        """log N(actions; mean, std²) summed over action dims: `(batch,)`."""
        z = (actions - self.mean) * torch.exp(-self.log_std)
        per_dim = -0.5 * z.square() - self.log_std - _HALF_LOG_2PI
        return per_dim.sum(-1)

    def entropy(self) -> Tensor:
        """Closed form Σ_i (½ + ½ log 2π + log σ_i): `(batch,)`."""
        per_dim = (self.log_std + (0.5 + _HALF_LOG_2PI)).expand_as(self.mean)
        return per_dim.sum(-1)

    def kl(self, other: DiagGaussian) -> Tensor:
        """Closed-form KL(self ‖ other), `(batch,)`.

        KL = Σ_i log(σ_o/σ_s) + (σ_s² + (μ_s − μ_o)²) / (2σ_o²) − ½.
        """
        var_ratio = torch.exp(2.0 * (self.log_std - other.log_std))
        mean_term = ((self.mean - other.mean) * torch.exp(-other.log_std)).square()
        per_dim = 0.5 * (var_ratio + mean_term - 1.0) - (self.log_std - other.log_std)
        return per_dim.sum(-1)

    def mode(self) -> Tensor:
        """The most likely action (the mean): `(batch, act_dim)`."""
        return self.mean

    def detach(self) -> DiagGaussian:
        """A copy cut from the graph: TRPO's and PPO's fixed "old" policy."""
        return DiagGaussian(self.mean.detach(), self.log_std.detach())


class SquashedDiagGaussian:
    """Actions a = tanh(u), u ~ N(mean, std²): bounded to (−1, 1) for torque or position targets.

    - `log_prob(a)` = log N(u) − Σ log(1 − tanh(u)²), with the stable identity
      log(1 − tanh(u)²) = 2(log 2 − u − softplus(−2u)).
      Given squashed actions, u is recovered as atanh(clamp(a, ±(1 − ATANH_EPS))), which is exact away
      from the edges and finite at a = ±1. For exact log-probs at saturated actions, store the
      pre-tanh draw (`sample_pre_tanh`) and use `log_prob_pre_tanh`; an agent should compute the old and
      the new log-prob the same way, so the PPO ratio is exactly 1 before the first step.
    - `kl(other)` is the KL of the underlying Gaussians, which is exact: KL is invariant under the
      bijection tanh.
    - `entropy()` returns the *base Gaussian's* entropy (closed form). The squashed distribution has no
      closed-form entropy; H[tanh(u)] = H[u] + E[log(1 − tanh(u)²)] ≤ H[u], so this is an upper bound,
      used as the usual exploration bonus.
    """

    __slots__ = ("base",)

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.base = DiagGaussian(mean, log_std)

    @property
    def mean(self) -> Tensor:
        """Mean of the pre-tanh Gaussian: `(batch, act_dim)`."""
        return self.base.mean

    @property
    def log_std(self) -> Tensor:
        """Log standard deviation of the pre-tanh Gaussian."""
        return self.base.log_std

    @property
    def std(self) -> Tensor:
        """Standard deviation of the pre-tanh Gaussian, `(batch, act_dim)`."""
        return self.base.std

    def sample_pre_tanh(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised pre-tanh draw u: `(batch, act_dim)`; the action is tanh(u)."""
        return self.base.sample(generator)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised squashed action tanh(u) in [−1, 1]: `(batch, act_dim)`."""
        return torch.tanh(self.base.sample(generator))

    def log_prob_pre_tanh(self, pre_tanh: Tensor) -> Tensor:
        """log-density of the action tanh(u), given u itself (exact, also when tanh(u) rounds to ±1)."""
        log_det = 2.0 * (_LOG_2 - pre_tanh - F.softplus(-2.0 * pre_tanh))
        return self.base.log_prob(pre_tanh) - log_det.sum(-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        """log-density of squashed actions in [−1, 1]: `(batch,)`; finite at ±1 (see ATANH_EPS)."""
        bound = 1.0 - ATANH_EPS
        return self.log_prob_pre_tanh(torch.atanh(actions.clamp(-bound, bound)))

    def entropy(self) -> Tensor:
        """The base Gaussian's entropy, an upper bound of the squashed one: `(batch,)`."""
        return self.base.entropy()

    def kl(self, other: SquashedDiagGaussian) -> Tensor:
        """KL(self ‖ other), exact: the base Gaussians' KL, `(batch,)`."""
        return self.base.kl(other.base)

    def mode(self) -> Tensor:
        """tanh(mean): the deterministic action used at deployment, `(batch, act_dim)`."""
        return torch.tanh(self.base.mean)

    def detach(self) -> SquashedDiagGaussian:
        """A copy cut from the graph."""
        return SquashedDiagGaussian(self.base.mean.detach(), self.base.log_std.detach())
