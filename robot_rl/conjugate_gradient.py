"""Conjugate gradient and Fisher-vector products: TRPO's natural-gradient step without forming F.

TRPO needs x = F⁻¹ g for a Fisher matrix F with as many rows as the policy has parameters. CG solves
F x = g using only products F·v, and each product costs two backward passes through the KL (the
Hessian of the KL at θ_old *is* the Fisher matrix), so F is never built (Schulman et al. 2015, App. C).
Vectors are flat `(num_params,)` tensors in the order of `module.parameters()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

ParamSource = nn.Module | Iterable[nn.Parameter] | Iterable[Tensor]


def _params(source: ParamSource) -> list[Tensor]:
    return list(source.parameters()) if isinstance(source, nn.Module) else list(source)


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
                       residual_tol: float = 1e-10) -> Tensor:
    """Approximately solve A x = b for symmetric positive-definite A, given only v ↦ A v.

    Starts at x = 0; stops after `iterations` steps or once the squared residual ‖b − A x‖² drops
    below `residual_tol`. In exact arithmetic it is exact after dim(b) steps. Returns x, shaped like b.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    r_dot_r = torch.dot(r, r)
    for _ in range(iterations):
        if r_dot_r.item() < residual_tol:
            break
        a_p = matvec(p)
        alpha = r_dot_r / torch.dot(p, a_p)
        x.add_(alpha * p)
        r.sub_(alpha * a_p)
        new_r_dot_r = torch.dot(r, r)
        p = r + (new_r_dot_r / r_dot_r) * p
        r_dot_r = new_r_dot_r
    return x


def flat_params(source: ParamSource) -> Tensor:
    """All parameters concatenated into one detached vector `(num_params,)`."""
    return torch.cat([p.detach().reshape(-1) for p in _params(source)])


def set_flat_params(source: ParamSource, flat: Tensor) -> None:
    """Copy a flat vector `(num_params,)` back into the parameters (in place, without autograd)."""
    params = _params(source)
    total = sum(p.numel() for p in params)
    if flat.numel() != total:
        raise ValueError(f"flat vector has {flat.numel()} elements, the parameters have {total}")
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[offset:offset + n].view_as(p))
            offset += n


def flat_grad(output: Tensor, source: ParamSource, retain_graph: bool | None = None,
              create_graph: bool = False) -> Tensor:
    """∂output/∂params of a scalar as one vector `(num_params,)`; parameters it does not use get 0.

    `retain_graph` defaults to `create_graph`, as in `torch.autograd.grad`.
    """
    params = _params(source)
    grads = torch.autograd.grad(output, params, retain_graph=retain_graph, create_graph=create_graph,
                                allow_unused=True)
    flat = [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads, strict=True)]
    return torch.cat(flat)


def fisher_vector_product(kl_fn: Callable[[], Tensor], params: ParamSource,
                          damping: float) -> Callable[[Tensor], Tensor]:
    """v ↦ (∇²KL + damping·I) v by double back-prop, for CG.

    `kl_fn()` returns the scalar mean KL between the fixed old policy (detached) and the current one.
    Its gradient graph is built once here and reused by every product, so each call to the returned
    function costs one extra backward pass. Damping keeps the system positive definite when the
    Fisher matrix is (numerically) singular.
    """
    params = _params(params)
    grad_kl = flat_grad(kl_fn(), params, create_graph=True)

    def product(v: Tensor) -> Tensor:
        hessian_v = flat_grad(torch.dot(grad_kl, v.detach()), params, retain_graph=True)
        return hessian_v + damping * v

    return product
