"""The record of a robustness map beside its PNG (`map.png` -> `map.robustness.json`): what the map is
(policy, task, grid, episodes, seed, metric, ...) and every finished point at full precision, rewritten
atomically after each point. A stopped map keeps its points there, and `robot-rl robustness ... --resume`
evaluates only the missing ones: each point's evaluation is seeded, so the resumed map equals an
uninterrupted one bit for bit (the CSV's 6 digits could not give that: the record keeps the floats).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from robot_rl.checkpoint import atomic_write_text
from robot_rl.errors import ConfigError

FORMAT = "robot_rl.robustness_map/1"
SPEC_KEYS = ("policy", "checkpoint", "policy_actions", "task", "simulator", "axes", "episodes", "seed",
             "metric", "max_steps", "push_interval")
"""What a map is, in the order a mismatched --resume is checked (the first differing key is named)."""

Index = tuple[int, ...]


class Point(NamedTuple):
    """One finished grid point."""

    mean: float
    std: float
    pushes: int
    """The pushes its episodes got in all (0 without a push axis)."""


def record_path(out: Path) -> Path:
    """`map.png` -> `map.robustness.json`."""
    return out.with_suffix(".robustness.json")


@dataclass(frozen=True)
class MapRecord:
    spec: dict[str, Any]
    """SPEC_KEYS -> JSON values (axes: [[term, [values]], ...])."""
    points: dict[Index, Point]

    @property
    def total(self) -> int:
        return math.prod(len(values) for _, values in self.spec["axes"])

    def save(self, path: Path) -> None:
        """Atomically (temp file + os.replace): a stop at any instant leaves the old record or the new."""
        points = [{"index": list(i), "mean": m, "std": s, "pushes": p}
                  for i, (m, s, p) in sorted(self.points.items())]
        atomic_write_text(path, json.dumps({"format": FORMAT, "spec": self.spec, "points": points}) + "\n")


def check_same(recorded: dict[str, Any], wanted: dict[str, Any], where: Path) -> None:
    """A ConfigError naming the first key of SPEC_KEYS whose value differs, with both values."""
    for key in SPEC_KEYS:
        if recorded.get(key) == wanted.get(key):
            continue
        if key == "policy_actions":
            raise ConfigError(f"--resume: the policy {wanted.get('policy')} acts otherwise than the one "
                              f"the map in {where} was made with (policy_actions {recorded.get(key)!r}, now "
                              f"{wanted.get(key)!r}: a newer checkpoint?); give another --out for a new map")
        raise ConfigError(f"--resume: the map in {where} has {key} {recorded.get(key)!r}, this command "
                              f"{wanted.get(key)!r}; rerun the recorded map's command with --resume, or "
                              f"give another --out")


def read_record(path: Path) -> MapRecord:
    """The record at `path`; a ConfigError saying what is wrong with a corrupt or foreign file."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{path}: not a robustness map record ({why}); delete it or give another --out")

    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise bad(f"unreadable: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f"expected format {FORMAT!r}")
    spec, raw = data.get("spec"), data.get("points")
    if not isinstance(spec, dict) or set(spec) != set(SPEC_KEYS):
        raise bad(f"its spec must hold exactly {', '.join(SPEC_KEYS)}")
    axes = spec["axes"]
    if (not isinstance(axes, list) or not 1 <= len(axes) <= 2
            or not all(isinstance(a, list) and len(a) == 2 and isinstance(a[0], str)
                       and isinstance(a[1], list) and a[1] and all(_number(v) for v in a[1]) for a in axes)):
        raise bad("axes must be one or two [term, [values]]")
    shape = tuple(len(values) for _, values in axes)
    if not isinstance(raw, list):
        raise bad("points must be a list")
    points: dict[Index, Point] = {}
    for n, item in enumerate(raw):
        try:
            index = tuple(item["index"])
            ok = (len(index) == len(shape)
                  and all(type(i) is int and 0 <= i < k for i, k in zip(index, shape, strict=True))
                  and _number(item["mean"]) and _number(item["std"]) and type(item["pushes"]) is int)
        except (TypeError, KeyError):
            ok = False
        if not ok:
            raise bad(f"point {n} must be {{index: [i, ...] inside the grid {list(shape)}, mean, std, "
                      f"pushes}}")
        if index in points:
            raise bad(f"point {n}: index {list(index)} is given twice")
        points[index] = Point(float(item["mean"]), float(item["std"]), int(item["pushes"]))
    return MapRecord(spec, points)


def policy_actions(act: Callable[[np.ndarray], np.ndarray], task: str, simulator: str) -> str:
    """A fingerprint of what the policy does: its action at the first observation of seed 0 (rounded to 5
    decimals, so another BLAS's last bit does not count). The same path can hold another policy by a
    resume (a run that trained on, a re-exported bundle): its points would not belong to this map."""
    from robot_rl.evaluation import make_eval_env

    env = make_eval_env(task, simulator, seed=0)
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    action = np.round(np.asarray(act(obs), dtype=np.float64), 5) + 0.0  # + 0.0: -0.0 is 0.0
    return hashlib.sha256(action.tobytes()).hexdigest()[:16]


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def axes_spec(axes: Iterable[Any]) -> list[list[Any]]:
    """GridAxis objects as the record's JSON: [[term, [values]], ...]."""
    return [[a.term, list(a.values)] for a in axes]
