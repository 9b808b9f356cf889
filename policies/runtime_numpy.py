"""The numpy runtime: what a robot computer runs. Needs numpy and nothing else (no torch, no onnx).

One observation costs a few numpy calls more than the bare chain of matmuls, because the affine parts
around the network are folded into its first and last layers once, at load:

- Normaliser: clip((x − mean) / std, ±c) feeds W₀, so W₀ z + b₀ = (W₀/std) x' + (b₀ − (W₀/std) mean)
  with x' = x clipped to [mean − c·std, mean + c·std] (the same clip, moved through a monotone map):
  two calls (max, min) instead of four.
- Robot units: offset + scale · (W_L h + b_L) = (scale·W_L) h + (scale·b_L + offset), then the clip to
  [low, high] (unsquashed Gaussian policies; a tanh head needs its own mapping after the tanh).

The folded first and last layers run in float64, so folding loses nothing (W₀/std can be large where
a feature barely varies; float32 would cancel there); the hidden layers run in float32 with
preallocated buffers, as in training. The result differs from training's float32 arithmetic by float
round-off only (about 1e-7 relative); tests hold it to the torch runtime within 1e-5.
"""

from __future__ import annotations

import numpy as np

from robot_rl.policies.bundle import Bundle, Policy, read_bundle
from robot_rl.policies.numpy_mlp import NumpyMLP


class NumpyForward:
    """The bundle's network on raw observations `(obs_dim,)` or `(n, obs_dim)` (validated by Policy).

    `normalized(x)`: the deterministic normalised action (gaussian) or Q-values (argmax), float64.
    `robot(x)`: gaussian only, the action in robot units, float64. Both return fresh arrays.
    """

    def __init__(self, bundle: Bundle) -> None:
        m = bundle.manifest
        layers = [(w.astype(np.float64), b.astype(np.float64)) for w, b in bundle.layers]
        w0, b0 = layers[0]
        self.clip_low = self.clip_high = None
        if m.normalizer is not None:
            n = m.normalizer
            std = n.std
            w0 = w0 / std
            b0 = b0 - w0 @ n.mean
            self.clip_low, self.clip_high = n.mean - n.clip * std, n.mean + n.clip * std
        self.activation = m.activation
        self.squash = m.kind == "gaussian" and m.squash == "tanh"
        self.single = len(layers) == 1
        self.first = (np.ascontiguousarray(w0.T), b0)
        hidden = [(w.astype(np.float32), b.astype(np.float32)) for w, b in bundle.layers[1:-1]]
        self.hidden = NumpyMLP(hidden, m.activation) if hidden else None  # float32, transposed
        spec = m.spec
        scale, offset, self.low, self.high = spec.action._arrays
        w_last, b_last = (w0, b0) if self.single else layers[-1]
        self.last = (np.ascontiguousarray(w_last.T), b_last)
        self.last_robot = None
        if m.kind == "gaussian" and not self.squash:
            self.last_robot = (np.ascontiguousarray((w_last * scale[:, None]).T), b_last * scale + offset)
        self.scale, self.offset = scale, offset
        # scratch for one observation
        width0 = w0.shape[0]
        self._x = np.empty(spec.obs_dim, dtype=np.float64)
        self._h64 = np.empty(width0, dtype=np.float64)
        self._h32 = np.empty(width0, dtype=np.float32)
        self._tail64 = np.empty(layers[-1][0].shape[1], dtype=np.float64)
        self._neg = np.empty(width0, dtype=np.float32)

    # ---- the pieces
    def _features(self, obs: np.ndarray, one: bool) -> np.ndarray:
        """Input of the last layer, float64: clip, folded first layer, activation, hidden layers."""
        x = obs
        if self.clip_low is not None:
            x = np.maximum(obs, self.clip_low, out=self._x if one else None)
            np.minimum(x, self.clip_high, out=x)
        if self.single:
            return x
        w, b = self.first
        if one:
            h64 = np.matmul(x, w, out=self._h64)
            h64 += b
            h = self._h32
            h[...] = h64
        else:
            h = (x @ w + b).astype(np.float32)
        _activate(h, self.activation, self._neg if one else np.empty_like(h))
        if self.hidden is not None:
            h = _hidden_forward(self.hidden, h)
        if one:
            tail = self._tail64
            tail[...] = h
            return tail
        return h.astype(np.float64)

    def normalized(self, obs: np.ndarray) -> np.ndarray:
        w, b = self.last
        y = self._features(obs, obs.ndim == 1) @ w
        y += b
        return np.tanh(y, out=y) if self.squash else y

    def robot(self, obs: np.ndarray) -> np.ndarray:
        if self.last_robot is None:
            y = self.normalized(obs)
            y *= self.scale
            y += self.offset
        else:
            w, b = self.last_robot
            y = self._features(obs, obs.ndim == 1) @ w
            y += b
        np.maximum(y, self.low, out=y)
        return np.minimum(y, self.high, out=y)


def _hidden_forward(mlp: NumpyMLP, h: np.ndarray) -> np.ndarray:
    """The middle layers, each followed by the activation (NumpyMLP leaves its last one linear)."""
    for w, b in zip(mlp.weights, mlp.biases, strict=True):
        h = h @ w
        h += b
        _activate(h, mlp.activation, np.empty_like(h) if mlp.activation == "elu" else h)
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
    robot = forward.robot if bundle.manifest.kind == "gaussian" else None
    return Policy(bundle, "numpy", forward.normalized, robot=robot)


def load(path: str) -> Policy:
    """Read, verify and load a bundle on the numpy runtime."""
    return policy_from_bundle(read_bundle(path))
