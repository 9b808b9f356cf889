"""`robot-rl robustness RUN_DIR|BUNDLE --grid mass=0.5:1.5:5 [--grid friction=0.5:1.5:5] [--episodes N]
[--metric return|success_rate|fall_rate] [--push-interval LOW:HIGH] [--out robustness.png] [--resume]`:
the policy's return over a grid of domain-randomization terms (or pushes: push_x, push_y, push_yaw), each
held at one value (robot_rl.robustness), printed as a table, written as a CSV and a heat-map (or a line
plot for one term) PNG. The CSV and the map's record (robot_rl.robustness_record) are rewritten after
every point: SIGINT/SIGTERM stops at the next step (stop_signals), keeps the finished points and exits
128 + the signal; `--resume` evaluates only the missing points.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from robot_rl.commands import seed_arg

if TYPE_CHECKING:
    from robot_rl.robustness import RobustnessResult
    from robot_rl.robustness_record import MapRecord
    from robot_rl.stop_signals import StopRelay


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
    p.add_argument("--resume", action="store_true",
                   help="finish a stopped map: evaluate only the points missing from its record "
                        "(<out>.robustness.json, rewritten after every point with the CSV); the command "
                        "must be the same map (policy, grid, episodes, seed, metric, ...). SIGINT or SIGTERM "
                        "mid-map keeps the finished points and prints the command to resume. Without "
                        "--resume, a finished map at --out is overwritten, a partial one is refused")
    p.set_defaults(run=run_robustness)


def run_robustness(args: argparse.Namespace) -> int:
    from robot_rl.stop_signals import StopRelay, stop_on_signals

    stopper, received = StopRelay(), list[int]()  # its `reason`: the flag the grid asks
    with stop_on_signals(stopper, received):
        return _robustness(args, stopper, received)


def _robustness(args: argparse.Namespace, stopper: StopRelay, received: list[int]) -> int:
    import signal

    from robot_rl.errors import ConfigError
    from robot_rl.evaluation import resolve_simulator
    from robot_rl.policy_source import load_policy_source
    from robot_rl.robustness import (
        GridStopped,
        draw,
        format_table,
        parse_grid,
        parse_push_interval,
        robustness_grid,
        write_table,
    )
    from robot_rl.robustness_record import (
        MapRecord,
        Point,
        axes_spec,
        check_same,
        policy_actions,
        record_path,
    )

    axes = [parse_grid(g) for g in args.grid]
    interval = None if args.push_interval is None else parse_push_interval(args.push_interval)
    out = Path(args.out)
    if out.suffix.lower() != ".png" or not out.parent.is_dir():
        raise ConfigError(f"--out: {args.out!r} must be a .png in an existing folder")
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError("--max-steps must be >= 1")
    record_file, table = record_path(out), out.with_suffix(".csv")
    recorded = _recorded(record_file, args.resume, args.out)
    source = load_policy_source(args.path, args.checkpoint)
    seed = source.seed if args.seed is None else args.seed
    simulator = resolve_simulator(source.task, args.simulator or source.simulator)
    policy = args.path if args.path.startswith("zoo:") else str(Path(args.path).resolve())
    spec = {"policy": policy, "checkpoint": args.checkpoint,
            "policy_actions": policy_actions(source.act, source.task, simulator), "task": source.task,
            "simulator": simulator,
            "axes": axes_spec(axes), "episodes": args.episodes, "seed": seed, "metric": args.metric,
            "max_steps": args.max_steps, "push_interval": None if interval is None else list(interval)}
    if recorded is not None:
        check_same(recorded.spec, spec, record_file)
    kept = [0, 0]  # finished points, all points: for the stop message

    def save(partial: RobustnessResult, finished: frozenset[tuple[int, ...]]) -> None:
        """The record first, then the CSV: a kill between the two loses no point (resume reads the record)."""
        pushes = partial.pushes
        points = {i: Point(float(partial.mean[i]), float(partial.std[i]),
                           0 if pushes is None else int(pushes[i])) for i in finished}
        MapRecord(spec, points).save(record_file)
        write_table(partial, table, finished)
        kept[:] = [len(finished), partial.mean.size]

    try:
        result = robustness_grid(source.task, source.act, axes, args.episodes, seed, args.metric,
                                 args.max_steps, simulator, interval,
                                 done=None if recorded is None else recorded.points, progress=save,
                                 stop=lambda: stopper.reason is not None)
    except GridStopped:
        signum = received[0] if received else signal.SIGTERM
        resume = _resume_command(args, seed, simulator)
        print(f"robot-rl robustness: stopped by {signal.Signals(signum).name}: kept {kept[0]} of {kept[1]} "
              f"points in {table} (record {record_file}); resume with: {resume}",
              file=sys.stderr, flush=True)
        return 128 + signum
    table = write_table(result, table)
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


def _recorded(record_file: Path, resume: bool, out: str) -> MapRecord | None:
    """The record to resume (None for a fresh map); a ConfigError for --resume with no record, or for a
    partial map at --out without --resume (its finished points would be lost)."""
    from robot_rl.errors import ConfigError
    from robot_rl.robustness_record import read_record

    if not record_file.exists():
        if resume:
            raise ConfigError(f"--resume: nothing to resume at --out {out}: no record {record_file} (a map "
                              f"writes it from its first point on); run the command without --resume")
        return None
    recorded = read_record(record_file)
    if resume:
        return recorded
    if 0 < len(recorded.points) < recorded.total:
        raise ConfigError(f"--out {out} holds a stopped map ({len(recorded.points)} of {recorded.total} "
                          f"points, {record_file}): add --resume to finish it, or give another --out (or "
                          f"delete the record to start over)")
    return None


def _resume_command(args: argparse.Namespace, seed: int, simulator: str) -> str:
    """The command that finishes this map: its own options, the defaults spelled out, plus --resume."""
    import shlex

    words = ["robot-rl", "robustness", args.path]
    for grid in args.grid:
        words += ["--grid", grid]
    words += ["--episodes", str(args.episodes), "--seed", str(seed), "--metric", args.metric,
              "--simulator", simulator]
    if args.max_steps is not None:
        words += ["--max-steps", str(args.max_steps)]
    if args.push_interval is not None:
        words += ["--push-interval", args.push_interval]
    if args.checkpoint != "latest":
        words += ["--checkpoint", args.checkpoint]
    words += ["--out", args.out, *(["--json"] if args.json else []), "--resume"]
    return shlex.join(words)
