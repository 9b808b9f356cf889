"""`robot-rl eval PATH --episodes N [--seed S] [--json]`: deterministic evaluation of a trained policy.

PATH is a run directory (its newest checkpoint, or `--checkpoint best|FILE`) or a policy bundle (a
folder with manifest.json, or `zoo:<name>`); both go through `robot_rl.evaluation.evaluate` and print
the same JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robot_rl.commands import seed_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run directory's or a bundle's policy deterministically")
    p.add_argument("path", help="a run directory, a bundle folder (manifest.json) or zoo:<name>")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=seed_arg, default=None,
                   help="seed of episode 0 (default: the run's eval.seed, or the bundle's evaluation seed)")
    p.add_argument("--checkpoint", default="latest",
                   help="for a run directory: latest (default), best or the path of a checkpoint file")
    p.add_argument("--randomize", action="store_true",
                   help="for a run directory: evaluate under the run's randomize: perturbations")
    p.add_argument("--runtime", choices=("numpy", "onnx", "torch"), default="numpy",
                   help="runtime for a bundle (default: numpy)")
    p.add_argument("--json", action="store_true",
                   help='print {"mean_return": ..., "std_return": ..., "episodes": N} (and "success_rate", '
                        '"consecutive_successes" for a task that counts goals, e.g. the cube; '
                        '"velocity_tracking_error" (m/s) and "falls" for a task with velocity commands)')
    p.set_defaults(run=run_eval)


def is_bundle(path: str) -> bool:
    return path.startswith("zoo:") or (Path(path) / "manifest.json").is_file()


def run_eval(args: argparse.Namespace) -> int:
    from robot_rl.errors import ConfigError
    from robot_rl.evaluation import evaluate

    if args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    if is_bundle(args.path):
        from robot_rl.policies import load

        if args.randomize or args.checkpoint != "latest":
            raise ConfigError("--randomize and --checkpoint apply to a run directory, not to a bundle")

        policy = load(args.path, runtime=args.runtime)
        prov = policy.manifest.provenance
        recorded = prov.get("evaluation") or {}
        seed = args.seed if args.seed is not None else int(recorded.get("seed", 0))
        task, label = policy.spec.name, f"{prov.get('algorithm')} bundle ({args.runtime})"
        result = evaluate(task, policy.act_normalized, args.episodes, seed)
    else:
        from robot_rl.trainer import load_run_policy

        if not (Path(args.path) / "config.yaml").is_file():
            raise ConfigError(f"{args.path}: neither a run directory (config.yaml) nor a policy bundle "
                              f"(manifest.json)")

        config, policy_fn, _ = load_run_policy(args.path, args.checkpoint)
        seed = config.eval.seed if args.seed is None else args.seed
        task, label = config.task, config.algo
        if args.randomize and not config.randomize.active:
            raise ConfigError(f"--randomize: the run {args.path} randomizes nothing (no randomize: section)")
        result = evaluate(task, policy_fn, args.episodes, seed,
                          randomize=config.randomize if args.randomize else None)
    if args.json:
        keys = ("mean_return", "std_return", "episodes", "success_rate", "consecutive_successes",
                "velocity_tracking_error", "falls")
        print(json.dumps({k: result[k] for k in keys if k in result}))
    else:
        print(f"{task} {label}: return {result['mean_return']:.2f} ± {result['std_return']:.2f} "
              f"over {args.episodes} episodes (seed {seed})")
    return 0
