"""A few lines of text drawn on a video frame (task, step, return, success), with Pillow (a matplotlib
dependency, so in the train extra). The text sits on a dark box so it reads on any background."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


@functools.cache
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: scalable
    except (TypeError, OSError):
        return ImageFont.load_default()


def draw_text(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """A copy of the `(h, w, 3)` uint8 frame with `lines` in its top-left corner.

    Only the corner the text covers goes through Pillow (a whole 480x480 frame costs ~4 ms a frame)."""
    from PIL import Image, ImageDraw

    out = np.array(frame, dtype=np.uint8, copy=True)
    font, text = _font(max(10, out.shape[0] // 30)), "\n".join(lines)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = measure.multiline_textbbox((6, 4), text, font=font, spacing=2)
    height, width = out.shape[:2]
    box = (max(left - 4, 0), max(top - 3, 0), min(right + 4, width - 1), min(bottom + 3, height - 1))
    corner = Image.fromarray(np.ascontiguousarray(out[: box[3] + 1, : box[2] + 1]))
    draw = ImageDraw.Draw(corner, "RGBA")
    draw.rectangle(box, fill=(0, 0, 0, 150))
    draw.multiline_text((6, 4), text, font=font, fill=(255, 255, 255, 255), spacing=2)
    out[: box[3] + 1, : box[2] + 1] = np.asarray(corner)
    return out


def episode_lines(task: str, episode: int, step: int, episode_return: float,
                  info: Mapping[str, Any] | None = None) -> list[str]:
    """The overlay of one frame: task, episode and step, return, and what the step's info says of
    success: `success`/`is_success` (a flag) or `consecutive_successes` (the cube tasks' goal count)."""
    lines = [task, f"episode {episode}  step {step}", f"return {episode_return:.1f}"]
    info = info or {}
    flag = info.get("success", info.get("is_success"))
    if flag is not None:
        lines.append(f"success {'yes' if flag else 'no'}")
    if info.get("consecutive_successes") is not None:
        lines.append(f"successes {int(info['consecutive_successes'])}")
    return lines
