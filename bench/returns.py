"""Final returns of full training runs: deterministic evaluation, mean ± std over seeds, wall time.

Each (task, algo) pair trains from its launch file (`launch/<task>_<algo>.yaml`) for every seed, then
evaluates deterministically (10 episodes, the launch file's eval seed). The published peer figures
(RL Zoo PPO, sb3-contrib TRPO, 1M steps) are printed beside ours for the ratio. Prints one JSON line.

    python bench/returns.py --pairs hopper_ppo halfcheetah_ppo --seeds 1 2 3     # hours on 2 cores
    python bench/returns.py --pairs hopper_ppo --seeds 1 --steps 200000           # a shorter check
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=["hopper_ppo"], help="launch file stems, e.g. hopper_ppo")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=None, help="override total_steps (default: the file's)")
    p.add_argument("--out", default=None, help="where the run directories go (default: a temp folder)")
    args = p.parse_args()
    out_root = Path(args.out or tempfile.mkdtemp(prefix="bench_returns_"))
    results = {}
    for pair in args.pairs:
        runs = [run_pair(pair, seed, args.steps, out_root) for seed in args.seeds]
        means = [r["mean_return"] for r in runs]
        results[pair] = {
            "mean": round(statistics.fmean(means), 1),
            "std": round(statistics.pstdev(means), 1) if len(means) > 1 else 0.0,
            "runs": runs, "peer_published": PEER.get(pair),
            "ratio_to_peer": round(statistics.fmean(means) / PEER[pair], 3) if pair in PEER else None,
        }
    print(json.dumps({"benchmark": "returns", "steps": args.steps or "launch file", "results": results,
                      "run_dirs": str(out_root)}))


if __name__ == "__main__":
    main()
