"""A few lines of text drawn on a video frame (task, step, return, success), with Pillow (a matplotlib
dependency, so in the train extra). The text sits on a dark box so it reads on any background."""

from __future__ import annotations

import functools
from collections.abc import Sequence
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
    """A copy of the `(h, w, 3)` uint8 frame with `lines` in its top-left corner."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    size = max(10, image.height // 30)
    font, draw = _font(size), ImageDraw.Draw(image, "RGBA")
    text = "\n".join(lines)
    left, top, right, bottom = draw.multiline_textbbox((6, 4), text, font=font, spacing=2)
    draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill=(0, 0, 0, 150))
    draw.multiline_text((6, 4), text, font=font, fill=(255, 255, 255, 255), spacing=2)
    return np.asarray(image)


def episode_lines(task: str, episode: int, step: int, episode_return: float,
                  success: bool | None = None, extra: str | None = None) -> list[str]:
    """The overlay of one frame: what is shown, in what order."""
    lines = [task, f"episode {episode}  step {step}", f"return {episode_return:.1f}"]
    if success is not None:
        lines.append(f"success {'yes' if success else 'no'}")
    if extra:
        lines.append(extra)
    return lines
