"""What the quadruped benches share: each policy (a run directory or a bundle) evaluated on the same
episodes under each named condition (a `RandomizationConfig`, or None for nominal physics), on forward-only
commands and on the task's own, one row per policy; progress on stderr, one JSON line on stdout.
bench/quadruped_pushes.py and bench/quadruped_latency.py each name their conditions."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASK = "quadruped-walk"


def load_policy(source: str) -> tuple[str, Any]:
    """(label, deterministic policy on raw observations) of a run directory (its latest checkpoint) or a
    bundle (a folder or zoo:<name>)."""
    if Path(source).is_dir() and (Path(source) / "config.yaml").is_file():
        from robot_rl.trainer import load_run_policy

        _, policy, state = load_run_policy(source, "latest")
        return f"{source} @ {state.get('step', '?')} steps", policy
    from robot_rl.policies import load

    bundle = load(source)
    return source, bundle.act_normalized


def arguments(doc: str | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policies", nargs="+", help="run directories (latest checkpoint) or bundles (zoo:NAME)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1_000_000)
    return p.parse_args()


def run(bench: str, named: dict[str, Any], args: argparse.Namespace, count_pushes: bool = False,
        **extra: Any) -> None:
    """Evaluate every policy of `args` under every condition of `named` on both command sets; print the
    JSON line (`bench`, the episodes and seed, `extra`, the rows keyed `<condition>/<forward|task>`)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from quadruped_tracking import forward_only

    from robot_rl.evaluation import evaluate
    from robot_rl.robustness import PushCounter

    load_before = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"forward": forward_only(TASK, tmp), "task": TASK}
        for source in args.policies:
            label, policy = load_policy(source)
            row: dict[str, Any] = {"policy": label}
            for name, randomize in named.items():
                for which, task in commands.items():
                    counter = PushCounter()
                    r = evaluate(task, policy, args.episodes, args.seed, randomize=randomize,
                                 hooks=[counter] if count_pushes else ())
                    cell = {"tracking_error": round(r["velocity_tracking_error"], 4), "falls": r["falls"],
                            "mean_return": round(r["mean_return"], 1)}
                    if count_pushes:
                        cell["pushes"] = counter.pushes
                    row[f"{name}/{which}"] = cell
                    print(json.dumps({"policy": label, name: {which: cell}}), file=sys.stderr, flush=True)
            results.append(row)
    print(json.dumps({"bench": bench, "episodes": args.episodes, "seed": args.seed, **extra,
                      "results": results, "load_before": round(load_before, 2),
                      "load_after": round(os.getloadavg()[0], 2)}))
