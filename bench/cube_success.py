"""Cube rotate-z: deterministic success rate against training wall time (issue 14's 30-minute goal).

Trains `launch/cube_rotate_z_ppo.yaml` (or `--launch`) for `--minutes` of wall time (the run stops at the
first update past it), keeping a checkpoint every `--every` steps, then evaluates each checkpoint
deterministically (`--episodes` episodes, the launch file's eval seed) on the nominal model and under
mass and friction x U(0.7, 1.3). Prints one JSON line: the curve (step, training seconds, success rate,
consecutive successes), the first training time at >= 80 % success, and the load average before and
after (the machine is shared: read the figures beside it).

    python bench/cube_success.py                          # 30 minutes, then the evaluations
    python bench/cube_success.py --minutes 2 --every 20000 --episodes 5    # a quick check
    python bench/cube_success.py --from-run runs/cube     # evaluate the checkpoints of a finished run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class _OutOfTime(Exception):
    """The wall-time budget is spent (raised after an update, caught by `train`)."""


def train(launch: Path, minutes: float, every: int, out: Path) -> None:
    """Train until `minutes` of wall time have passed (checked after each update), keeping checkpoints;
    the last update's state is checkpointed too."""
    from robot_rl.launch import load_train_config, trainer_class

    config = load_train_config(launch, ["log.progress_bar=false", "eval.every_steps=0",
                                        f"log.checkpoint_every_steps={every}", "log.keep_checkpoints=1000"])
    trainer = trainer_class(config.algo)(config, out)
    deadline = time.perf_counter() + 60.0 * minutes
    update = trainer.agent.update

    def timed_update(*args, **kwargs):
        metrics = update(*args, **kwargs)
        if time.perf_counter() >= deadline:
            raise _OutOfTime
        return metrics

    trainer.agent.update = timed_update
    try:
        trainer.train()
    except _OutOfTime:
        trainer.save_checkpoint()  # progress.csv has every update before this one


def evaluate_run(run: Path, episodes: int) -> list[dict]:
    """Each step checkpoint of `run`: its training time and its deterministic success, nominal and ±30 %."""
    from robot_rl.evaluation import evaluate
    from robot_rl.sim.randomization import RandomizationConfig
    from robot_rl.trainer import load_run_policy

    with open(run / "progress.csv", newline="") as f:
        seconds = {int(r["step"]): float(r["time_s"]) for r in csv.DictReader(f)}
    shaken = RandomizationConfig(body_mass_scale=(0.7, 1.3), geom_friction_scale=(0.7, 1.3))
    points = []
    for path in sorted((run / "checkpoints").glob("step_*.pt")):
        config, policy, state = load_run_policy(run, str(path))
        step = int(state["step"])
        point = {"step": step, "time_s": seconds.get(step)}
        for label, randomize in (("nominal", None), ("mass_friction_pm30", shaken)):
            res = evaluate(config.task, policy, episodes, config.eval.seed, randomize=randomize)
            point[label] = {"success_rate": res["success_rate"],
                            "consecutive_successes": res["consecutive_successes"]}
        points.append(point)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch", type=Path, default=ROOT / "launch" / "cube_rotate_z_ppo.yaml")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=int, default=50_000, help="steps between checkpoints")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--from-run", type=Path, default=None)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if args.from_run is not None:
        run = args.from_run
    else:
        run = Path(tempfile.mkdtemp(prefix="cube_success_")) / "run"
        train(args.launch, args.minutes, args.every, run)
    load_after_training = os.getloadavg()[0]
    points = evaluate_run(run, args.episodes)
    first = next((p["time_s"] for p in points if p["nominal"]["success_rate"] >= 0.8), None)
    json.dump({"bench": "cube_success", "run": str(run), "episodes": args.episodes, "points": points,
               "first_time_s_at_80pct": first, "cpus": os.cpu_count(),
               "load_1min": {"before": load_before, "after_training": load_after_training,
                             "after": os.getloadavg()[0]}}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
