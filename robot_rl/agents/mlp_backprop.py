"""The written-out backward pass of an MLP Q-network: DQN's gradient without autograd's per-step graph
(bench/dqn_cartpole.py measures what it is worth against autograd, in the same run)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from robot_rl.agents.q_networks import QNetwork


class MLPBackprop:
    """The forward and backward pass of a `QNetwork`, written out, for the TD loss's gradient.

    Autograd records and replays about 25 small operations per step, each with tens of µs of
    dispatch on a CPU; for the MLP the backward pass is four lines of matrix algebra. Per layer
    z = x Wᵀ + b, h = act(z): ∂W = ∂zᵀ x, ∂b = Σ ∂z, ∂x = ∂z W, and ∂z = ∂h · act'(z) with act' read
    from the output h (relu: h > 0; tanh: 1 − h²; elu: min(h + 1, 1)). Gradients are written into
    preallocated `.grad` tensors, so the optimiser and gradient clipping run as usual. Tests hold it
    equal to autograd.
    """

    def __init__(self, net: QNetwork) -> None:
        self.layers = [m for m in net.net if isinstance(m, nn.Linear)]
        self.activation = net.activation
        for layer in self.layers:
            for param in (layer.weight, layer.bias):
                param.grad = torch.zeros_like(param)

    @torch.no_grad()
    def forward(self, obs: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Q-values `(batch, num_actions)` and each layer's input (obs, then the hidden activations)."""
        inputs, h = [], obs
        for i, layer in enumerate(self.layers):
            inputs.append(h)
            h = torch.addmm(layer.bias, h, layer.weight.t())
            if i != len(self.layers) - 1:
                h = _ACTIVATE[self.activation](h)
        return h, inputs

    @torch.no_grad()
    def backward(self, grad_q: Tensor, inputs: list[Tensor]) -> None:
        """Write ∂L/∂θ into every parameter's `.grad`, given ∂L/∂Q `(batch, num_actions)`."""
        dz = grad_q
        for i in range(len(self.layers) - 1, -1, -1):
            layer, x = self.layers[i], inputs[i]
            torch.mm(dz.t(), x, out=layer.weight.grad)
            torch.sum(dz, 0, out=layer.bias.grad)
            if i:
                dz = torch.mm(dz, layer.weight).mul_(_DERIVATIVE[self.activation](x))


_ACTIVATE: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu_, "tanh": torch.tanh_, "elu": lambda h: nn.functional.elu_(h)}
_DERIVATIVE: dict[str, Callable[[Tensor], Tensor]] = {  # act'(z) from h = act(z)
    "relu": lambda h: h > 0, "tanh": lambda h: 1.0 - h * h, "elu": lambda h: (h + 1.0).clamp_(max=1.0)}
