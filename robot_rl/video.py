"""Writing frames to an H.264 mp4 through the ffmpeg that the `imageio-ffmpeg` wheel ships (no system
ffmpeg needed); ffmpeg encodes in its own process, beside the rendering.

Frames are `(height, width, 3)` uint8 RGB, all of one even size (H.264's 4:2:0 needs even sizes).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, RobotRLError


class VideoUnavailable(RobotRLError):
    """imageio-ffmpeg (the ffmpeg binary) is not installed."""


def _imageio_ffmpeg() -> Any:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise VideoUnavailable("writing a video needs imageio-ffmpeg: pip install imageio-ffmpeg "
                               "(or the train extra: pip install -e '.[train]')") from None
    return imageio_ffmpeg


class VideoWriter:
    """An mp4 file being written, one frame at a time; `close()` (or the with-block) finishes it.

    The file appears complete or not at all: ffmpeg writes `<name>.part.mp4`, renamed on close.
    """

    def __init__(self, path: str | Path, fps: float, quality: float = 6.0) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ConfigError(f"video: {str(self.path)!r} must end in .mp4 (H.264 in an MP4 container)")
        if not self.path.parent.is_dir():
            raise ConfigError(f"video: the folder {str(self.path.parent)!r} does not exist")
        self._ffmpeg = _imageio_ffmpeg()  # fail before anything is rendered
        self.fps = float(fps)
        self.quality = quality
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._writer: Generator[None, Any, None] | None = None
        self._partial = self.path.with_name(self.path.stem + ".part.mp4")

    def write(self, frame: np.ndarray) -> None:
        """Append one `(height, width, 3)` uint8 frame (the first frame fixes the video's size)."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        height, width = frame.shape[:2]
        if self._writer is None:
            if frame.ndim != 3 or frame.shape[2] != 3 or height % 2 or width % 2:
                raise ConfigError(f"video: frames must be (height, width, 3) with even sizes, "
                                  f"got {frame.shape}")
            self._size = (width, height)
            self._writer = self._ffmpeg.write_frames(
                str(self._partial), (width, height), fps=self.fps, codec="libx264", pix_fmt_in="rgb24",
                pix_fmt_out="yuv420p", quality=self.quality, macro_block_size=1,
                output_params=["-preset", "veryfast"], ffmpeg_log_level="error")
            self._writer.send(None)
        elif (width, height) != self._size:
            first_width, first_height = self._size or (0, 0)  # set with the writer
            raise ConfigError(f"video: a frame of {width}x{height} after frames of "
                              f"{first_width}x{first_height}")
        self._writer.send(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file; the path written, or None if no frame was written."""
        if self._writer is None:
            return None
        self._writer.close()
        self._writer = None
        self._partial.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Stop without leaving a file (an error mid-episode)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
            finally:
                self._writer = None
                self._partial.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def video_info(path: str | Path) -> dict[str, Any]:
    """{"codec", "width", "height", "fps", "frames"} of a video file, read back through ffmpeg."""
    ffmpeg = _imageio_ffmpeg()
    reader = ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    frames, _ = ffmpeg.count_frames_and_secs(str(path))
    width, height = meta["size"]
    return {"codec": meta.get("codec", ""), "width": int(width), "height": int(height),
            "fps": float(meta["fps"]), "frames": int(frames)}


def read_video_frames(path: str | Path) -> np.ndarray:
    """All frames of a video, `(frames, height, width, 3)` uint8."""
    reader = _imageio_ffmpeg().read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3) for raw in reader]
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), dtype=np.uint8)
