"""The evaluation hook that films episodes: each frame rendered headless (sim.rendering), the overlay
drawn on it (robot_rl.overlay), and the frame sent to a video file or a window.

`VideoRecorder(required=False)` is what training uses for `eval.video: true`: without a renderer or
ffmpeg it says so once on stderr and the run goes on without videos (training never needs a renderer).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robot_rl.errors import RobotRLError
from robot_rl.overlay import draw_text, episode_lines

_WARNED: set[str] = set()


class FrameSink(Protocol):
    def write(self, frame: np.ndarray) -> None: ...

    def close(self) -> Any: ...

    def abort(self) -> None: ...


def control_fps(env: Any) -> float:
    """Frames per second that play the episode in real time: one frame per control period."""
    spec = getattr(env.unwrapped, "task_spec", None)
    if spec is not None and spec.control_period > 0:
        return 1.0 / spec.control_period
    return float(env.metadata.get("render_fps") or 30)


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"robot-rl: warning: no evaluation videos: {message}", file=sys.stderr)


def eval_video(run_dir: Path, task: str, step: int) -> tuple[list[VideoRecorder], str | None]:
    """Training's `eval.video`: (hooks, render_mode) for `evaluate` that film the evaluation's first
    episode to `videos/eval_step<STEP>.mp4`. Without a renderer, or for a task with no frames (grid
    worlds), one warning and no video: training never needs a renderer."""
    from robot_rl.sim.rendering import frame_render_mode

    try:
        render_mode = frame_render_mode(task)
    except RobotRLError as err:
        _warn_once(str(err))
        return [], None
    folder = Path(run_dir) / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    return [VideoRecorder(folder / f"eval_step{step:09d}.mp4", task, episodes=1, required=False)], render_mode


class VideoRecorder:
    """Films the first `episodes` episodes of an evaluation (all if None) into `path` (an .mp4), or into
    a window when `path` is None. `native_size`: a task that is not MuJoCo keeps its own frame size."""

    def __init__(self, path: str | Path | None, task: str, settings: Any = None, episodes: int | None = None,
                 required: bool = True, overlay: bool = True, native_size: bool = False) -> None:
        self.path = None if path is None else Path(path)
        self.task, self.settings, self.episodes = task, settings, episodes
        self.required, self.overlay, self.native_size = required, overlay, native_size
        self.written: Path | None = None
        self.frames = 0
        self._renderer: Any = None
        self._sink: FrameSink | None = None

    def attach(self, env: Any) -> None:
        from robot_rl.sim.rendering import FrameRenderer
        from robot_rl.video import VideoWriter

        try:
            if self.path is not None:
                sink: FrameSink = VideoWriter(self.path, fps=control_fps(env))
            else:
                from robot_rl.window import Window

                sink = Window(self.task, fps=control_fps(env))
            self._renderer = FrameRenderer(env, self.settings, native_size=self.native_size)
        except RobotRLError as err:
            if self.required:
                raise
            _warn_once(str(err))  # once per process, not at every evaluation
            return
        self._sink = sink

    def frame(self, episode: int, step: int, episode_return: float, info: dict[str, Any]) -> None:
        if self._sink is None or (self.episodes is not None and episode >= self.episodes):
            return
        image = self._renderer.render()
        if self.overlay:
            image = draw_text(image, episode_lines(self.task, episode, step, episode_return, info))
        self._sink.write(image)
        self.frames += 1

    def close(self, ok: bool) -> None:
        try:
            if self._sink is not None:
                if ok:
                    self.written = self._sink.close()
                else:
                    self._sink.abort()
        finally:
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = self._sink = None
