"""Final returns of full training runs: deterministic evaluation, mean ± std over seeds, wall time.

Each (task, algo) pair trains from its launch file (`launch/<task>_<algo>.yaml`) for every seed, then
evaluates deterministically (10 episodes, the launch file's eval seed). The published peer figures
(RL Zoo PPO, sb3-contrib TRPO, 1M steps) are printed beside ours for the ratio. Prints one JSON line.

    python bench/returns.py --pairs hopper_ppo halfcheetah_ppo --seeds 1 2 3     # hours on 2 cores
    python bench/returns.py --pairs hopper_ppo --seeds 1 --steps 200000           # a shorter check
    python bench/returns.py --from-runs runs_a/hopper_ppo_s1 runs_b/hopper_ppo_s2 # summarise finished runs

`--from-runs` reads run directories trained elsewhere (seeds run side by side, other machines): the
pair is the launch file the run's config came from (its task and algorithm), the return its eval.json,
the wall time its progress.csv's training time (without the final evaluation).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Published 1M-step returns of the peers (RL Zoo benchmark table for PPO; sb3-contrib docs for TRPO).
PEER = {
    "halfcheetah_ppo": 5819, "hopper_ppo": 2410, "walker2d_ppo": 3479, "ant_ppo": 1327,
    "hopper_trpo": 3372, "walker2d_trpo": 4502, "halfcheetah_trpo": 1803,
}


def run_pair(pair: str, seed: int, steps: int | None, out_root: Path) -> dict:
    from robot_rl.launch import load_train_config, trainer_class

    overrides = [f"seed={seed}", "log.progress_bar=false", "eval.every_steps=0"]
    if steps is not None:
        overrides.append(f"total_steps={steps}")
    config = load_train_config(ROOT / "launch" / f"{pair}.yaml", overrides)
    start = time.perf_counter()
    result = trainer_class(config.algo)(config, out_root / f"{pair}_s{seed}").train()
    return {"seed": seed, "mean_return": result["mean_return"], "std_return": result["std_return"],
            "steps": result["step"], "wall_time_s": round(time.perf_counter() - start, 1)}


def read_run(run_dir: Path) -> tuple[str, dict]:
    """(pair, run record) of a finished run directory, as `run_pair` reports it."""
    from robot_rl.launch import read_run_config

    config = read_run_config(run_dir)
    pair = f"{config.task.split('-v')[0].lower()}_{config.algo}"
    if not (run_dir / "eval.json").exists():
        raise SystemExit(f"{run_dir}: no eval.json: the run has not finished (resume it with "
                         f"robot-rl train --resume {run_dir})")
    result = json.loads((run_dir / "eval.json").read_text())
    with open(run_dir / "progress.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    return pair, {"seed": config.seed, "mean_return": result["mean_return"],
                  "std_return": result["std_return"], "steps": int(last["step"]),
                  "wall_time_s": round(float(last["time_s"]), 1), "run_dir": str(run_dir)}


def summarize(runs: list[dict], pair: str) -> dict:
    means = [r["mean_return"] for r in runs]
    return {
        "mean": round(statistics.fmean(means), 1),
        "std": round(statistics.pstdev(means), 1) if len(means) > 1 else 0.0,
        "runs": runs, "peer_published": PEER.get(pair),
        "ratio_to_peer": round(statistics.fmean(means) / PEER[pair], 3) if pair in PEER else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=["hopper_ppo"], help="launch file stems, e.g. hopper_ppo")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=None, help="override total_steps (default: the file's)")
    p.add_argument("--out", default=None, help="where the run directories go (default: a temp folder)")
    p.add_argument("--from-runs", nargs="+", type=Path, default=None, metavar="RUN_DIR",
                   help="summarise these finished run directories instead of training")
    args = p.parse_args()
    if args.from_runs:
        grouped: dict[str, list[dict]] = {}
        for run_dir in args.from_runs:
            pair, record = read_run(run_dir)
            grouped.setdefault(pair, []).append(record)
        results = {pair: summarize(sorted(runs, key=lambda r: r["seed"]), pair)
                   for pair, runs in grouped.items()}
        print(json.dumps({"benchmark": "returns", "from_runs": True, "results": results}))
        return
    out_root = Path(args.out or tempfile.mkdtemp(prefix="bench_returns_"))
    results = {}
    for pair in args.pairs:
        results[pair] = summarize([run_pair(pair, seed, args.steps, out_root) for seed in args.seeds], pair)
    print(json.dumps({"benchmark": "returns", "steps": args.steps or "launch file", "results": results,
                      "run_dirs": str(out_root)}))


if __name__ == "__main__":
    main()
