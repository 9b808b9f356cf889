"""How a policy's return (or success rate) changes with the robot's physics: a grid over one or two
terms of domain randomization (`sim.randomization.TERMS`), each point a deterministic evaluation of the
same seeds with the term's range pinned to one value, [v, v] (so the `Randomizer` of training applies
it, from the nominal model, at every episode start). Written as a table (CSV) and a picture: a heat-map
for two terms, a line with ±1 standard deviation for one.

Pushes (`randomize.push`, sim/randomization/push.py) are three more axes, `push_x`, `push_y` (m/s) and
`push_yaw` (rad/s): a value v pins that component of every push to [v, v], the components not on the grid
stay 0, so a point is one signed, deterministic kick, repeated every `push_interval` seconds (the times
drawn from each episode's seed: the same at every point). `push_x x push_y` maps kick direction and size.
A push needs a floating base and the engine's worlds: a task without them fails before any point runs.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.sim.randomization import TERMS, RandomizationConfig
from robot_rl.sim.randomization.push import PushConfig

METRICS = ("return", "success_rate", "fall_rate")
"""What a grid point reports: the mean return, the share of episodes that succeed (a task reporting
success), or the share that end in a fall (a task reporting `fell`: the quadruped)."""
MAX_POINTS = 400
ALIASES = {"mass": "body_mass_scale", "friction": "geom_friction_scale", "damping": "joint_damping_scale",
           "gain": "actuator_gain_scale"}
"""Short names a --grid may use for the four scales."""
PUSH_TERMS = {"push_x": "x", "push_y": "y", "push_yaw": "yaw"}
"""The push axes, each the `PushConfig` component it pins (x, y in m/s, world frame; yaw in rad/s)."""
DEFAULT_PUSH_INTERVAL = (2.0, 4.0)
"""Seconds between two pushes of a push map (and to the first): bench/quadruped_pushes.py's push_1.0,
2 to 5 pushes in the quadruped's 10-s episode, the first by 4 s."""
_UNITS = {"actuation_delay": "s", "gravity_tilt": "rad, about a random horizontal axis",
          "observation_noise": "std, obs units", "action_noise": "std, action in [-1, 1]",
          "initial_state_noise": "half-width", "push_x": "m/s added to the base, world x",
          "push_y": "m/s added to the base, world y", "push_yaw": "rad/s added to the base's yaw rate"}


def valid_terms() -> str:
    """The terms a --grid takes, for an error message."""
    aliases = ", ".join(f"{short}={term}" for short, term in ALIASES.items())
    return f"{', '.join([*TERMS, *PUSH_TERMS])} (aliases {aliases})"


def _default(term: str) -> Any:
    return next(f.default for f in dataclasses.fields(RandomizationConfig) if f.name == term)


def nominal_value(term: str) -> float:
    """The value at which `term` perturbs nothing: 1 for a scale, 0 for the others (a push included)."""
    if term in PUSH_TERMS:
        return 0.0
    default = _default(term)
    return float(default[0] if isinstance(default, tuple) else default)


def pinned(term: str, value: float) -> Any:
    """The config field of `term` held at `value`: the range [value, value], or the noise's value."""
    if term in PUSH_TERMS or isinstance(_default(term), tuple):
        return float(value), float(value)
    return float(value)


def grid_config(values: dict[str, float], push_interval: tuple[float, float] = DEFAULT_PUSH_INTERVAL
                ) -> RandomizationConfig:
    """A RandomizationConfig with each term (canonical name -> value) pinned; the others off. The push
    axes among them make one `push` every `push_interval` seconds (its other components 0)."""
    kicks = {PUSH_TERMS[term]: pinned(term, v) for term, v in values.items() if term in PUSH_TERMS}
    fields = {term: pinned(term, v) for term, v in values.items() if term not in PUSH_TERMS}
    if kicks:
        fields["push"] = PushConfig(interval=(float(push_interval[0]), float(push_interval[1])), **kicks)
    return RandomizationConfig(**fields)


