"""The `robot-rl` command. Each sub-command lives in `robot_rl/commands/<name>.py`.

A command module defines `register(subparsers)`, which adds its parser and sets `run` (a function of
the parsed arguments returning an exit code). Modules import heavy dependencies (torch, mujoco) inside
`run`, so `robot-rl --help` and the robot-side commands stay light. Any `RobotRLError` becomes one
line on stderr and exit code 2: a user's mistake never ends in a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from robot_rl import __version__
from robot_rl.errors import RobotRLError

# Explicit registry: the order is the order of `robot-rl --help`.
COMMAND_MODULES = ("tabular", "train", "launch", "eval", "export", "deploy", "sim2sim", "emulate", "device",
                   "play", "plot", "robustness")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits with 2 too; keep its one-line form
        self.print_usage(sys.stderr)
        self.exit(2, f"robot-rl: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="robot-rl", description="Train policies in simulation and run them on robots.")
    parser.add_argument("--version", action="version", version=f"robot-rl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"robot_rl.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except RobotRLError as err:
        print(f"robot-rl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robot-rl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `robot-rl ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
