"""`robot-rl robustness RUN_DIR|BUNDLE --grid mass=0.5:1.5:5 [--grid friction=0.5:1.5:5] [--episodes N]
[--metric return|success_rate|fall_rate] [--push-interval LOW:HIGH] [--out robustness.png]`: the policy's
return over a grid of domain-randomization terms (or pushes: push_x, push_y, push_yaw), each held at one
value (robot_rl.robustness), printed as a table, written as a CSV and a heat-map (or a line plot for one
term) PNG.
"""

from __future__ import annotations

import argparse
import json
import sys

from robot_rl.commands import seed_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness",
                       help="a policy's return over a grid of randomization terms (mass, friction, ...)")
    p.add_argument("path", help="a run directory, a bundle folder (manifest.json) or zoo:<name>")
    p.add_argument("--grid", action="append", required=True, metavar="TERM=LOW:HIGH:N",
                   help="a term of sim.randomization (body_mass_scale or mass, geom_friction_scale or "
                        "friction, joint_damping_scale or damping, actuator_gain_scale or gain, "
                        "actuation_delay, gravity_tilt, observation_noise, action_noise, "
                        "initial_state_noise, or a push of a floating base: push_x, push_y m/s, push_yaw "
                        "rad/s, one kick of that size every --push-interval) and its values: LOW:HIGH:N "
                        "points or V1,V2,...; once or twice")
    p.add_argument("--episodes", type=int, default=5, help="episodes per grid point (default 5)")
    p.add_argument("--seed", type=seed_arg, default=None,
                   help="seed of episode 0 (default: the evaluation seed)")
    p.add_argument("--max-steps", type=int, default=None, help="end each episode after this many steps")
    p.add_argument("--metric", choices=("return", "success_rate", "fall_rate"), default="return",
                   help="per point: the mean return, the share of episodes that succeed (a task reporting "
                        "success) or that end in a fall (a legged task); default return")
    p.add_argument("--push-interval", default=None, metavar="LOW:HIGH",
                   help="with a push axis: seconds to the first push and between two, drawn per push "
                        "(default 2:4: 2 to 5 pushes in the quadruped's 10-s episode)")
    p.add_argument("--simulator", choices=("gymnasium", "engine"), default=None,
                   help="the physics to evaluate on (default: the one the policy was trained on: the MuJoCo "
                        "engine for vectorization: batched, else Gymnasium's or dm_control's)")
    p.add_argument("--checkpoint", default="latest", help="for a run directory: latest, best or a file")
    p.add_argument("--out", default="robustness.png", help="the PNG; the CSV table goes beside it")
    p.add_argument("--json", action="store_true", help="print the grid as JSON instead of a table")
    p.set_defaults(run=run_robustness)


def run_robustness(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robot_rl.errors import ConfigError
    from robot_rl.evaluation import resolve_simulator
    from robot_rl.policy_source import load_policy_source
    from robot_rl.robustness import (
        draw,
        format_table,
        parse_grid,
        parse_push_interval,
        robustness_grid,
        write_table,
    )

    axes = [parse_grid(g) for g in args.grid]
    interval = None if args.push_interval is None else parse_push_interval(args.push_interval)
    out = Path(args.out)
    if out.suffix.lower() != ".png" or not out.parent.is_dir():
        raise ConfigError(f"--out: {args.out!r} must be a .png in an existing folder")
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError("--max-steps must be >= 1")
    source = load_policy_source(args.path, args.checkpoint)
    seed = source.seed if args.seed is None else args.seed
    simulator = resolve_simulator(source.task, args.simulator or source.simulator)
    result = robustness_grid(source.task, source.act, axes, args.episodes, seed, args.metric, args.max_steps,
                             simulator, interval)
    table = write_table(result, out.with_suffix(".csv"))
    draw(result, out, f"{source.task}: {source.label}")
    if result.unpushed() and result.push_interval is not None:
        low, high = result.push_interval
        print(f"robot-rl robustness: warning: {result.unpushed()} point(s) with a kick got no push: their "
              f"episodes ended (--max-steps, a fall) before the first, {low:g}-{high:g} s in "
              f"(--push-interval)", file=sys.stderr)
    if args.json:
        print(json.dumps({"task": source.task, "simulator": simulator, "metric": args.metric,
                          "episodes": args.episodes, "seed": seed,
                          "axes": {a.term: list(a.values) for a in axes}, "mean": result.mean.tolist(),
                          "std": result.std.tolist(), "push_interval": result.push_interval,
                          "pushes": None if result.pushes is None else result.pushes.tolist(),
                          "png": str(out), "csv": str(table)}))
    else:
        print(format_table(result))
        print(f"wrote {out} and {table}")
    return 0
