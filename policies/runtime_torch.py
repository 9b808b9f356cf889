"""The torch runtime: the bundle as an `nn.Module` built from weights.npz (never `torch.load`).

`BundleModule` holds the normaliser as float64 buffers (the same subtraction, division and clamp as
training's numpy normaliser, so the same float32 input), the MLP as `nn.Linear` layers in float32 —
the operations of the training actor — and tanh if squashed. It is a plain module: it can be
scripted, moved to a GPU, or embedded in a larger model. torch is imported here only, on use.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from robot_rl.policies.bundle import Bundle, Policy, read_bundle

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


class BundleModule(nn.Module):
    """raw observations `(n, obs_dim)` float64 → deterministic normalised action / Q-values, float32."""

    def __init__(self, bundle: Bundle) -> None:
        super().__init__()
        m = bundle.manifest
        self.has_normalizer = m.normalizer is not None
        if m.normalizer is not None:
            self.register_buffer("mean", torch.tensor(m.normalizer.mean, dtype=torch.float64))
            self.register_buffer("std", torch.tensor(m.normalizer.std, dtype=torch.float64))
            self.clip = float(m.normalizer.clip)
        modules: list[nn.Module] = []
        for i, (w, b) in enumerate(bundle.layers):
            layer = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32)))
                layer.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float32)))
            modules.append(layer)
            if i != len(bundle.layers) - 1:
                modules.append(_ACTIVATIONS[m.activation]())
        self.net = nn.Sequential(*modules)
        self.squash = m.kind == "gaussian" and m.squash == "tanh"

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.to(torch.float64)
        if self.has_normalizer:
            mean, std = self.get_buffer("mean"), self.get_buffer("std")
            x = ((x - mean) / std).clamp(-self.clip, self.clip)
        y = self.net(x.to(torch.float32))
        return torch.tanh(y) if self.squash else y


def policy_from_bundle(bundle: Bundle) -> Policy:
    module = BundleModule(bundle).eval()

    @torch.inference_mode()
    def forward(obs: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float64))
        return module(x[None])[0].numpy() if obs.ndim == 1 else module(x).numpy()

    policy = Policy(bundle, "torch", forward)
    policy.module = module  # type: ignore[attr-defined]
    return policy


def load(path: str) -> Policy:
    """Read, verify and load a bundle on the torch runtime (`policy.module` is the nn.Module)."""
    return policy_from_bundle(read_bundle(path))
