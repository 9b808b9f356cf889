"""`robot-rl eval RUN_DIR --episodes N [--seed S] [--json]`: deterministic evaluation of a trained policy."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run directory's policy deterministically")
    p.add_argument("path", help="a run directory")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=None, help="seed of episode 0 (default: the run's eval.seed)")
    p.add_argument("--json", action="store_true",
                   help='print {"mean_return": ..., "std_return": ..., "episodes": N}')
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from robot_rl.errors import ConfigError
    from robot_rl.evaluation import evaluate
    from robot_rl.trainer import load_run_policy

    if args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    config, policy, _ = load_run_policy(args.path)
    seed = config.eval.seed if args.seed is None else args.seed
    result = evaluate(config.task, policy, args.episodes, seed)
    if args.json:
        print(json.dumps({k: result[k] for k in ("mean_return", "std_return", "episodes")}))
    else:
        print(f"{config.task} {config.algo}: return {result['mean_return']:.2f} ± {result['std_return']:.2f} "
              f"over {args.episodes} episodes (seed {seed})")
    return 0
