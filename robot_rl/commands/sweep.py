"""`robot-rl sweep LAUNCH_FILE --seeds N --grid KEY=[V1,V2] [--address auto|ray://HOST:PORT] [--out DIR]
[--max-concurrent K]` and `robot-rl sweep --resume DIR`: grid × seeds as Ray Tune trials (the
`distributed` extra); see robot_rl.distributed.sweep."""

from __future__ import annotations

import argparse
import json
import sys
import time

from robot_rl.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    description = ("Run every combination of the --grid values, each with --seeds seeds, as Ray Tune "
                   "trials (a local Ray instance unless --address); each trial is the ordinary trainer "
                   "writing its ordinary run directory. At the end: a table of final evaluation return per "
                   "configuration, results.csv, comparison.png and the best run exported to best_bundle/. "
                   "Needs the distributed extra.")
    p = sub.add_parser("sweep", help="run a grid of configurations × seeds as Ray Tune trials",
                       description=description)
    p.add_argument("file", nargs="?", help="launch file (YAML); not with --resume")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds per configuration: the launch file's seed, +1, ... (default 3)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=[V1,V2]",
                   help="a launch-file key (dotted) and its values, e.g. ppo.learning_rate=[1e-4,3e-4]; "
                        "repeat for more keys (every combination runs)")
    p.add_argument("--address", help="a running Ray cluster: auto (this machine's), HOST:PORT or "
                                     "ray://HOST:PORT (default: start a local instance)")
    p.add_argument("--num-cpus", type=int, default=None,
                   help="CPUs of the local Ray instance (default: all); each trial takes one")
    p.add_argument("--out", help="the sweep folder (default sweeps/<task>_<algo>_<time>)")
    p.add_argument("--max-concurrent", type=int, default=None, metavar="K",
                   help="at most K trials at once (default: as many as there are CPUs)")
    p.add_argument("--resume", metavar="DIR", help="finish a sweep: run only its unfinished trials, killed "
                                                   "ones from their newest checkpoint")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.set_defaults(run=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from robot_rl.distributed import report, sweep

    if args.num_cpus is not None and args.num_cpus < 1:
        raise ConfigError(f"--num-cpus: must be >= 1, got {args.num_cpus}")
    if args.resume:
        if args.file or args.grid:
            raise ConfigError("--resume runs the sweep's own plan; give no launch file or --grid with it")
        plan = sweep.SweepPlan.load(args.resume)
    else:
        if not args.file:
            raise ConfigError("a launch file is required (or --resume DIR)")
        out = args.out
        if out is None:
            from robot_rl.launch import load_train_config

            config = load_train_config(args.file)
            out = f"sweeps/{config.task.replace(':', '_')}_{config.algo}_{time.strftime('%Y%m%d-%H%M%S')}"
        plan = sweep.new_plan(args.file, args.grid, args.seeds, out, args.max_concurrent)
    if not args.resume or sweep.pending_trials(plan):  # an address that does not answer: before any file
        from robot_rl.distributed.cluster import connect

        ray = connect(args.address, num_cpus=args.num_cpus)
        if args.address is None:  # a trial needing more CPUs than the instance has: before any file
            launch = plan.launch_file if args.resume else args.file
            trials = sweep.pending_trials(plan) if args.resume else plan.trials()
            sweep.check_local_cpus(ray, 1 + max(sweep.rollout_workers(launch, t) for t in trials))
    if not args.resume:
        sweep.create(plan, args.file)
    errors = sweep.run_sweep(plan, args.address, num_cpus=args.num_cpus)
    summary = report.finish(plan, errors)
    for name, error in errors.items():
        print(f"trial {name} failed: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps({**summary, "failed": sorted(errors)}))
    else:
        print(summary["table"])
        print(f"trials: {summary['csv']}; plot: {summary['plot']}; best run's bundle: {summary['bundle']}")
    if summary["finished"] < summary["trials"]:
        print(f"{summary['trials'] - summary['finished']} trials did not finish; "
              f"`robot-rl sweep --resume {plan.out}` runs them", file=sys.stderr)
        return 1
    return 0
