"""A sweep's trials: every combination of `--grid KEY=[V1,V2]` values times `--seeds N`, each trial a
launch file plus `--set` overrides, validated into a TrainConfig before any trial starts.

No ray here: the sweep's plan, its names and its errors are plain Python, checked in the driver.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from robot_rl.errors import ConfigError


@dataclass(frozen=True)
class GridAxis:
    """One `--grid KEY=[V1,V2,...]`: a dotted launch-file key and the values it takes."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Trial:
    """One run of the sweep: configuration `config_id` (a grid combination) at one seed."""

    config_id: str
    """c0, c1, ...: the index of the grid combination."""
    label: str
    """The combination as `key=value, ...` ("defaults" for an empty grid)."""
    params: tuple[tuple[str, Any], ...]
    """(dotted key, value) of each grid axis."""
    seed: int

    @property
    def name(self) -> str:
        """The trial's run directory name under the sweep's runs/ folder."""
        return f"{self.config_id}_s{self.seed}"

    def overrides(self) -> list[str]:
        """The `--set KEY=VALUE` overrides that make this trial's config from the launch file (JSON is
        YAML, so a value reads back as the same type)."""
        return [f"{key}={json.dumps(value)}" for key, value in self.params] + [f"seed={self.seed}"]


def parse_grid(items: list[str]) -> list[GridAxis]:
    """`KEY=[V1,V2]` strings → axes; ConfigError for a malformed item, an empty list, a repeated key
    or `seed` (the seeds come from --seeds)."""
    axes: list[GridAxis] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {item!r} is not of the form KEY=[V1,V2] "
                              f"(e.g. ppo.learning_rate=[1e-4,3e-4])")
        try:
            values = yaml.safe_load(raw)
        except yaml.YAMLError:
            values = None
        if not isinstance(values, list):
            raise ConfigError(f"--grid {key}: {raw!r} is not a list of values; write {key}=[V1,V2]")
        if not values:
            raise ConfigError(f"--grid {key}: the grid has no values; give at least one, e.g. {key}=[V1,V2]")
        if key == "seed":
            raise ConfigError("--grid seed: the seeds of a sweep come from --seeds N, not from the grid")
        if any(a.key == key for a in axes):
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        axes.append(GridAxis(key, tuple(values)))
    return axes


def plan_trials(axes: list[GridAxis], seeds: list[int]) -> list[Trial]:
    """Every combination of the axes' values (in the order given) times every seed."""
    if not seeds:
        raise ConfigError("--seeds: must be >= 1")
    trials: list[Trial] = []
    for index, combo in enumerate(itertools.product(*(a.values for a in axes))):
        params = tuple(zip((a.key for a in axes), combo, strict=True))
        label = ", ".join(f"{k}={v}" for k, v in params) or "defaults"
        trials.extend(Trial(f"c{index}", label, params, seed) for seed in seeds)
    return trials


def check_trials(launch_file: str | Path, axes: list[GridAxis], trials: list[Trial]) -> None:
    """Validate every trial's config now, so that a bad key or value fails before any trial starts.

    The launch file alone first (its own errors), then each axis alone (the error names its --grid
    key), then every combination (values that are only wrong together).
    """
    from robot_rl.launch import load_train_config

    load_train_config(launch_file)
    for axis in axes:
        for value in axis.values:
            try:
                load_train_config(launch_file, [f"{axis.key}={json.dumps(value)}"])
            except ConfigError as err:
                raise ConfigError(f"--grid {axis.key}={value!r}: {err}") from None
    for trial in trials:
        try:
            load_train_config(launch_file, trial.overrides())
        except ConfigError as err:
            raise ConfigError(f"--grid ({trial.label}, seed {trial.seed}): {err}") from None
