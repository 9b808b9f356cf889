"""The numpy runtime: what a robot computer runs. Needs numpy and nothing else (no torch, no onnx).

One observation costs only a few numpy calls more than a bare chain of matmuls, because everything
affine is folded into the layers once, at load:

- Normaliser: clip((x − mean) / std, ±c) feeds W₀, so W₀ z + b₀ = (W₀/std) x' + (b₀ − (W₀/std) mean)
  with x' = x clipped to [mean − c·std, mean + c·std] (the same clip moved through a monotone map):
  two calls (max, min) instead of four.
- Robot units (unsquashed Gaussian policies): offset + scale · (W_L h + b_L) = (scale·W_L) h +
  (scale·b_L + offset), then the clip to [low, high]. A tanh head maps after its tanh instead.
- Biases: each layer's weight matrix carries its bias as an extra row and each layer's input buffer
  ends in a constant 1 (the "bias trick"), so a layer is one matmul and one activation.

The first and last layers run in float64, so folding loses nothing (W₀/std is large where a feature
barely varies, and float32 would cancel there); the hidden layers run in float32, as in training
(numpy's float32 tanh is also several times faster than its float64 one). Results differ from
training's float32 arithmetic by round-off only (about 1e-7 relative); the tests hold the numpy,
onnx and torch runtimes within 1e-5 of each other.
"""

from __future__ import annotations

import numpy as np

from robot_rl.policies.bundle import Bundle, Policy, read_bundle
from robot_rl.policies.numpy_mlp import ACTIVATIONS

_F32, _F64 = np.float32, np.float64


def _augment(w: np.ndarray, b: np.ndarray, dtype: type) -> np.ndarray:
    """`(in + 1, out)`: Wᵀ with the bias as its last row, so that [x, 1] @ A = W x + b."""
    return np.ascontiguousarray(np.vstack([w.T, b[None, :]]), dtype=dtype)


class NumpyForward:
    """The bundle's network on raw, validated observations `(obs_dim,)` or `(n, obs_dim)` float64.

    `normalized(x)`: the deterministic normalised action (gaussian) or the Q-values (argmax);
    `robot(x)`: gaussian bundles, the action in robot units. Both return fresh float64 arrays.
    """

    def __init__(self, bundle: Bundle) -> None:
        m = bundle.manifest
        if m.activation not in ACTIVATIONS:
            raise ValueError(f"activation {m.activation!r}")
        spec = m.spec
        layers = [(w.astype(_F64), b.astype(_F64)) for w, b in bundle.layers]
        w0, b0 = layers[0]
        self.clip = None
        if m.normalizer is not None:
            n = m.normalizer
            w0 = w0 / n.std
            b0 = b0 - w0 @ n.mean
            self.clip = (n.mean - n.clip * n.std, n.mean + n.clip * n.std)
        layers[0] = (w0, b0)
        self.activation = m.activation
        self.squash = m.kind == "gaussian" and m.squash == "tanh"
        self.scale, self.offset, self.low, self.high = spec.action.arrays
        self.single = len(layers) == 1
        self.first = _augment(*layers[0], _F64)
        self.middle = [_augment(w, b, _F32) for w, b in layers[1:-1]]
        w_last, b_last = layers[-1]
        self.last = _augment(w_last, b_last, _F64)
        self.last_robot = None
        if m.kind == "gaussian" and not self.squash:
            self.last_robot = _augment(w_last * self.scale[:, None], b_last * self.scale + self.offset, _F64)
        # scratch for one observation: [x, 1], then per hidden layer [h, 1] (float32), then the
        # input of the last layer [h, 1] in float64
        self._xa = np.ones(spec.obs_dim + 1, dtype=_F64)
        self._x = self._xa[:-1]
        widths = [w.shape[0] for w, _ in bundle.layers[:-1]]
        self._ha = [np.ones(h + 1, dtype=_F32) for h in widths]
        self._hv = [a[:-1] for a in self._ha]
        self._h0 = np.empty(widths[0], dtype=_F64) if widths else None
        self._z = [np.empty(h, dtype=_F32) for h in widths[1:]]
        self._neg = [np.empty(h, dtype=_F32) for h in widths]
        self._ta = np.ones(widths[-1] + 1, dtype=_F64) if widths else None

    # ---- one observation, in preallocated buffers
    def _one(self, obs: np.ndarray, last: np.ndarray) -> np.ndarray:
        x = self._x
        if self.clip is not None:
            np.maximum(obs, self.clip[0], out=x)
            np.minimum(x, self.clip[1], out=x)
        else:
            x[...] = obs
        if self.single:
            return self._xa @ last
        hv = self._hv[0]
        hv[...] = np.matmul(self._xa, self.first, out=self._h0)  # float64 → float32
        tanh = self.activation == "tanh"
        if tanh:
            np.tanh(hv, out=hv)
        else:
            _activate(hv, hv, self.activation, self._neg[0])
        for k, w in enumerate(self.middle):
            z = np.matmul(self._ha[k], w, out=self._z[k])
            if tanh:
                np.tanh(z, out=self._hv[k + 1])
            else:
                _activate(z, self._hv[k + 1], self.activation, self._neg[k + 1])
        ta = self._ta
        assert ta is not None  # made in __init__ for every network with a hidden layer
        ta[:-1] = self._hv[-1]  # float32 → float64
        return ta @ last

    # ---- a batch `(n, obs_dim)`
    def _batch(self, obs: np.ndarray, last: np.ndarray) -> np.ndarray:
        x = obs if self.clip is None else np.minimum(np.maximum(obs, self.clip[0]), self.clip[1])
        if not self.single:
            h = (x @ self.first[:-1] + self.first[-1]).astype(_F32)
            _activate(h, h, self.activation, np.empty_like(h))
            for w in self.middle:
                h = h @ w[:-1] + w[-1]
                _activate(h, h, self.activation, np.empty_like(h))
            x = h.astype(_F64)
        return x @ last[:-1] + last[-1]

    def normalized(self, obs: np.ndarray) -> np.ndarray:
        y = self._one(obs, self.last) if obs.ndim == 1 else self._batch(obs, self.last)
        return np.tanh(y, out=y) if self.squash else y

    def robot(self, obs: np.ndarray) -> np.ndarray:
        if self.last_robot is not None:
            y = self._one(obs, self.last_robot) if obs.ndim == 1 else self._batch(obs, self.last_robot)
        else:
            y = self.normalized(obs)
            y *= self.scale
            y += self.offset
        np.maximum(y, self.low, out=y)
        return np.minimum(y, self.high, out=y)


def _activate(z: np.ndarray, out: np.ndarray, name: str, scratch: np.ndarray) -> None:
    """out = act(z) (`out` may be `z`); elu(x) = max(x, 0) + expm1(min(x, 0)) (alpha 1), as torch's."""
    if name == "tanh":
        np.tanh(z, out=out)
    elif name == "relu":
        np.maximum(z, 0, out=out)
    else:
        np.minimum(z, 0, out=scratch)
        np.expm1(scratch, out=scratch)
        np.maximum(z, 0, out=out)
        out += scratch


def policy_from_bundle(bundle: Bundle) -> Policy:
    forward = NumpyForward(bundle)
    robot = forward.robot if bundle.manifest.kind == "gaussian" else None
    return Policy(bundle, "numpy", forward.normalized, robot=robot)


def load(path: str) -> Policy:
    """Read, verify and load a bundle on the numpy runtime."""
    return policy_from_bundle(read_bundle(path))
