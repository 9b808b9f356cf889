"""Asymmetric actor-critic against the plain one on cube:rotate-z, the same steps and seed (issue 14).

Trains `launch/cube_rotate_z_ppo.yaml` (the critic sees the observation) and
`launch/cube_rotate_z_ppo_asym.yaml` (the critic also sees the cube's privileged terms) for `--steps`
each, side by side as two processes (so both see the same machine load), then evaluates each run's last
checkpoint deterministically over `--episodes` episodes (the launch file's eval seed). Prints one JSON
line per pair: for each, the training curve at every tenth of the steps (training success over the last
100 episodes, return, the critic's explained variance), the first step at >= 80 % training success,
the final evaluation (success rate, consecutive successes, return) and the training wall time.

    python bench/asymmetric_critic.py --steps 400000                  # both runs, then the evaluations
    python bench/asymmetric_critic.py --from-runs runs/sym runs/asym  # evaluate two finished runs
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = {"symmetric": ROOT / "launch" / "cube_rotate_z_ppo.yaml",
          "asymmetric": ROOT / "launch" / "cube_rotate_z_ppo_asym.yaml"}


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan


def curve(run: Path) -> tuple[list[dict], int | None, float]:
    """(ten points of the training curve, first step at >= 80 % training success, training seconds)."""
    with open(run / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    picks = sorted({round(i * (len(rows) - 1) / 10) for i in range(11)})
    points = [{"step": int(rows[i]["step"]), "time_s": _float(rows[i]["time_s"]),
               "success_rate": _float(rows[i].get("success_rate", "")),
               "episode_return": _float(rows[i]["episode_return"]),
               "explained_variance": _float(rows[i].get("explained_variance", ""))} for i in picks]
    first = next((int(r["step"]) for r in rows if _float(r.get("success_rate", "")) >= 0.8), None)
    return points, first, _float(rows[-1]["time_s"])


def final_evaluation(run: Path, episodes: int) -> dict:
    """The last checkpoint's deterministic evaluation on the nominal model."""
    from robot_rl.evaluation import evaluate
    from robot_rl.trainer import load_run_policy

    config, policy, state = load_run_policy(run, "latest")
    result = evaluate(config.task, policy, episodes, config.eval.seed)
    return {"step": int(state["step"]), "success_rate": result["success_rate"],
            "consecutive_successes": result["consecutive_successes"], "mean_return": result["mean_return"],
            "critic_privileged": list(config.policy.critic_privileged)}


def train_pair(steps: int, out: Path) -> dict[str, Path]:
    """Both runs as two `robot-rl train` processes at once; their run directories."""
    runs = {name: out / name for name in LAUNCH}
    procs = [subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "train", str(LAUNCH[name]),
                               "--out", str(runs[name]), "--set", f"total_steps={steps}",
                               "--set", "log.progress_bar=false"], stdout=subprocess.DEVNULL)
             for name in LAUNCH]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"a training run failed (exit {proc.returncode})")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400_000)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--from-runs", type=Path, nargs=2, metavar=("SYMMETRIC", "ASYMMETRIC"))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if args.from_runs is not None:
        runs = dict(zip(LAUNCH, args.from_runs, strict=True))
    else:
        runs = train_pair(args.steps, Path(tempfile.mkdtemp(prefix="asymmetric_critic_")))
    load_after_training = os.getloadavg()[0]
    report: dict = {"bench": "asymmetric_critic", "episodes": args.episodes, "cpus": os.cpu_count()}
    for name, run in runs.items():
        points, first, seconds = curve(run)
        report[name] = {"run": str(run), "curve": points, "first_step_at_80pct_training": first,
                        "training_s": seconds, "final": final_evaluation(run, args.episodes)}
    report["load_1min"] = {"before": load_before, "after_training": load_after_training,
                           "after": os.getloadavg()[0]}
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
