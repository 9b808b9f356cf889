"""Quadruped velocity tracking against training time (issue 18's goal: forward commands in [-1, 1] m/s
tracked within 0.2 m/s on average, no falls, in 10 evaluation episodes, after 60 minutes on 2 cores).

Evaluates the checkpoints of a run of `launch/quadruped_walk_ppo.yaml` (every `--every` steps, and the
newest), deterministically, `--episodes` episodes from the run's eval seed, on
- "forward": the run's own task with forward commands only (lin_vel_x uniform in [-1, 1] m/s, lateral
  and yaw rate 0; redrawn every 5 s as in training): the goal's measure;
- "task": the run's own command distribution (forward, lateral, yaw rate);
and, as the peer in the same run, the policy that holds the default pose (action 0: standing still) on
the same episodes. Tracking error: per episode the mean over its steps of |command_xy - v_xy| (m/s, base
frame), averaged over episodes. Prints one JSON line with the curve, the training seconds of each
checkpoint (progress.csv), and the load average (the machine is shared: read the figures beside it).

    python bench/quadruped_tracking.py /work/runs/quadruped --every 500000 --episodes 10
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def forward_only(task_id: str, folder: str) -> str:
    """A copy of the declared task `task_id` whose commands are forward only (the goal's distribution)."""
    from robot_rl import strict_yaml
    from robot_rl.sim.declared.source import PACKAGED, PREFIX, declared_id, packaged_file

    source = packaged_file(task_id) if task_id in PACKAGED else task_id.removeprefix(PREFIX)
    data = strict_yaml.read(source)
    task = dict(data["task"] if isinstance(data, dict) and isinstance(data.get("task"), dict) else data)
    task["model"] = os.path.normpath(os.path.join(os.path.dirname(source), task["model"]))
    task["commands"] = {**task["commands"], "lin_vel_x": [-1.0, 1.0], "lin_vel_y": [0.0, 0.0],
                        "ang_vel_z": [0.0, 0.0]}
    path = Path(folder) / "forward_only.yaml"
    path.write_text(yaml.safe_dump({"task": task}, sort_keys=False))
    return declared_id(str(path))


def summary(result: dict) -> dict:
    return {"tracking_error": round(result["velocity_tracking_error"], 4), "falls": result["falls"],
            "mean_return": round(result["mean_return"], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run directory of a quadruped launch file")
    p.add_argument("--every", type=int, default=500_000, help="evaluate checkpoints this many steps apart")
    p.add_argument("--episodes", type=int, default=10)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from robot_rl.checkpoint import list_checkpoints
    from robot_rl.evaluation import evaluate
    from robot_rl.sim import get_spec
    from robot_rl.trainer import load_run_policy

    load_before = os.getloadavg()[0]
    run = Path(args.run)
    seconds = {}
    with open(run / "progress.csv", newline="") as f:
        for row in csv.DictReader(f):
            seconds[int(row["step"])] = float(row["time_s"])
    step_of = {path: step for step, path in list_checkpoints(run)}
    chosen, last = [], -args.every
    for path, step in sorted(step_of.items(), key=lambda kv: kv[1]):
        if step - last >= args.every:
            chosen.append(path)
            last = step
    newest = max(step_of, key=step_of.get)
    if newest not in chosen:
        chosen.append(newest)
    curve = []
    with tempfile.TemporaryDirectory() as tmp:
        config, _, _ = load_run_policy(run, "latest")
        forward = forward_only(config.task, tmp)
        seed = config.eval.seed
        act_dim = get_spec(config.task).act_dim
        for path in chosen:
            _, policy, _ = load_run_policy(run, str(path))
            step = step_of[path]
            row = {"step": step, "time_s": seconds.get(step),
                   "forward": summary(evaluate(forward, policy, args.episodes, seed)),
                   "task": summary(evaluate(config.task, policy, args.episodes, seed))}
            curve.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

        def stand(obs: np.ndarray) -> np.ndarray:
            return np.zeros(act_dim)

        standing = {"forward": summary(evaluate(forward, stand, args.episodes, seed)),
                    "task": summary(evaluate(config.task, stand, args.episodes, seed))}
    print(json.dumps({"bench": "quadruped_tracking", "run": str(run), "episodes": args.episodes,
                      "seed": seed, "curve": curve, "peer_standing_still": standing,
                      "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
