"""The numpy runtime: what a robot computer runs. Needs numpy and nothing else (no torch, no onnx).

Per step: the normaliser in float64 (the same operations as training's, so the same float32 input),
then the MLP in float32 with preallocated buffers (one matmul, one add, one activation per layer, all
in place), then tanh if the policy was trained squashed. This keeps a single-observation call within
about twice a bare chain of matmuls (bench/inference_latency.py).
"""

from __future__ import annotations

import numpy as np

from robot_rl.policies.bundle import Bundle, Policy, read_bundle
from robot_rl.policies.numpy_mlp import NumpyMLP


class NumpyForward:
    """The bundle's network on raw observations: `batch` `(n, obs_dim)` and `one` `(obs_dim,)`.

    `one` returns a scratch buffer that the next call overwrites (callers copy or derive from it).
    """

    def __init__(self, bundle: Bundle) -> None:
        m = bundle.manifest
        self.mlp = NumpyMLP(bundle.layers, m.activation)
        self.normalizer = m.normalizer
        self.squash = m.kind == "gaussian" and m.squash == "tanh"
        self.activation = m.activation
        obs_dim = m.spec.obs_dim
        self._x64 = np.empty(obs_dim, dtype=np.float64)
        self._x32 = np.empty(obs_dim, dtype=np.float32)
        if self.normalizer is not None:
            self._mean = self.normalizer.mean
            self._std = self.normalizer.std
            self._clip = self.normalizer.clip
        self._steps = [(w, b, np.empty(w.shape[1], dtype=np.float32))
                       for w, b in zip(self.mlp.weights, self.mlp.biases, strict=True)]
        self._neg = [np.empty(w.shape[1], dtype=np.float32) for w in self.mlp.weights]

    def batch(self, obs: np.ndarray) -> np.ndarray:
        x = self.normalizer.normalize(obs) if self.normalizer is not None else obs.astype(np.float32)
        y = self.mlp(x)
        return np.tanh(y, out=y) if self.squash else y

    def one(self, obs: np.ndarray) -> np.ndarray:
        h = self._x32
        if self.normalizer is not None:
            x = self._x64
            np.subtract(obs, self._mean, out=x)
            np.divide(x, self._std, out=x)
            np.maximum(x, -self._clip, out=x)
            np.minimum(x, self._clip, out=x)
            h[...] = x
        else:
            h[...] = obs
        last = len(self._steps) - 1
        for i, (w, b, out) in enumerate(self._steps):
            np.matmul(h, w, out=out)
            out += b
            if i != last:
                _activate(out, self.activation, self._neg[i])
            h = out
        if self.squash:
            np.tanh(h, out=h)
        return h


def _activate(h: np.ndarray, name: str, scratch: np.ndarray) -> None:
    """In place; elu(x) = max(x, 0) + expm1(min(x, 0)) (alpha 1), as torch's ELU."""
    if name == "tanh":
        np.tanh(h, out=h)
    elif name == "relu":
        np.maximum(h, 0, out=h)
    else:
        np.minimum(h, 0, out=scratch)
        np.expm1(scratch, out=scratch)
        np.maximum(h, 0, out=h)
        h += scratch


def policy_from_bundle(bundle: Bundle) -> Policy:
    forward = NumpyForward(bundle)
    return Policy(bundle, "numpy", forward.batch, forward.one)


def load(path: str) -> Policy:
    """Read, verify and load a bundle on the numpy runtime."""
    return policy_from_bundle(read_bundle(path))
