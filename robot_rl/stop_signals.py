"""SIGINT and SIGTERM as a request to stop at the next safe point, shared by `robot-rl deploy` (a control
loop: the safe command, DISABLE, the report) and `robot-rl train` (a trainer: a final checkpoint, then
`--resume`). A KeyboardInterrupt raised mid-I/O or mid-update instead would leave a device enabled or
a half-updated network; a process manager's SIGTERM would end the process with no cleanup at all.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, Protocol


class Stoppable(Protocol):
    def request_stop(self, reason: str = ...) -> None: ...


@contextlib.contextmanager
def stop_on_signals(target: Stoppable, received: list[int]) -> Iterator[None]:
    """While inside: SIGINT and SIGTERM call `target.request_stop(<signal name>)` (it stops at its next
    safe point) and the first signal is appended to `received` (the caller exits 128 + its number).
    The previous handlers are restored on the way out. Off the main thread (a sweep running trainings in
    threads) Python allows no handler: nothing is installed there, the process's own handling stays."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        if not received:
            received.append(signum)
        target.request_stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class StopRelay:
    """A `request_stop` target for before the real one exists (a trainer still building its
    environments): the request is kept and passed on by `attach`. Entering `stop_on_signals` first
    also means forked workers (async vector envs) inherit a handler that only records, so a terminal's
    Ctrl-C to the whole process group does not kill them under the trainer."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.target: Stoppable | None = None

    def request_stop(self, reason: str = "stopped") -> None:
        self.reason = reason
        if self.target is not None:
            self.target.request_stop(reason)

    def attach(self, target: Stoppable) -> None:
        self.target = target
        if self.reason is not None:
            target.request_stop(self.reason)
