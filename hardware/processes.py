"""Stopping the processes a launch runner supervises (the HIL and ROS 2 launch kinds)."""

from __future__ import annotations

import signal
import subprocess


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGINT (a clean stop: deactivate, send the safe command, close), then SIGTERM, then SIGKILL;
    each of the first two gets half of `timeout` seconds."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout / 2)
        except subprocess.TimeoutExpired:
            continue
    if process.poll() is None:
        process.kill()
        process.wait()
