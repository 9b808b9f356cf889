"""The quadruped pushed: velocity tracking and falls of quadruped policies with and without random pushes
(`randomize.push`), each policy on the same episodes, so that a policy trained with pushes is measured
beside its peer trained without (`zoo:quadruped-walk_ppo`) in the same run.

Conditions (nominal physics otherwise; deterministic policy; episode i seeded seed + i):
- "nominal": no pushes;
- "push_0.5": launch/quadruped_walk_ppo.yaml's pushes, +-0.5 m/s in x and y every [5, 7.5] s (one per
  10-second episode);
- "push_1.0": legged_gym's strength, +-1 m/s in x and y, every [2, 4] s (2-5 per episode).
Each on "forward" commands (forward only, U[-1, 1] m/s: the goal's measure, bench/quadruped_tracking.py)
and on the task's own commands. Tracking error: per episode the mean over its steps of |command_xy -
v_xy| (m/s, base frame; the pushes' own disturbance included), averaged over episodes; a fall: an
episode ended by a termination. `pushes`: how many pushes the episodes got in all. Prints one JSON line.

    python bench/quadruped_pushes.py /work/runs/quad_push zoo:quadruped-walk_ppo --episodes 10
"""

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


def conditions() -> dict[str, Any]:
    from robot_rl.sim.randomization import RandomizationConfig
    from robot_rl.sim.randomization.push import PushConfig

    half = PushConfig(interval=(5.0, 7.5), x=(-0.5, 0.5), y=(-0.5, 0.5))
    one = PushConfig(interval=(2.0, 4.0), x=(-1.0, 1.0), y=(-1.0, 1.0))
    return {"nominal": None, "push_0.5": RandomizationConfig(push=half),
            "push_1.0": RandomizationConfig(push=one)}


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policies", nargs="+", help="run directories (latest checkpoint) or bundles (zoo:NAME)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1_000_000)
    args = p.parse_args()
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
            for name, randomize in conditions().items():
                for which, task in commands.items():
                    counter = PushCounter()
                    r = evaluate(task, policy, args.episodes, args.seed, randomize=randomize, hooks=[counter])
                    row[f"{name}/{which}"] = {"tracking_error": round(r["velocity_tracking_error"], 4),
                                              "falls": r["falls"], "mean_return": round(r["mean_return"], 1),
                                              "pushes": counter.pushes}
                    print(json.dumps({"policy": label, name: {which: row[f"{name}/{which}"]}}),
                          file=sys.stderr, flush=True)
            results.append(row)
    print(json.dumps({"bench": "quadruped_pushes", "episodes": args.episodes, "seed": args.seed,
                      "conditions": {k: v.describe() if v else "none" for k, v in conditions().items()},
                      "results": results, "load_before": round(load_before, 2),
                      "load_after": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
