"""What a training run writes as it goes: progress.csv, TensorBoard events, a progress bar, a plot.

Shared by every trainer (on-policy and DQN), so that all runs look alike: one CSV row per update with
`step, update, time_s, sps, episode_return, episode_length, episodes, eval_return` first and the
algorithm's own metrics after, the same rows as `train/<name>` scalars in TensorBoard, and
`learning_curve.png` at the end. Rows are appended and flushed one by one; on resume, the rows logged
after the checkpoint being resumed are dropped (they will be logged again), atomically.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from robot_rl.checkpoint import atomic_write_text
from robot_rl.launch import LogConfig

PROGRESS_FIELDS = ["step", "update", "time_s", "sps", "episode_return", "episode_length", "episodes",
                   "eval_return"]


class RunLog:
    def __init__(self, run_dir: str | Path, config: LogConfig, total_steps: int, description: str,
                 start_step: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.path = self.run_dir / "progress.csv"
        self._writer: Any = None  # torch's SummaryWriter, made on first use
        self._bar: Any = None
        if config.progress_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                             desc=description)
        self._start_step = start_step

    def log(self, row: dict[str, Any]) -> None:
        """Append one row to progress.csv and TensorBoard, and advance the progress bar."""
        new = not self.path.exists() or self.path.stat().st_size == 0
        fields = PROGRESS_FIELDS + sorted(k for k in row if k not in PROGRESS_FIELDS)
        if not new:
            with open(self.path, newline="") as f:
                fields = next(csv.reader(f), fields)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self.scalar(f"train/{key}", value, step)
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix(sps=f"{row.get('sps', 0):.0f}", ret=f"{row.get('episode_return', 0):.1f}")

    def scalar(self, name: str, value: float, step: int) -> None:
        writer = self._tensorboard(step)
        if writer is not None:
            writer.add_scalar(name, value, step)

    def close(self) -> None:
        """End the progress bar and flush the events (the writer stays open for the final scalars)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.flush()

    def finish(self) -> None:
        """Close the writers and draw learning_curve.png (if configured)."""
        self.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.config.plot:
            plot_learning_curve(self.run_dir)

    def _tensorboard(self, step: int):
        if not self.config.tensorboard:
            return None
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run logged after its last checkpoint
            self._writer = SummaryWriter(str(self.run_dir), purge_step=self._start_step or None)
        return self._writer


def truncate_progress(run_dir: str | Path, step: int) -> None:
    """Drop progress rows logged after `step` (the checkpoint a run resumes from)."""
    path = Path(run_dir) / "progress.csv"
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [r for r in body if len(r) == len(header) and _step_of(r) <= step]
    dropped = sum(1 for r in body if r and (len(r) != len(header) or _step_of(r) == math.inf))
    if dropped:
        print(f"{path}: dropped {dropped} unreadable row{'s' if dropped > 1 else ''} (not a progress row "
              f"of {len(header)} columns with a step first)")
    out = io.StringIO()
    csv.writer(out).writerows([header, *kept])
    atomic_write_text(path, out.getvalue())


def _step_of(row: list[str]) -> float:
    """A progress row's step, or inf for a row that is not one (a garbage line never survives)."""
    try:
        step = float(row[0])
    except (ValueError, IndexError):
        return math.inf
    return step if math.isfinite(step) else math.inf


def plot_learning_curve(run_dir: str | Path) -> Path | None:
    """learning_curve.png from progress.csv: mean training return (and evaluations) against steps."""
    run_dir = Path(run_dir)
    path = run_dir / "progress.csv"
    if not path.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [float(r["step"]) for r in rows]
    returns = [float(r["episode_return"] or "nan") for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, returns, label="training episodes (last 20)")
    evals = [(float(r["step"]), float(r["eval_return"])) for r in rows if r.get("eval_return")]
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="deterministic evaluation")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.legend()
    ax.grid(alpha=0.3)
    out = run_dir / "learning_curve.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


