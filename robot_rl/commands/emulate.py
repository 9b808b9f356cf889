"""`robot-rl emulate --task TASK [--link PATH]`: the firmware emulator, serving a pseudo-terminal.

Prints the device path a host should open (and links it at PATH), then serves until SIGINT/SIGTERM.
`kill -USR1 PID` pulls the cable for a second (the link disappears, then comes back on a new pty).
"""

from __future__ import annotations

import argparse
import sys

from robot_rl.commands import seed_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulate", description=__doc__,
                       help="run the firmware emulator on a pseudo-terminal (hardware-in-the-loop)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True,
                   help="task whose MuJoCo engine world is the plant: any task on the engine, e.g. "
                        "InvertedPendulum-v5, Hopper-v5, Reacher-v5, or a launch file (.yaml) whose "
                        "task: is declared")
    p.add_argument("--link", help="symlink the device end of the pty here (stable across reconnects); "
                                  "an existing path is refused, and only the link made here is removed")
    p.add_argument("--force", action="store_true",
                   help="take over an existing symlink at --link (never a file that is not a symlink)")
    p.add_argument("--rate", type=float, default=1000.0, metavar="HZ",
                   help="firmware loop rate (default 1000)")
    p.add_argument("--fault", action="append", default=[], metavar="KIND=VALUE",
                   help="inject a fault on the device's output: drop=P, corrupt=P, garbage=P, truncate=P "
                        "(probabilities per frame, in [0, 1]), delay=SECONDS (0 to 10), mute (or "
                        "mute=on|off), disconnect=AT[:FOR] (seconds); NaN, inf or a word is refused")
    p.add_argument("--physics-dt", type=float, metavar="SECONDS",
                   help="physics step (default: the model's own, as trained; a finer step changes the "
                        "contact dynamics)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated seconds per real second (default 1: real time)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="seed of the plant's initial state and the faults")
    p.add_argument("--protocol-version", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from robot_rl.hardware import protocol
    from robot_rl.hardware.emulator import parse_faults, run_emulator
    from robot_rl.sim.registry import resolve

    if args.task.endswith((".yaml", ".yml")):  # a launch file declaring its task (sim/declared)
        from robot_rl.sim.declared.source import declared_id

        args.task = declared_id(args.task)
    resolve(args.task)  # an unknown task: the registry's error, listing the valid ids
    faults = parse_faults(args.fault)

    def log(text: str) -> None:
        print(f"robot-rl emulate: {text}", file=sys.stdout, flush=True)

    version = protocol.PROTOCOL_VERSION if args.protocol_version is None else args.protocol_version
    return run_emulator(args.task, link=args.link, force=args.force, rate_hz=args.rate, faults=faults,
                        speed=args.speed, seed=args.seed, protocol_version=version,
                        physics_dt=args.physics_dt, log=log)
