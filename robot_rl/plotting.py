"""Comparing runs: curves against environment steps and wall time, the seeds of one configuration
grouped as their mean with a 95% bootstrap confidence band (as rliable's and the RL Zoo's plots do),
one colour per configuration, and a CSV of exactly what was drawn beside the PNG.

Runs belong to one configuration when their resolved config.yaml files are equal but for `seed` and
the `log:` section (which changes nothing in what is learned). Each run's curve is interpolated onto a
grid common to its group (the steps, or seconds, that every run of the group reached), so that seeds
logged at different steps average point by point.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError

# --metric -> the progress.csv column it reads.
METRICS = {"return": "episode_return", "eval_return": "eval_return", "success_rate": "success_rate"}
AXES = {"env_steps": "step", "wall_time_s": "time_s"}
CSV_COLUMNS = ("configuration", "axis", "x", "mean", "ci_low", "ci_high", "runs")
GRID_POINTS = 100


@dataclass(frozen=True)
class RunCurve:
    """One run's logged metric, rows where it is finite."""

    run_dir: Path
    group: str
    """The run's configuration without its seed (a canonical string): equal for seeds of one launch."""
    flat: dict[str, Any]
    """The configuration flattened to dotted keys (without seed and log), for labels."""
    columns: dict[str, np.ndarray]
    """"step", "time_s" and the metric's column, each `(rows,)`."""


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tuple(data) if isinstance(data, list) else data}


def read_run_curve(run_dir: str | Path, metric: str) -> RunCurve:
    """A run directory's progress.csv and config.yaml; ConfigError naming what is missing."""
    import yaml

    if metric not in METRICS:
        raise ConfigError(f"--metric: {metric!r} is not valid; choose one of: {', '.join(METRICS)}")
    run_dir = Path(run_dir)
    progress, config_file = run_dir / "progress.csv", run_dir / "config.yaml"
    if not progress.is_file() or not config_file.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (needs progress.csv and config.yaml)")
    try:
        config = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{config_file}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{config_file}: not a run's config (a mapping of keys to values)")
    flat = {k: v for k, v in _flatten(config).items() if k != "seed" and not k.startswith("log.")}
    column = METRICS[metric]
    with open(progress, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or column not in rows[0]:
        raise ConfigError(f"{run_dir}: progress.csv has no {column!r} column (--metric {metric}); "
                          f"columns: {', '.join(rows[0]) if rows else 'none (no rows yet)'}")

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else math.nan
        except ValueError:
            return math.nan

    table = np.array([[number(r.get("step")), number(r.get("time_s")), number(r.get(column))] for r in rows])
    table = table[np.isfinite(table).all(axis=1)]
    if len(table) == 0:
        raise ConfigError(f"{run_dir}: no row of progress.csv has a finite {column!r} yet")
    table[:, 1] = training_time(table[:, 1])
    group = repr(sorted(flat.items()))
    return RunCurve(run_dir, group, flat, {"step": table[:, 0], "time_s": table[:, 1], column: table[:, 2]})


def training_time(time_s: np.ndarray) -> np.ndarray:
    """Wall time across resumes: a resumed run's `time_s` starts again from 0, so each later session
    is shifted by where the one before it stopped."""
    session = np.asarray(time_s, dtype=np.float64)
    out = session.copy()
    for i in np.flatnonzero(np.diff(session) < 0) + 1:
        out[i:] += session[i - 1]
    return out


def bootstrap_ci(values: np.ndarray, level: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs and its percentile bootstrap interval: `values` `(runs, points)` -> three
    `(points,)` arrays. Runs are resampled with replacement; one run gives a zero-width band."""
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean(axis=0)
    n = values.shape[0]
    if n == 1:
        return mean, mean.copy(), mean.copy()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    means = values[picks].mean(axis=1)  # (resamples, points)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
    return mean, low, high


def group_curves(curves: Sequence[RunCurve]) -> dict[str, list[RunCurve]]:
    """Runs by configuration, in the order first seen."""
    groups: dict[str, list[RunCurve]] = {}
    for curve in curves:
        groups.setdefault(curve.group, []).append(curve)
    return groups


def group_labels(groups: dict[str, list[RunCurve]]) -> dict[str, str]:
    """A short label per configuration: task and algorithm, and the settings in which they differ."""
    flats = [members[0].flat for members in groups.values()]
    keys = sorted({k for f in flats for k in f})
    differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1 and k not in ("task", "algo")]
    labels = {}
    for group, members in groups.items():
        flat = members[0].flat
        parts = [f"{flat.get('task')} {flat.get('algo')}"]
        parts += [f"{k}={flat.get(k)}" for k in differing[:3]]
        if len(differing) > 3:
            parts.append(f"(+{len(differing) - 3} more)")
        labels[group] = ", ".join(parts) + f" [{len(members)} seed{'s' if len(members) > 1 else ''}]"
    return labels


def aggregate(members: Sequence[RunCurve], axis: str, column: str) -> dict[str, np.ndarray]:
    """The group's curve on `axis` ("step" or "time_s"): x, mean, ci_low, ci_high over a common grid."""
    start = max(float(m.columns[axis][0]) for m in members)
    stop = min(float(m.columns[axis][-1]) for m in members)
    if stop <= start:
        x = np.array([stop])
    else:
        x = np.linspace(start, stop, GRID_POINTS)
    values = np.stack([np.interp(x, m.columns[axis], m.columns[column]) for m in members])
    mean, low, high = bootstrap_ci(values)
    return {"x": x, "mean": mean, "ci_low": low, "ci_high": high}


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, metric: str = "return") -> tuple[Path, Path]:
    """Draw the comparison to `out` (.png) and write the same numbers to `out` with suffix .csv."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out: {str(out)!r} must end in .png (the CSV is written beside it)")
    if not out.parent.is_dir():
        raise ConfigError(f"--out: the folder {str(out.parent)!r} does not exist")
    if not run_dirs:
        raise ConfigError("name at least one run directory")
    curves = [read_run_curve(d, metric) for d in run_dirs]
    column = METRICS[metric]
    groups = group_curves(curves)
    labels = group_labels(groups)
    table = {(g, axis_name): aggregate(members, axis, column)
             for g, members in groups.items() for axis_name, axis in AXES.items()}
    csv_path = out.with_suffix(".csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for (g, axis_name), curve in table.items():
            for i in range(len(curve["x"])):
                writer.writerow([labels[g], axis_name, f"{curve['x'][i]:.6g}", f"{curve['mean'][i]:.6g}",
                                 f"{curve['ci_low'][i]:.6g}", f"{curve['ci_high'][i]:.6g}", len(groups[g])])
    _draw(table, labels, metric, out)
    return out, csv_path


def _draw(table: dict[tuple[str, str], dict[str, np.ndarray]], labels: dict[str, str], metric: str,
          out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    titles = {"env_steps": "environment steps", "wall_time_s": "wall time (s)"}
    for ax, axis_name in zip(axes, AXES, strict=True):
        for i, (group, label) in enumerate(labels.items()):
            curve, colour = table[(group, axis_name)], colours[i % len(colours)]
            ax.plot(curve["x"], curve["mean"], color=colour, label=label)
            ax.fill_between(curve["x"], curve["ci_low"], curve["ci_high"], color=colour, alpha=0.25, lw=0)
        ax.set_xlabel(titles[axis_name])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{metric.replace('_', ' ')} (mean, 95% bootstrap CI over seeds)")
    axes[0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
