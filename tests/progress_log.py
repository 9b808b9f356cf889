"""A run's progress.csv as the learning tests read it: its rows and the finite episode returns."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def progress(run: Path) -> tuple[list[dict[str, str]], list[float]]:
    """(every row, the episode returns of the rows that finished an episode, in order)."""
    with open(run / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    returns = [float(r["episode_return"]) for r in rows if not math.isnan(float(r["episode_return"]))]
    return rows, returns
