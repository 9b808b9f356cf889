"""DiagGaussian and SquashedDiagGaussian against torch.distributions on random inputs."""

import math

import torch
from torch.distributions import Independent, Normal, TanhTransform, TransformedDistribution, kl_divergence

from robot_rl.distributions import DiagGaussian, SquashedDiagGaussian

BATCH, ACT_DIM = 64, 3


def _random(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(BATCH, ACT_DIM, generator=g, dtype=torch.float64)
    log_std = 0.5 * torch.randn(ACT_DIM, generator=g, dtype=torch.float64)
    return mean, log_std


def _reference(mean: torch.Tensor, log_std: torch.Tensor) -> Independent:
    return Independent(Normal(mean, log_std.exp().expand_as(mean)), 1)


def test_log_prob_entropy_and_kl_match_torch_distributions() -> None:
    mean, log_std = _random(0)
    other_mean, other_log_std = _random(1)
    dist, other = DiagGaussian(mean, log_std), DiagGaussian(other_mean, other_log_std)
    ref, ref_other = _reference(mean, log_std), _reference(other_mean, other_log_std)
    actions = ref_other.sample()

    assert dist.log_prob(actions).shape == (BATCH,)
    torch.testing.assert_close(dist.log_prob(actions), ref.log_prob(actions))
    assert dist.entropy().shape == (BATCH,)
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    assert dist.kl(other).shape == (BATCH,)
    torch.testing.assert_close(dist.kl(other), kl_divergence(ref, ref_other))
    torch.testing.assert_close(other.kl(dist), kl_divergence(ref_other, ref))
    torch.testing.assert_close(dist.kl(dist), torch.zeros(BATCH, dtype=torch.float64))


def test_per_sample_log_std_matches_too() -> None:
    mean, _ = _random(2)
    g = torch.Generator().manual_seed(3)
    log_std = 0.3 * torch.randn(BATCH, ACT_DIM, generator=g, dtype=torch.float64)
    dist = DiagGaussian(mean, log_std)
    actions = mean + 0.7
    torch.testing.assert_close(dist.log_prob(actions), _reference(mean, log_std).log_prob(actions))
    torch.testing.assert_close(dist.entropy(), _reference(mean, log_std).entropy())


def test_sample_is_reparameterised_with_the_right_moments() -> None:
    mean = torch.tensor([[1.0, -2.0]]).expand(200_000, 2).clone().requires_grad_(True)
    log_std = torch.tensor([0.0, -1.0], requires_grad=True)
    dist = DiagGaussian(mean, log_std)
    samples = dist.sample(torch.Generator().manual_seed(0))
    assert samples.dtype == torch.float32
    torch.testing.assert_close(samples.mean(0), torch.tensor([1.0, -2.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.tensor([1.0, torch.e ** -1]), atol=0.01, rtol=0)
    samples.sum().backward()  # gradients flow through the draw: d(sum)/d(mean) = 1 per element
    assert mean.grad is not None and torch.all(mean.grad == 1.0)
    assert log_std.grad is not None and torch.all(log_std.grad != 0.0)


def test_mode_and_detach() -> None:
    mean = torch.randn(4, 2, requires_grad=True)
    log_std = torch.zeros(2, requires_grad=True)
    dist = DiagGaussian(mean, log_std)
    assert dist.mode() is mean
    frozen = dist.detach()
    assert not frozen.mean.requires_grad and not frozen.log_std.requires_grad
    torch.testing.assert_close(frozen.mean, mean.detach())


def _squashed_reference(mean: torch.Tensor, log_std: torch.Tensor) -> Independent:
    base = Normal(mean, log_std.exp().expand_as(mean))
    return Independent(TransformedDistribution(base, [TanhTransform()]), 1)


def test_squashed_log_prob_matches_transformed_distribution_away_from_edges() -> None:
    mean, log_std = _random(4)
    dist = SquashedDiagGaussian(mean, log_std)
    ref = _squashed_reference(mean, log_std)
    g = torch.Generator().manual_seed(5)
    actions = (torch.rand(BATCH, ACT_DIM, generator=g, dtype=torch.float64) * 2 - 1) * 0.99
    torch.testing.assert_close(dist.log_prob(actions), ref.log_prob(actions))
    pre_tanh = torch.randn(BATCH, ACT_DIM, generator=g, dtype=torch.float64) * 2
    torch.testing.assert_close(dist.log_prob_pre_tanh(pre_tanh), ref.log_prob(torch.tanh(pre_tanh)))


def test_squashed_log_prob_is_finite_at_exactly_plus_minus_one() -> None:
    mean, log_std = torch.zeros(3, 2), torch.zeros(2)
    dist = SquashedDiagGaussian(mean, log_std)
    actions = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, 0.0]])
    assert torch.isfinite(dist.log_prob(actions)).all()
    # The pre-tanh route stays exact where float32 tanh already rounds to ±1:
    # log p(tanh u) = Σ_i [−u_i²/2 − ½ log 2π + 2 log cosh u_i] for a standard normal base.
    u = torch.tensor([[12.0, -15.0]])
    assert torch.all(torch.tanh(u).abs() == 1.0)
    unit = SquashedDiagGaussian(torch.zeros(1, 2), torch.zeros(2))
    expected = sum(-x * x / 2 - 0.5 * math.log(2 * math.pi) + 2 * math.log(math.cosh(x))
                   for x in (12.0, -15.0))
    torch.testing.assert_close(unit.log_prob_pre_tanh(u), torch.tensor([expected]), rtol=1e-5, atol=1e-4)


def test_squashed_samples_are_bounded_and_kl_is_the_base_kl() -> None:
    mean, log_std = _random(6)
    other_mean, other_log_std = _random(7)
    dist = SquashedDiagGaussian(mean, log_std)
    other = SquashedDiagGaussian(other_mean, other_log_std)
    samples = dist.sample(torch.Generator().manual_seed(0))
    assert samples.abs().max() <= 1.0
    torch.testing.assert_close(dist.kl(other), kl_divergence(_reference(mean, log_std),
                                                               _reference(other_mean, other_log_std)))
    torch.testing.assert_close(dist.entropy(), _reference(mean, log_std).entropy())
    torch.testing.assert_close(dist.mode(), torch.tanh(mean))
    assert isinstance(dist.detach(), SquashedDiagGaussian)