def parse_push_interval(text: str) -> tuple[float, float]:
    """`2:4` -> (2.0, 4.0) seconds between pushes; a ConfigError unless 0 < LOW <= HIGH, finite."""
    try:
        low, high = (float(v) for v in text.split(":"))
        PushConfig(interval=(low, high))
    except (ValueError, ConfigError):
        raise ConfigError(f"--push-interval {text!r}: expected LOW:HIGH seconds, 0 < LOW <= HIGH "
                          f"(e.g. {DEFAULT_PUSH_INTERVAL[0]:g}:{DEFAULT_PUSH_INTERVAL[1]:g})") from None
    return low, high


def axis_label(term: str) -> str:
    """`body_mass_scale (1 = nominal)`, `actuation_delay (s)`."""
    return f"{term} ({_UNITS.get(term, '1 = nominal')})"


@dataclass(frozen=True)
class GridAxis:
    term: str
    """A key of `sim.randomization.TERMS`."""
    values: tuple[float, ...]


def parse_grid(text: str) -> GridAxis:
    """`mass=0.5:1.5:5` -> GridAxis("body_mass_scale", 5 values from 0.5 to 1.5); `TERM=V1,V2,...` lists
    them. A value the term cannot hold (a negative scale, a tilt past pi/2) is the term's own ConfigError."""
    term, sep, spec = text.partition("=")
    term = ALIASES.get(term.strip(), term.strip())
    if not sep or (term not in TERMS and term not in PUSH_TERMS):
        raise ConfigError(f"--grid {text!r}: expected TERM=LOW:HIGH:N or TERM=V1,V2,...; "
                          f"valid terms: {valid_terms()}")
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
    for value in values:
        try:
            grid_config({term: value})
        except ConfigError as err:
            raise ConfigError(f"--grid {text!r}: {err}") from None
    return GridAxis(term, values)


@dataclass(frozen=True)
class RobustnessResult:
    axes: tuple[GridAxis, ...]
    metric: str
    mean: np.ndarray
    """`(len(axes[0].values),)` or `(len(axes[0].values), len(axes[1].values))`."""
    std: np.ndarray
    episodes: int
    push_interval: tuple[float, float] | None = None
    """Seconds between pushes when an axis is a push term, else None."""
    pushes: np.ndarray | None = None
    """With a push axis: the pushes each point's episodes got in all (the shape of `mean`), else None."""

    def unpushed(self) -> int:
        """How many points with a kick got no push at all (episodes shorter than the push interval)."""
        if self.pushes is None:
            return 0
        kicked = [any(axis.values[i] != 0.0 for axis, i in zip(self.axes, index, strict=True)
                      if axis.term in PUSH_TERMS)
                  for index in itertools.product(*(range(len(axis.values)) for axis in self.axes))]
        return int(np.sum(np.array(kicked) & (self.pushes.ravel() == 0)))


def robustness_grid(task: str, policy: Callable[[np.ndarray], np.ndarray], axes: Sequence[GridAxis],
                    episodes: int, seed: int, metric: str = "return", max_steps: int | None = None,
                    simulator: str = "gymnasium", push_interval: tuple[float, float] | None = None,
                    done: Mapping[tuple[int, ...], tuple[float, float, int]] | None = None,
                    progress: Callable[[RobustnessResult, frozenset[tuple[int, ...]]], None] | None = None,
                    stop: Callable[[], bool] | None = None) -> RobustnessResult:
    """Evaluate `policy` at every grid point (the same seeds seed..seed+episodes-1 at each), on
    `simulator` (`evaluation.evaluate`'s: "gymnasium" or "engine"). `push_interval`: seconds between
    pushes for push axes (default DEFAULT_PUSH_INTERVAL); a ConfigError without a push axis.

    For a map that can be stopped and resumed: `done` holds points already evaluated, index ->
    (mean, std, pushes), which are not evaluated again; `progress(partial, finished)` is called once the
    grid is checked and after each point (the result so far: NaN at the points not in `finished`);
    `stop()` is asked between points and at every step: once true, the point in progress is dropped and
    GridStopped is raised."""
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
    pushes = any(a.term in PUSH_TERMS for a in axes)
    if push_interval is not None and not pushes:
        raise ConfigError(f"--push-interval: no push on the grid; give a push axis "
                          f"({', '.join(PUSH_TERMS)}), e.g. --grid push_x=-1:1:5")
    interval = push_interval or DEFAULT_PUSH_INTERVAL
    shape = tuple(len(a.values) for a in axes)
    if math.prod(shape) > MAX_POINTS:
        raise ConfigError(f"--grid: {math.prod(shape)} points; at most {MAX_POINTS}")
    _check_task(task, axes, simulator, interval)
    mean, std = np.full(shape, np.nan), np.full(shape, np.nan)
    counts = np.zeros(shape, dtype=np.int64)
    finished: set[tuple[int, ...]] = set()
    for index, (m, s, n) in (done or {}).items():
        mean[index], std[index], counts[index] = m, s, n
        finished.add(index)

    def snapshot() -> RobustnessResult:
        return RobustnessResult(tuple(axes), metric, mean.copy(), std.copy(), episodes,
                                interval if pushes else None, counts.copy() if pushes else None)

    if progress is not None:
        progress(snapshot(), frozenset(finished))
    hook_stop = stop or (lambda: False)
    for index in itertools.product(*(range(n) for n in shape)):
        if index in finished:
            continue
        if hook_stop():
            raise GridStopped(len(finished))
        point = grid_config({a.term: a.values[i] for a, i in zip(axes, index, strict=True)}, interval)
        counter = PushCounter(hook_stop)
        try:
            result = evaluate(task, policy, episodes, seed, max_steps=max_steps, randomize=point,
                              simulator=simulator, hooks=[counter])
        except GridStopped:
            raise GridStopped(len(finished)) from None
        mean[index], std[index] = _metric(result, metric, task)
        counts[index] = counter.pushes
        finished.add(index)
        if progress is not None:
            progress(snapshot(), frozenset(finished))
    return snapshot()


