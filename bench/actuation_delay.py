"""Robustness of a policy to actuation delay, in plain MuJoCo: return with 0, 2 and 4 ms of delay.

Each delay is fixed for all episodes (`randomize.actuation_delay=[d, d]`), deterministic actions, eval
seeds 1 000 000 + i. Prints one JSON line.

    python bench/actuation_delay.py zoo:Hopper-v5_ppo --episodes 10
"""

from __future__ import annotations

import argparse
import json
import statistics


def main() -> None:
    from robot_rl.policies import load
    from robot_rl.sim import make_env
    from robot_rl.sim.randomization import RandomizationConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", help="a bundle folder or zoo:<name>")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--delays-ms", type=float, nargs="+", default=[0.0, 2.0, 4.0])
    args = p.parse_args()
    policy = load(args.bundle)
    results = {}
    for delay_ms in args.delays_ms:
        d = delay_ms / 1000.0
        returns = []
        for i in range(args.episodes):
            env = make_env(policy.spec.name, seed=1_000_000 + i,
                           randomize=RandomizationConfig(actuation_delay=(d, d)))
            obs, _ = env.reset()
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy.act_normalized(obs))
                total += reward
                done = terminated or truncated
            returns.append(total)
        results[f"{delay_ms:g}ms"] = {"mean": round(statistics.fmean(returns), 1),
                                      "std": round(statistics.pstdev(returns), 1)}
    print(json.dumps({"benchmark": "actuation_delay", "bundle": args.bundle, "episodes": args.episodes,
                      "results": results}))


if __name__ == "__main__":
    main()
