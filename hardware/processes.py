"""The processes a launch runner supervises (the HIL and ROS 2 launch kinds), and how they are stopped.

`Supervisor` is the one way a runner starts children. Whatever ends the runner (its work done, an
error, SIGINT or SIGTERM to the launcher) its `with` block stops every child it started, the last
started first (the deployment before the emulator, the policy node before the bridge), waits for
each, and kills what is left; a signal to the launcher is forwarded as that signal. Children run in
their own process group, so a Ctrl-C in the terminal reaches only the launcher, which stops them in
order; on Linux each child also gets SIGTERM if the launcher dies without cleaning up (kill -9): all
at once then, so a deployment may see its device vanish first (it reports the lost link), and the
launcher's temporary folder stays.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_process(process: subprocess.Popen[bytes], timeout: float, first: int = signal.SIGINT) -> None:
    """`first` (SIGINT: a clean stop: deactivate, send the safe command, close), then SIGTERM, then
    SIGKILL; each of the signals gets half of `timeout` seconds (one signal the whole of it when
    `first` is SIGTERM). Returns once the process has exited."""
    signals = [first] if first == signal.SIGTERM else [first, signal.SIGTERM]
    for sig in signals:
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout / len(signals))
        except subprocess.TimeoutExpired:
            continue
    if process.poll() is None:
        process.kill()
        process.wait()


def _child_setup(parent: int) -> Callable[[], None]:
    """A `preexec_fn`: the child gets its own process group (a terminal's Ctrl-C reaches only the
    launcher; `process_group=0` needs Python 3.11), and on Linux SIGTERM when its parent dies (prctl
    PR_SET_PDEATHSIG)."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork: the child only calls it

    def preexec() -> None:
        os.setpgid(0, 0)
        if prctl is not None:
            prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before the line above: go now
                os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class Supervisor:
    """Starts children and guarantees they are gone when the `with` block ends (see the module).

    Inside the block SIGINT and SIGTERM no longer end the launcher at once: they set `signal_received`
    (the runner's loop checks `stopping` and returns `exit_code()`), and the block's exit forwards
    the signal to the children.
    """

    def __init__(self, stop_timeout: float) -> None:
        self.stop_timeout = stop_timeout
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.signal_received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Supervisor:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signal_received is None:
            self.signal_received = signum

    @property
    def stopping(self) -> bool:
        """A stop signal arrived: the runner should return `exit_code()`."""
        return self.signal_received is not None

    @property
    def signal_name(self) -> str:
        """The received stop signal's name ("SIGTERM"), or "" before one arrived."""
        return "" if self.signal_received is None else signal.Signals(self.signal_received).name

    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it."""
        return 128 + (self.signal_received or 0)

    def start(self, name: str, cmd: Sequence[str], env: Mapping[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        """Start `cmd` as a supervised child named `name` (in its own process group)."""
        process = subprocess.Popen(list(cmd), env=None if env is None else dict(env),
                                   preexec_fn=_child_setup(os.getpid()))
        self.children.append((name, process))
        return process

    def sleep(self, seconds: float) -> None:
        """Sleep, unless a stop signal has arrived."""
        if not self.stopping:
            time.sleep(seconds)

    def stop_all(self) -> None:
        """Stop every child, the last started first: the received signal forwarded (SIGINT when the
        runner ends on its own), then SIGTERM, then SIGKILL after `stop_timeout`."""
        first = self.signal_received or signal.SIGINT
        for name, process in reversed(self.children):
            if process.poll() is None:
                print(f"robot-rl launch: stopping {name}", file=sys.stderr, flush=True)
                stop_process(process, self.stop_timeout, first)

    def __exit__(self, *exc: Any) -> None:
        try:
            self.stop_all()
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous.clear()
