"""The end of a sweep, read from its run directories (so a resumed sweep reports every trial, whichever
invocation ran it): results.csv of all trials, a table of final evaluation return (mean ± std over
seeds per configuration) in summary.txt, the comparison plot of the runs, and the best configuration's
best run exported as a policy bundle.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.distributed.sweep import FINISHED, SweepPlan

CSV_FIELDS = ("trial", "configuration", "label", "seed", "status", "mean_return", "std_return", "step",
              "wall_time_s", "run_dir")


@dataclass(frozen=True)
class TrialResult:
    name: str
    config_id: str
    label: str
    params: tuple[tuple[str, Any], ...]
    seed: int
    run_dir: Path
    evaluation: dict[str, Any] | None
    """The run's eval.json (None: not finished)."""
    error: str | None = None

    @property
    def status(self) -> str:
        return "finished" if self.evaluation is not None else ("failed" if self.error else "unfinished")

    @property
    def mean_return(self) -> float:
        return float(self.evaluation["mean_return"]) if self.evaluation else math.nan


def collect(plan: SweepPlan, errors: dict[str, str] | None = None) -> list[TrialResult]:
    errors = errors or {}
    out = []
    for t in plan.trials():
        path = plan.run_dir(t) / FINISHED
        evaluation = json.loads(path.read_text()) if path.is_file() else None
        out.append(TrialResult(t.name, t.config_id, t.label, t.params, t.seed, plan.run_dir(t), evaluation,
                               errors.get(t.name)))
    return out


def write_csv(results: list[TrialResult], path: Path) -> Path:
    """One row per trial; the grid's keys as extra columns."""
    keys = [k for k, _ in results[0].params] if results else []
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*CSV_FIELDS, *keys])
        for r in results:
            ev = r.evaluation or {}
            writer.writerow([r.name, r.config_id, r.label, r.seed, r.status, ev.get("mean_return", ""),
                             ev.get("std_return", ""), ev.get("step", ""),
                             round(ev["wall_time_s"], 2) if "wall_time_s" in ev else "", str(r.run_dir),
                             *(v for _, v in r.params)])
    return path


def configuration_table(results: list[TrialResult]) -> list[dict[str, Any]]:
    """Per configuration: mean and (population) std over its finished seeds' final evaluation returns."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(r.config_id, {"configuration": r.config_id, "label": r.label, "returns": [],
                                            "trials": 0})
        row["trials"] += 1
        if r.evaluation is not None:
            row["returns"].append(r.mean_return)
    for row in rows.values():
        values = np.array(row["returns"], dtype=float)
        row["mean"] = float(values.mean()) if values.size else math.nan
        row["std"] = float(values.std()) if values.size else math.nan
    return list(rows.values())


def format_table(table: list[dict[str, Any]]) -> str:
    width = max([len(r["label"]) for r in table] + [len("configuration")])
    lines = [f"{'':4} {'configuration':<{width}}  {'final evaluation return':>26}  seeds"]
    for r in table:
        value = "not finished" if math.isnan(r["mean"]) else f"{r['mean']:.2f} ± {r['std']:.2f}"
        lines.append(f"{r['configuration']:<4} {r['label']:<{width}}  {value:>26}  "
                     f"{len(r['returns'])}/{r['trials']}")
    return "\n".join(lines)


def best_run(results: list[TrialResult], table: list[dict[str, Any]]) -> TrialResult | None:
    """The best configuration (highest mean over seeds)'s run with the highest final return."""
    ranked = [r for r in table if not math.isnan(r["mean"])]
    if not ranked:
        return None
    best_config = max(ranked, key=lambda r: r["mean"])["configuration"]
    runs = [r for r in results if r.config_id == best_config and r.evaluation is not None]
    return max(runs, key=lambda r: r.mean_return)


def finish(plan: SweepPlan, errors: dict[str, str] | None = None, export: bool = True) -> dict[str, Any]:
    """Write results.csv, summary.txt, comparison.png and best_bundle/; returns what was written."""
    results = collect(plan, errors)
    table = configuration_table(results)
    summary: dict[str, Any] = {"sweep": str(plan.out), "trials": len(results),
                               "finished": sum(r.evaluation is not None for r in results),
                               "csv": str(write_csv(results, plan.out / "results.csv")),
                               "table": format_table(table), "best_run": None, "bundle": None, "plot": None}
    best = best_run(results, table)
    if best is not None:
        summary["best_run"] = str(best.run_dir)
        summary["table"] += f"\nbest: {best.config_id} ({best.label}), run {best.run_dir}"
    (plan.out / "summary.txt").write_text(summary["table"] + "\n")
    finished = [str(r.run_dir) for r in results if r.evaluation is not None]
    if finished:
        from robot_rl.plotting import plot_runs

        png, _ = plot_runs(finished, plan.out / "comparison.png", "return")
        summary["plot"] = str(png)
    if best is not None and export:
        from robot_rl.export import export_run

        bundle = export_run(best.run_dir, plan.out / "best_bundle", force=True)
        summary["bundle"] = str(bundle.path)
    return summary