class GridStopped(Exception):
    """A stop was requested mid-map; `kept` points were finished (the point in progress was dropped)."""

    def __init__(self, kept: int) -> None:
        super().__init__(f"stopped with {kept} point(s) finished")
        self.kept = kept


class PushCounter:
    """An evaluation hook (`evaluation.EvalHook`) counting the pushes: the steps whose info holds one.
    With `stop`: raises GridStopped at the first step after it turns true (a stopped map ends now, not
    after the point's remaining episodes)."""

    def __init__(self, stop: Callable[[], bool] | None = None) -> None:
        self.pushes = 0
        self.stop = stop

    def attach(self, env: Any) -> None:
        """Nothing to attach: the engine reports each push in the step's info."""

    def frame(self, episode: int, step: int, episode_return: float, info: dict[str, Any]) -> None:
        self.pushes += int("push" in info)
        if self.stop is not None and self.stop():
            raise GridStopped(-1)  # robustness_grid raises it again with the count

    def close(self, ok: bool) -> None:
        """Nothing to close."""


def _metric(result: dict[str, Any], metric: str, task: str) -> tuple[float, float]:
    """(mean, std) of `metric` in an `evaluate` result; a ConfigError if the task does not report it."""
    if metric == "return":
        return result["mean_return"], result["std_return"]
    if metric == "success_rate":
        if "success_rate" not in result:
            raise ConfigError(f"--metric success_rate: task {task!r} reports no success; use --metric return")
        return result["success_rate"], 0.0
    if "falls" not in result:
        raise ConfigError(f"--metric fall_rate: task {task!r} reports no falls (no `fell` in its info); "
                          "use --metric return")
    return result["falls"] / result["episodes"], 0.0


def _check_task(task: str, axes: Sequence[GridAxis], simulator: str,
                push_interval: tuple[float, float]) -> None:
    """Whether `task` takes every axis's term (at the value farthest from nominal) on `simulator`: a
    ConfigError naming the term now, before any point is evaluated."""
    from robot_rl.evaluation import make_eval_env

    for axis in axes:
        nominal = nominal_value(axis.term)
        farthest = max(axis.values, key=lambda v: abs(v - nominal))
        if axis.term in PUSH_TERMS and farthest == 0.0:  # no kick on the axis: probe with one all the same
            farthest = 1.0
        point = grid_config({axis.term: farthest}, push_interval)
        try:
            make_eval_env(task, simulator, randomize=point).close()
        except ConfigError as err:
            if axis.term not in PUSH_TERMS:
                raise
            raise ConfigError(f"--grid {axis.term}: {_push_refusal(task, simulator, point, err)}") from None


