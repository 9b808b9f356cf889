"""Frames shown in a window (matplotlib, paced to real time), for `robot-rl play` without `--video`."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from robot_rl.errors import RobotRLError


class NoDisplay(RobotRLError):
    """No display to open a window on."""


class Window:
    """A matplotlib figure showing one frame after another, at most `fps` frames per second."""

    def __init__(self, title: str, fps: float) -> None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise NoDisplay("no display to open a window on (DISPLAY is not set); write a video instead "
                            "with --video out.mp4")
        import matplotlib

        if matplotlib.get_backend().lower() in ("agg", "pdf", "svg", "ps", "cairo", "template"):
            try:
                matplotlib.use("TkAgg")
            except ImportError as err:
                raise NoDisplay(f"matplotlib has no interactive backend ({err}); write a video instead "
                                "with --video out.mp4") from None
        import matplotlib.pyplot as plt

        self._plt = plt
        self._figure = plt.figure(title)
        self._image: Any = None
        self._period = 1.0 / fps
        self._next = time.perf_counter()

    def write(self, frame: np.ndarray) -> None:
        if not self._plt.fignum_exists(self._figure.number):
            raise KeyboardInterrupt  # the user closed the window: stop as Ctrl-C does
        if self._image is None:
            self._image = self._figure.gca().imshow(frame)
            self._figure.gca().set_axis_off()
        else:
            self._image.set_data(frame)
        self._next += self._period
        self._plt.pause(max(self._next - time.perf_counter(), 1e-3))

    def close(self) -> None:
        self._plt.close(self._figure)

    def abort(self) -> None:
        self.close()
