"""The zoo cube (`zoo:cube-rotate-z_ppo`) evaluated deterministically: nominal, under mass and friction
drawn per episode from x U(0.7, 1.3) (±30 %), and at the nine points mass, friction in {0.7, 1, 1.3}.

Each evaluation: `--episodes` episodes of `cube:rotate-z` on the engine (200 steps, 10 s), seeds
seed .. seed + episodes - 1, the bundle's numpy runtime; `success_rate` is the share of episodes that
reached their first goal, `consecutive_successes` the mean of goals reached in a row (the training's
metrics). Prints one JSON line (with the load average: the machine is shared).

    python bench/cube_zoo.py --episodes 50
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from robot_rl.evaluation import evaluate
from robot_rl.policies import load
from robot_rl.robustness import grid_config
from robot_rl.sim.randomization import RandomizationConfig


def metrics(result: dict[str, Any]) -> dict[str, float]:
    return {"success_rate": result["success_rate"], "consecutive_successes": result["consecutive_successes"],
            "mean_return": result["mean_return"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="zoo:cube-rotate-z_ppo")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1_000_000)
    args = parser.parse_args()
    policy = load(args.bundle)
    task = policy.spec.name
    start, load_before = time.perf_counter(), os.getloadavg()
    out: dict[str, Any] = {"bench": "cube_zoo", "bundle": args.bundle, "episodes": args.episodes,
                           "seed": args.seed}
    out["nominal"] = metrics(evaluate(task, policy.act_normalized, args.episodes, args.seed))
    drawn = RandomizationConfig(body_mass_scale=(0.7, 1.3), geom_friction_scale=(0.7, 1.3))
    out["mass_friction_uniform_30pct"] = metrics(evaluate(task, policy.act_normalized, args.episodes,
                                                          args.seed, randomize=drawn))
    grid = {}
    for mass in (0.7, 1.0, 1.3):
        for friction in (0.7, 1.0, 1.3):
            point = grid_config({"body_mass_scale": mass, "geom_friction_scale": friction})
            grid[f"mass={mass:g},friction={friction:g}"] = metrics(
                evaluate(task, policy.act_normalized, args.episodes, args.seed, randomize=point))
    out["grid"] = grid
    out.update(seconds=time.perf_counter() - start, load_before=load_before, load_after=os.getloadavg())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
