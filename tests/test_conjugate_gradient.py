"""Conjugate gradient on known SPD systems; Fisher-vector products against the explicit KL Hessian."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from robot_rl.conjugate_gradient import (
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    flat_params,
    set_flat_params,
)
from robot_rl.distributions import DiagGaussian
from robot_rl.networks import GaussianActor


def test_cg_solves_a_hand_worked_2x2_system_in_two_steps() -> None:
    # [[4, 1], [1, 3]] x = [1, 2]  →  x = [1/11, 7/11] (Cramer's rule: det 11).
    a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, torch.tensor([1.0, 2.0], dtype=torch.float64), iterations=2)
    torch.testing.assert_close(x, torch.tensor([1 / 11, 7 / 11], dtype=torch.float64))


def test_cg_solves_a_5x5_spd_system_to_1e_6() -> None:
    m = torch.tensor([[2.0, 0.0, 1.0, 0.0, 0.5],
                      [0.0, 1.0, 0.0, 3.0, 0.0],
                      [1.0, 0.0, 4.0, 0.0, 1.0],
                      [0.5, 2.0, 0.0, 1.0, 0.0],
                      [0.0, 0.0, 1.0, 0.0, 2.0]], dtype=torch.float64)
    a = m @ m.T + torch.eye(5, dtype=torch.float64)  # symmetric positive definite
    x_true = torch.tensor([1.0, -2.0, 3.0, 0.5, -1.0], dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, a @ x_true, iterations=10)
    assert torch.max(torch.abs(x - x_true)) < 1e-6
    # float32, as TRPO runs it: still close
    a32 = a.float()
    x32 = conjugate_gradient(lambda v: a32 @ v, a32 @ x_true.float(), iterations=10)
    assert torch.max(torch.abs(x32.double() - x_true)) < 1e-3


def test_cg_stops_once_the_residual_is_below_tolerance() -> None:
    calls = []

    def identity(v: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return 2.0 * v

    b = torch.tensor([1.0, -1.0, 2.0])
    x = conjugate_gradient(identity, b, iterations=10, residual_tol=1e-10)
    torch.testing.assert_close(x, b / 2.0)
    assert len(calls) == 1  # 2I is solved exactly by the first step; no further products


def test_flat_params_round_trip_and_flat_grad() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    unused = nn.Parameter(torch.ones(5))
    flat = flat_params(net)
    assert flat.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    new = torch.arange(flat.numel(), dtype=torch.float32)
    set_flat_params(net, new)
    torch.testing.assert_close(flat_params(net), new)
    torch.testing.assert_close(net[0].bias.detach(), torch.tensor([12.0, 13.0, 14.0, 15.0]))
    with pytest.raises(ValueError, match="elements"):
        set_flat_params(net, new[:-1])
    params = [*net.parameters(), unused]
    grad = flat_grad(net(torch.ones(1, 3)).sum(), params)
    assert grad.shape == (new.numel() + 5,)
    assert torch.all(grad[-5:] == 0.0)  # a parameter the output does not use gets a zero gradient
    torch.testing.assert_close(grad[-7:-5], torch.ones(2))  # d(sum of outputs)/d(last bias) = 1


def _tiny_actor_kl_setup(at_old: bool) -> tuple[GaussianActor, torch.Tensor, DiagGaussian]:
    torch.manual_seed(0)
    actor = GaussianActor(3, 2, hidden=(4,), log_std_init=-0.3).double()
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(0.5 * torch.randn_like(p))  # away from the near-zero output init
    obs = torch.randn(7, 3, dtype=torch.float64)
    old = actor(obs).detach()
    if not at_old:  # evaluate the Hessian away from θ_old too, where the network's curvature enters
        with torch.no_grad():
            for p in actor.parameters():
                p.add_(0.2 * torch.randn_like(p))
    return actor, obs, old


@pytest.mark.parametrize("at_old", [True, False])
def test_fisher_vector_product_equals_explicit_kl_hessian_times_v(at_old: bool) -> None:
    actor, obs, old = _tiny_actor_kl_setup(at_old)
    names = [name for name, _ in actor.named_parameters()]
    shapes = [p.shape for p in actor.parameters()]
    theta = flat_params(actor)

    def kl_of_flat(flat: torch.Tensor) -> torch.Tensor:
        chunks, offset = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            n = shape.numel()
            chunks[name] = flat[offset:offset + n].view(shape)
            offset += n
        return old.kl(functional_call(actor, chunks, (obs,))).mean()

    hessian = torch.autograd.functional.hessian(kl_of_flat, theta)
    damping = 0.1
    fvp = fisher_vector_product(lambda: old.kl(actor(obs)).mean(), actor.parameters(), damping)
    for seed in range(3):
        v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        torch.testing.assert_close(fvp(v), hessian @ v + damping * v)
    if at_old:  # the KL Hessian at θ_old is the Fisher matrix: positive semi-definite
        assert torch.linalg.eigvalsh(hessian).min() > -1e-10
        # and CG with these products solves the natural-gradient system (F + δI) x = g
        g = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
        x = conjugate_gradient(fvp, g, iterations=theta.numel() * 2, residual_tol=1e-20)
        torch.testing.assert_close(fvp(x), g)
