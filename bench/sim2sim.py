"""Sim-to-sim transfer of policy bundles, measured in one run: MuJoCo and PyBullet returns and their ratio
(`robot-rl sim2sim`'s deployment path: control loop, default safety filter), and each bundle's return
in MuJoCo under a `randomize:` setting (deterministic actions, eval seeds 1 000 000 + i), so a
randomized policy and its nominal peer are compared on the same episodes. Prints one JSON line.

    python bench/sim2sim.py zoo:Hopper-v5_ppo runs/hopper_dr1/bundle --episodes 5 \\
        --randomize body_mass_scale=[0.7,1.3] geom_friction_scale=[0.5,1.5] actuation_delay=[0,0.004]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def _randomization(items: list[str]) -> Any:
    import yaml

    from robot_rl.config import from_dict
    from robot_rl.sim.randomization import RandomizationConfig

    data = {}
    for item in items:
        key, _, value = item.partition("=")
        data[key] = yaml.safe_load(value)
    return from_dict(RandomizationConfig, data, "randomize")


def main() -> None:
    from robot_rl.commands.sim2sim import run_episodes
    from robot_rl.evaluation import evaluate
    from robot_rl.policies import load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", nargs="+", help="bundle folders or zoo:<name>, same task")
    p.add_argument("--episodes", type=int, default=5, help="sim2sim episodes per simulator")
    p.add_argument("--seed", type=int, default=0, help="sim2sim seed of episode 0")
    p.add_argument("--randomize", nargs="*", default=[], metavar="TERM=RANGE",
                   help="a randomize: setting for the MuJoCo robustness column (none: skipped)")
    p.add_argument("--randomized-episodes", type=int, default=20)
    args = p.parse_args()
    randomize = _randomization(args.randomize) if args.randomize else None
    results: dict[str, Any] = {}
    for name in args.bundles:
        policy = load(name)
        start = time.perf_counter()
        sims = {sim: run_episodes(policy, sim, args.episodes, args.seed) for sim in ("mujoco", "pybullet")}
        row: dict[str, Any] = {sim: {"mean": round(r["mean_return"], 1), "std": round(r["std_return"], 1),
                                     "mean_length": sum(r["lengths"]) / len(r["lengths"])}
                               for sim, r in sims.items()}
        base = sims["mujoco"]["mean_return"]
        row["ratio"] = round(sims["pybullet"]["mean_return"] / base, 3) if base else None
        if randomize is not None:
            r = evaluate(policy.spec.name, policy.act_normalized, args.randomized_episodes, 1_000_000,
                         randomize=randomize)
            row["mujoco_randomized"] = {"mean": round(r["mean_return"], 1), "std": round(r["std_return"], 1)}
        row["wall_s"] = round(time.perf_counter() - start, 1)
        results[name] = row
    print(json.dumps({"benchmark": "sim2sim", "episodes": args.episodes, "seed": args.seed,
                      "randomize": (randomize.describe() if randomize else None), "results": results}))


if __name__ == "__main__":
    main()