def _push_refusal(task: str, simulator: str, point: RandomizationConfig, err: ConfigError) -> str:
    """Why `task` takes no push: on the Gymnasium path, for a task the engine also runs, its engine
    worlds' reason (no free joint: the real one), or the hint that they take it; else `err`'s."""
    from robot_rl.evaluation import make_eval_env
    from robot_rl.sim.registry import is_engine_task

    if simulator != "gymnasium" or not is_engine_task(task):
        return str(err)
    try:
        make_eval_env(task, "engine", randomize=point).close()
    except ConfigError as engine_err:
        return str(engine_err)
    return f"{err}; the task's engine worlds take pushes: --simulator engine"


def write_table(result: RobustnessResult, path: Path, only: Collection[tuple[int, ...]] | None = None
                ) -> Path:
    """One row per grid point: the terms' values, mean and std of the metric, episodes (and, for a push
    map, the seconds between kicks, so the table alone says what was measured). `only`: the rows of
    these points (a partial map's finished ones), in grid order. Written atomically."""
    from robot_rl.checkpoint import atomic_write_text

    interval = ([] if result.push_interval is None
                else [f"{result.push_interval[0]:.6g}", f"{result.push_interval[1]:.6g}"])
    with io.StringIO(newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(a.term for a in result.axes), f"mean_{result.metric}", f"std_{result.metric}",
                         "episodes", *(["push_interval_low", "push_interval_high"] if interval else [])])
        for index in itertools.product(*(range(len(a.values)) for a in result.axes)):
            if only is not None and index not in only:
                continue
            values = [f"{a.values[i]:.6g}" for a, i in zip(result.axes, index, strict=True)]
            writer.writerow([*values, f"{result.mean[index]:.6g}", f"{result.std[index]:.6g}",
                             result.episodes, *interval])
        text = f.getvalue()
    atomic_write_text(path, text)
    return path


def format_table(result: RobustnessResult) -> str:
    """The grid as text: rows = the first term's values, columns = the second's (or the metric)."""
    first = result.axes[0]
    if len(result.axes) == 1:
        width = max(10, len(first.term))
        lines = [f"{first.term:>{width}}  {'mean ' + result.metric:>16}  {'std':>10}"]
        points = zip(first.values, result.mean, result.std, strict=True)
        lines += [f"{v:>{width}.3g}  {m:>16.2f}  {s:>10.2f}" for v, m, s in points]
        if result.push_interval is not None:
            lines.append(f"over {result.episodes} episodes{_pushes(result)}")
        return "\n".join(lines)
    second = result.axes[1]
    corner = f"{first.term} \\ {second.term}"
    head = f"{corner:>18}" + "".join(f"{v:>10.3g}" for v in second.values)
    cell = ".1f" if result.metric == "return" else ".2f"
    rows = [f"{v:>18.3g}" + "".join(f"{x:>10{cell}}" for x in result.mean[i])
            for i, v in enumerate(first.values)]
    return "\n".join([f"mean {result.metric} over {result.episodes} episodes{_pushes(result)}", head, *rows])


def _pushes(result: RobustnessResult) -> str:
    """`, a push every 2-4 s` for a grid with push axes, else empty."""
    if result.push_interval is None:
        return ""
    low, high = result.push_interval
    return f", a push every {low:g}-{high:g} s"


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
        ax.axvline(nominal_value(axis.term), color="grey", ls="--", lw=1)
        ax.set_xlabel(axis_label(axis.term))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    else:
        rows, cols = result.axes
        fig, ax = plt.subplots(figsize=(1.1 * len(cols.values) + 3, 0.8 * len(rows.values) + 2.2))
        image = ax.imshow(result.mean, origin="lower", cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(cols.values)), [f"{v:.3g}" for v in cols.values])
        ax.set_yticks(range(len(rows.values)), [f"{v:.3g}" for v in rows.values])
        ax.set_xlabel(axis_label(cols.term))
        ax.set_ylabel(axis_label(rows.term))
        low, high = np.nanmin(result.mean), np.nanmax(result.mean)
        for i, j in itertools.product(range(len(rows.values)), range(len(cols.values))):
            value = result.mean[i, j]
            bright = high > low and (value - low) / (high - low) > 0.6
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8,
                    color="black" if bright else "white")
        fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title + _pushes(result), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
