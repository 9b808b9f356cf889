"""`robot-rl launch FILE`: run a launch file of any kind — training, a hardware-in-the-loop run, ROS 2.

A launch file's top-level `kind` (default `train`) picks the runner from `LAUNCH_KINDS`, an explicit
registry: "module:function" taking the parsed arguments and returning an exit code. A runner that
starts several processes supervises them (`hardware/processes.py`) and stops them all when one ends
or the launcher gets SIGINT or SIGTERM (forwarded to them; no child and no temporary folder survives).
The train kind stops on either signal after the current update: a final checkpoint, its environments
(async workers too) closed, exit 128 + the signal, resumable with `robot-rl train --resume DIR`.
"""

from __future__ import annotations

import argparse
import importlib

from robot_rl.errors import ConfigError

LAUNCH_KINDS: dict[str, str] = {
    "train": "robot_rl.commands.train:run_train",
    "hil": "robot_rl.hardware.hil:run",
    "ros2": "robot_rl.hardware.ros2_launch:run",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch", help="run a launch file (training, hardware-in-the-loop, ROS 2)")
    p.add_argument("file", help="launch file (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a launch-file field by its dotted name")
    p.add_argument("--out", help="run directory (training files)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_launch, resume=None)


def run_launch(args: argparse.Namespace) -> int:
    from robot_rl.config import read_launch_file

    kind = read_launch_file(args.file, args.overrides).get("kind", "train")
    if kind not in LAUNCH_KINDS:
        raise ConfigError(f"{args.file}: kind {kind!r} is not valid; "
                          f"choose one of: {', '.join(LAUNCH_KINDS)}")
    module, function = LAUNCH_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), function)(args)
