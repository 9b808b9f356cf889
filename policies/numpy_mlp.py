"""An MLP forward pass in numpy alone: the network a robot runs, and the trainer's fast acting path.

Layers are `(W (out, in), b (out,))` pairs as torch stores them (`y = x @ W.T + b`), with the
activation after every layer but the last. Weights are transposed and made contiguous once, so a
call is one matmul, one add and one activation per layer: a few microseconds for a 64×64 network,
where a torch forward of one observation costs tens of microseconds of framework overhead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ACTIVATIONS = ("tanh", "relu", "elu")


class NumpyMLP:
    """`__call__(x)`: `(batch, in_dim)` or `(in_dim,)` float32 → `(batch, out_dim)` or `(out_dim,)`."""

    def __init__(self, layers: Sequence[tuple[np.ndarray, np.ndarray]], activation: str,
                 dtype: type = np.float32) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: {activation!r} is not valid; "
                             f"choose one of: {', '.join(ACTIVATIONS)}")
        if not layers:
            raise ValueError("an MLP needs at least one layer")
        self.activation = activation
        self.weights = [np.ascontiguousarray(np.asarray(w, dtype=dtype).T) for w, _ in layers]
        self.biases = [np.asarray(b, dtype=dtype).copy() for _, b in layers]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.ndim != 2 or b.shape != (w.shape[1],):
                raise ValueError(f"layer {i}: weight {w.T.shape} and bias {b.shape} do not fit")
            if i and self.weights[i - 1].shape[1] != w.shape[0]:
                raise ValueError(f"layer {i}: input size {w.shape[0]} != layer {i - 1}'s output size "
                                 f"{self.weights[i - 1].shape[1]}")
        self.in_dim = self.weights[0].shape[0]
        self.out_dim = self.weights[-1].shape[1]
        self.dtype = dtype

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w
            h += b
            if i != last:
                h = _activate(h, self.activation)
        return h


def _activate(h: np.ndarray, name: str) -> np.ndarray:
    if name == "tanh":
        return np.tanh(h, out=h)
    if name == "relu":
        return np.maximum(h, 0, out=h)
    return np.where(h > 0, h, np.expm1(np.minimum(h, 0)))  # elu, alpha 1
