"""Atomic checkpoints and files: a run killed at any instant leaves its last good checkpoint intact.

A file is written to a temporary name in the same folder, flushed and fsync'ed, then renamed over the
target (`os.replace` is atomic on POSIX). Checkpoints hold only tensors, numbers, strings, lists and
dicts, so they load with `torch.load(weights_only=True)`: nothing is unpickled.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from robot_rl.errors import RobotRLError

CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best.pt"
"""The checkpoint of the best periodic evaluation so far (outside the rotation of step_*.pt)."""
_NAME = re.compile(r"^step_(\d{12})\.pt$")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:012d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, oldest first (temporary files are ignored)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Save `state` as the checkpoint of `step`, then delete all but the newest `keep`."""
    path = _write_state(checkpoint_path(run_dir, step), state)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which
        raise RobotRLError(f"checkpoint {path} cannot be read: {type(err).__name__}: {err}") from None


def load_latest_checkpoint(run_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint that loads; a damaged newest one falls back to the one before."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise RobotRLError(f"{run_dir}: no checkpoint in {Path(run_dir) / CHECKPOINT_DIR}")
    errors = []
    for _, path in reversed(checkpoints):
        try:
            return load_checkpoint(path), path
        except RobotRLError as err:
            errors.append(str(err))
    raise RobotRLError(f"{run_dir}: no readable checkpoint ({'; '.join(errors)})")


def save_best_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Replace checkpoints/best.pt atomically with `state` (a trainer's `best_state()`)."""
    return _write_state(Path(run_dir) / CHECKPOINT_DIR / BEST_NAME, state)


def _write_state(path: Path, state: dict[str, Any]) -> Path:
    """`torch.save` to `path`, atomically."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_run_checkpoint(run_dir: str | Path, which: str = "latest") -> tuple[dict[str, Any], Path]:
    """A run's checkpoint by name: `latest` (the newest readable), `best` (best periodic evaluation) or
    the path of a checkpoint file."""
    if which == "latest":
        return load_latest_checkpoint(run_dir)
    path = Path(run_dir) / CHECKPOINT_DIR / BEST_NAME if which == "best" else Path(which)
    if not path.is_file():
        hint = (" (written only by runs with eval.every_steps > 0 and eval.keep_best)" if which == "best"
                else "; give latest, best or the path of a checkpoint file")
        raise RobotRLError(f"checkpoint {which!r}: {path} does not exist{hint}")
    return load_checkpoint(path), path


def to_checkpoint_state(state: dict[str, Any]) -> dict[str, Any]:
    """numpy arrays → tensors, numpy scalars → Python numbers: what `weights_only` loading accepts."""
    import numpy as np
    import torch

    def convert(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return torch.as_tensor(v)
        return v.item() if isinstance(v, np.generic) else v

    return {k: convert(v) for k, v in state.items()}


def from_checkpoint_state(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `to_checkpoint_state` for one level: tensors → numpy arrays."""
    import torch

    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
