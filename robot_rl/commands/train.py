"""`robot-rl train FILE [--set KEY=VALUE ...] [--out DIR] [--resume DIR]`: train from a launch file.

SIGINT or SIGTERM (also to `robot-rl launch` of a training file) ends the run after the current update:
a final checkpoint is written atomically, the environments (async workers included) are closed, a line
says how to resume (`robot-rl train --resume DIR`), and the exit code is 128 + the signal's number."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from typing import Any

from robot_rl.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a policy from a launch file",
                       description="Train a policy from a launch file (launch/<task>_<algo>.yaml).")
    p.add_argument("file", nargs="?", help="launch file (YAML); optional with --resume")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a launch-file field by its dotted name, e.g. --set ppo.epochs=5")
    p.add_argument("--out", help="run directory (default: runs/<task>_<algo>_s<seed>_<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint")
    p.add_argument("--json", action="store_true", help="print the final evaluation as one JSON line")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from robot_rl.stop_signals import StopRelay, stop_on_signals

    relay, received = StopRelay(), list[int]()
    with stop_on_signals(relay, received):  # before the environments: their workers inherit it
        return _train(args, relay, received)


def _train(args: argparse.Namespace, relay: Any, received: list[int]) -> int:
    from robot_rl.launch import load_train_config, trainer_class
    from robot_rl.run_base import TrainingStopped
    from robot_rl.run_dir import has_checkpoints

    if args.resume:
        if args.overrides:
            raise ConfigError("--set cannot change a run being resumed; its config.yaml is authoritative")
        if args.file or args.out:
            given = f"launch file {args.file}" if args.file else f"--out {args.out}"
            raise ConfigError(f"--resume {args.resume} continues the run with its own config.yaml and "
                              f"folder; {given} would be ignored: give one or the other")
        from robot_rl.run_base import read_resume_config

        config, _ = read_resume_config(args.resume)
        trainer = trainer_class(config.algo).resume(args.resume, config)
    else:
        if not args.file:
            raise ConfigError("a launch file is required (or --resume RUN_DIR)")
        config = load_train_config(args.file, args.overrides)
        task = config.task.replace(':', '_').replace('/', '_').replace('.yaml', '')  # declared:<path>
        out = args.out or f"runs/{task}_{config.algo}_s{config.seed}_" \
                          f"{time.strftime('%Y%m%d-%H%M%S')}"
        if has_checkpoints(out):
            raise ConfigError(f"--out {out} already holds a run; use --resume {out} to continue it")
        if config.task.startswith("declared:"):  # the run keeps its own copy of the task and model
            from robot_rl.sim.declared.snapshot import snapshot

            config = dataclasses.replace(config, task=snapshot(config.task, out))
        trainer = trainer_class(config.algo)(config, out)
    if trainer.config.randomize.active:  # the ranges in the log (config.yaml holds them too)
        print(trainer.config.randomize.describe(), file=sys.stderr, flush=True)
    relay.attach(trainer)
    try:
        result = trainer.train()
    except TrainingStopped as stopped:
        print(f"robot-rl train: {stopped}; continue with: robot-rl train --resume {trainer.run_dir}",
              file=sys.stderr, flush=True)
        return 128 + (received[0] if received else signal.SIGTERM)
    summary = {"run_dir": str(trainer.run_dir), "step": result["step"],
               "mean_return": result["mean_return"], "std_return": result["std_return"],
               "episodes": result["episodes"], "wall_time_s": round(result["wall_time_s"], 2)}
    print(json.dumps(summary) if args.json else
          f"done: {summary['step']} steps in {summary['wall_time_s']} s; evaluation return "
          f"{summary['mean_return']:.1f} ± {summary['std_return']:.1f} over {summary['episodes']} episodes; "
          f"run directory {summary['run_dir']}")
    return 0
