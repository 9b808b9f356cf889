"""PPO on Hopper-v5 with distributed rollouts: the local trainer against 1 and 2 Ray rollout workers, in
the same run. Prints one JSON line.

    python bench/scale_out.py                      # 8 envs × 256 steps, 10 updates a measurement
    python bench/scale_out.py --num-envs 16 --num-steps 128 --updates 12 --rounds 3

Every mode trains the same launch settings (Hopper-v5, batched engine, 1 physics thread per process,
8 envs × 256 steps = 2 048 a rollout, 10 epochs of minibatches of 512, 64×64 tanh) for `--updates`
updates; `rollout_workers: 1` and `2` split the envs among Ray actors of a local Ray instance of 2 CPUs
(started once, its start-up timed apart). Figures come from each run's progress.csv, the first update
left out (warm-up): steps/s of the training loop; seconds per iteration (collection + update); the
update alone (timed around `agent.update`); for the workers, the collection as the learner sees it and
Ray's overhead in it (`ray_overhead_ms`: the time from the weight broadcast to the end of the gather
minus the slowest worker's own collecting: serialisation, the object store, scheduling, the copy into
the buffer), in ms and as a share of the iteration. Modes run in turn, `--rounds` times, and each
figure is the median of its rounds, so that a change in the machine's load hits all of them alike.
The machine's load average (and `uptime`) is recorded before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import tempfile
import time
from typing import Any

import torch
from machine import Timed, cpu_model

TASK = "Hopper-v5"


def train_once(args: argparse.Namespace, workers: int) -> dict[str, float]:
    """One training run of `--updates` updates with `workers` rollout workers (0: local)."""
    from robot_rl.config import apply_overrides
    from robot_rl.launch import parse_train_config
    from robot_rl.trainer import Trainer

    steps = args.updates * args.num_envs * args.num_steps
    data = apply_overrides({"task": TASK, "algo": "ppo"}, [
        f"seed={args.seed}", f"total_steps={steps}", f"num_envs={args.num_envs}", "vectorization=batched",
        "env_threads=1", "torch_threads=1", f"ppo.num_steps={args.num_steps}", "ppo.epochs=10",
        f"ppo.minibatch_size={args.minibatch_size}", "eval.episodes=1", "log.progress_bar=false",
        "log.tensorboard=false", "log.plot=false", "log.checkpoint_every_steps=0",
        f"rollout_workers={workers}"])
    run_dir = tempfile.mkdtemp(prefix=f"bench_scale_{workers}_")
    trainer = Trainer(parse_train_config(data), run_dir)
    update = Timed(trainer.agent.update)
    trainer.agent.update = update  # this instance only
    start_workers = Timed(trainer._start_rollout_workers)
    trainer._start_rollout_workers = start_workers
    trainer.train()
    with open(f"{run_dir}/progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    first, last = rows[0], rows[-1]  # the first update is warm-up
    n = len(rows) - 1
    loop_s = float(last["time_s"]) - float(first["time_s"])
    out = {"sps": (int(last["step"]) - int(first["step"])) / loop_s, "iteration_s": loop_s / n,
           "update_s": update.seconds / len(rows)}
    if workers:
        later = rows[1:]
        overhead_ms = statistics.fmean(float(r["ray_overhead_ms"]) for r in later)
        out.update(collect_s=statistics.fmean(float(r["collect_s"]) for r in later),
                   ray_overhead_ms=overhead_ms, ray_overhead_share=overhead_ms / 1000.0 / out["iteration_s"],
                   actors_start_s=start_workers.seconds, worker_restarts=int(last["worker_restarts"]))
    else:
        out["collect_s"] = out["iteration_s"] - out["update_s"]
    return out


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0]}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--num-steps", type=int, default=256)
    p.add_argument("--minibatch-size", type=int, default=512)
    p.add_argument("--updates", type=int, default=10, help="updates a measurement (the first is warm-up)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    uptime_before, load_before = _uptime(), os.getloadavg()
    from robot_rl.distributed.cluster import connect

    start = time.perf_counter()
    ray = connect(None, num_cpus=2)
    ray_init_s = time.perf_counter() - start
    modes = {"local": 0, "workers_1": 1, "workers_2": 2}
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    try:
        for _ in range(args.rounds):
            for mode, workers in modes.items():
                runs[mode].append(train_once(args, workers))
    finally:
        ray.shutdown()
    result: dict[str, Any] = {m: _median(r) for m, r in runs.items()}
    local = result["local"]["sps"]
    print(json.dumps({
        "benchmark": "scale_out", "task": TASK, "num_envs": args.num_envs, "num_steps": args.num_steps,
        "epochs": 10, "minibatch_size": args.minibatch_size, "network": "64x64 tanh",
        "updates_per_measurement": args.updates, "rounds": args.rounds, **result,
        "speedup_workers_1": round(result["workers_1"]["sps"] / local, 3),
        "speedup_workers_2": round(result["workers_2"]["sps"] / local, 3),
        "ray_init_s": round(ray_init_s, 2), "ray_cpus": 2,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "uptime_before": uptime_before, "uptime_after": _uptime(),
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
