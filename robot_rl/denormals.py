"""Denormal floats flushed to zero while a CPU update runs (a numerical speed concern, not an algorithm's)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats (|x| < 1.2e-38) to zero for the duration (then back to torch's default).

    Adam's second-moment estimates of dead ReLU units decay geometrically into the denormal range,
    where CPU arithmetic is 10-100× slower: without this, the optimizer step alone took most of a
    CartPole update. Values that small are zero for every purpose here.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
