"""How a policy's return (or success rate) changes with the robot's physics: a grid over one or two
terms of `sim.model_scaling` (mass, friction, damping, gain), each point a deterministic evaluation of
the same seeds on the model scaled from its nominal values. Written as a table (CSV) and a picture: a
heat-map for two terms, a line with ±1 standard deviation for one.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.sim.model_scaling import TERMS

METRICS = ("return", "success_rate")
MAX_POINTS = 400


@dataclass(frozen=True)
class GridAxis:
    term: str
    values: tuple[float, ...]


def parse_grid(text: str) -> GridAxis:
    """`mass=0.5:1.5:5` -> GridAxis("mass", 5 values from 0.5 to 1.5); `mass=0.8,1,1.2` lists them."""
    term, sep, spec = text.partition("=")
    term = term.strip()
    if not sep or term not in TERMS:
        raise ConfigError(f"--grid {text!r}: expected TERM=LOW:HIGH:N or TERM=V1,V2,...; "
                          f"valid terms: {', '.join(TERMS)}")
    try:
        if ":" in spec:
            low, high, count = spec.split(":")
            n = int(count)
            if n < 1:
                raise ValueError
            values = tuple(float(v) for v in np.linspace(float(low), float(high), n))
        else:
            values = tuple(float(v) for v in spec.split(","))
    except ValueError:
        raise ConfigError(f"--grid {text!r}: expected {term}=LOW:HIGH:N (N >= 1 points) or "
                          f"{term}=V1,V2,... with numbers") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ConfigError(f"--grid {text!r}: scales must be positive numbers, got {list(values)}")
    return GridAxis(term, values)


class ScalePhysics:
    """Evaluation hook: scales the env's model once it is made (nominal values × the given factors)."""

    def __init__(self, scales: dict[str, float]) -> None:
        self.scales = scales

    def attach(self, env: Any) -> None:
        from robot_rl.sim.model_scaling import ModelScaler
        from robot_rl.sim.rendering import mujoco_handles

        handles = mujoco_handles(env)
        if handles is None:
            raise ConfigError("robustness: the task has no MuJoCo model to scale (it works on the MuJoCo "
                              "and dm_control tasks)")
        ModelScaler(handles[0]).apply(self.scales)

    def frame(self, episode: int, step: int, episode_return: float, info: dict[str, Any]) -> None:
        pass

    def close(self, ok: bool) -> None:
        pass


@dataclass(frozen=True)
class RobustnessResult:
    axes: tuple[GridAxis, ...]
    metric: str
    mean: np.ndarray
    """`(len(axes[0].values),)` or `(len(axes[0].values), len(axes[1].values))`."""
    std: np.ndarray
    episodes: int


def robustness_grid(task: str, policy: Callable[[np.ndarray], np.ndarray], axes: Sequence[GridAxis],
                    episodes: int, seed: int, metric: str = "return",
                    max_steps: int | None = None) -> RobustnessResult:
    """Evaluate `policy` at every grid point (the same seeds seed..seed+episodes-1 at each)."""
    from robot_rl.evaluation import evaluate

    if metric not in METRICS:
        raise ConfigError(f"--metric: {metric!r} is not valid; choose one of: {', '.join(METRICS)}")
    if not 1 <= len(axes) <= 2:
        raise ConfigError("give one or two --grid terms (e.g. --grid mass=0.5:1.5:5 "
                          "--grid friction=0.5:1.5:5)")
    if len({a.term for a in axes}) != len(axes):
        raise ConfigError(f"--grid: the term {axes[0].term!r} is given twice")
    if episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    shape = tuple(len(a.values) for a in axes)
    if math.prod(shape) > MAX_POINTS:
        raise ConfigError(f"--grid: {math.prod(shape)} points; at most {MAX_POINTS}")
    mean, std = np.full(shape, np.nan), np.full(shape, np.nan)
    for index in itertools.product(*(range(n) for n in shape)):
        scales = {a.term: a.values[i] for a, i in zip(axes, index, strict=True)}
        result = evaluate(task, policy, episodes, seed, max_steps=max_steps, hooks=[ScalePhysics(scales)])
        if metric == "success_rate":
            if "success_rate" not in result:
                raise ConfigError(f"--metric success_rate: task {task!r} reports no success; "
                                  "use --metric return")
            mean[index], std[index] = result["success_rate"], 0.0
        else:
            mean[index], std[index] = result["mean_return"], result["std_return"]
    return RobustnessResult(tuple(axes), metric, mean, std, episodes)


def write_table(result: RobustnessResult, path: Path) -> Path:
    """One row per grid point: the terms' scales, mean and std of the metric, episodes."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(a.term for a in result.axes), f"mean_{result.metric}", f"std_{result.metric}",
                         "episodes"])
        for index in itertools.product(*(range(len(a.values)) for a in result.axes)):
            scales = [f"{a.values[i]:.6g}" for a, i in zip(result.axes, index, strict=True)]
            writer.writerow([*scales, f"{result.mean[index]:.6g}", f"{result.std[index]:.6g}",
                             result.episodes])
    return path


def format_table(result: RobustnessResult) -> str:
    """The grid as text: rows = the first term's scales, columns = the second's (or the metric)."""
    first = result.axes[0]
    if len(result.axes) == 1:
        lines = [f"{first.term:>10}  {'mean ' + result.metric:>16}  {'std':>10}"]
        cells = zip(first.values, result.mean, result.std, strict=True)
        lines += [f"{v:>10.3g}  {m:>16.2f}  {s:>10.2f}" for v, m, s in cells]
        return "\n".join(lines)
    second = result.axes[1]
    corner = f"{first.term} \\ {second.term}"
    head = f"{corner:>18}" + "".join(f"{v:>10.3g}" for v in second.values)
    rows = [f"{v:>18.3g}" + "".join(f"{x:>10.1f}" for x in result.mean[i])
            for i, v in enumerate(first.values)]
    return "\n".join([f"mean {result.metric} over {result.episodes} episodes", head, *rows])


def draw(result: RobustnessResult, out: Path, title: str) -> Path:
    """Heat-map (two terms, each cell annotated) or line with a ±1 std band (one term)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plural = "s" if result.episodes > 1 else ""
    label = f"mean {result.metric.replace('_', ' ')} ({result.episodes} episode{plural} per point)"
    if len(result.axes) == 1:
        axis = result.axes[0]
        fig, ax = plt.subplots(figsize=(6, 4.2))
        x = np.array(axis.values)
        ax.plot(x, result.mean, "o-")
        ax.fill_between(x, result.mean - result.std, result.mean + result.std, alpha=0.25, lw=0)
        ax.axvline(1.0, color="grey", ls="--", lw=1)
        ax.set_xlabel(f"{axis.term} scale (1 = nominal)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    else:
        rows, cols = result.axes
        fig, ax = plt.subplots(figsize=(1.1 * len(cols.values) + 3, 0.8 * len(rows.values) + 2.2))
        image = ax.imshow(result.mean, origin="lower", cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(cols.values)), [f"{v:.3g}" for v in cols.values])
        ax.set_yticks(range(len(rows.values)), [f"{v:.3g}" for v in rows.values])
        ax.set_xlabel(f"{cols.term} scale (1 = nominal)")
        ax.set_ylabel(f"{rows.term} scale (1 = nominal)")
        low, high = np.nanmin(result.mean), np.nanmax(result.mean)
        for i, j in itertools.product(range(len(rows.values)), range(len(cols.values))):
            value = result.mean[i, j]
            bright = high > low and (value - low) / (high - low) > 0.6
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8,
                    color="black" if bright else "white")
        fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
