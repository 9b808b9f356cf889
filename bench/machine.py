"""What every benchmark records about the machine it ran on (imported by the scripts beside it)."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Timed:
    """Wraps a callable and sums the seconds spent in it (where a training loop's time goes)."""

    def __init__(self, func: Callable[..., object]) -> None:
        self.func, self.seconds = func, 0.0

    def __call__(self, *a: object, **kw: object) -> object:
        start = time.perf_counter()
        try:
            return self.func(*a, **kw)
        finally:
            self.seconds += time.perf_counter() - start
