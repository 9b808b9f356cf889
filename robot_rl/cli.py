"""The `robot-rl` command. Each sub-command lives in `robot_rl/commands/<name>.py`.

A command module defines `register(subparsers)`, which adds its parser and sets `run` (a function of
the parsed arguments returning an exit code). Modules import heavy dependencies (torch, mujoco) inside
`run`, so `robot-rl --help` and the robot-side commands stay light. Any `RobotRLError` becomes one
line on stderr and exit code 2: a user's mistake never ends in a traceback. So does a module of an
extra that is not installed (the line names the extra), a file-system failure (full disk, read-only
folder) and a bad MUJOCO_GL.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from robot_rl import __version__
from robot_rl.errors import RobotRLError

# Explicit registry: the order is the order of `robot-rl --help`.
COMMAND_MODULES = ("tabular", "train", "launch", "eval", "export", "deploy", "sim2sim", "emulate", "device",
                   "play", "plot", "robustness", "sweep")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits with 2 too; keep its one-line form
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


# The top-level module a command may miss on a robot computer -> the extra that installs it.
EXTRAS = {"torch": "train", "mujoco": "train", "gymnasium": "train", "dm_control": "train",
          "pybullet": "train", "tensorboard": "train", "matplotlib": "train", "tqdm": "train",
          "onnx": "onnx", "onnxruntime": "onnx", "ale_py": "atari", "rclpy": "ros2"}
# MUJOCO_GL values `import mujoco` accepts on Linux (any other raises a RuntimeError deep inside it).
MUJOCO_GL = ("egl", "osmesa", "glfw", "glx", "disable", "disabled", "off", "false", "0", "enable",
             "enabled", "on", "true", "1", "")


def main(argv: Sequence[str] | None = None) -> int:
    _never_fail_on_encoding()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_environment()
        return int(args.run(args) or 0)
    except RobotRLError as err:
        print(f"robot-rl: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        top = (err.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        print(f"robot-rl: error: `robot-rl {args.command}` needs {top}, which is not installed here; "
              f"install the {EXTRAS[top]} extra: pip install 'robot-rl[{EXTRAS[top]}]'", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder: the file system's word, on one line
        if isinstance(err, BrokenPipeError):
            sys.stderr.close()
            return 0
        where = f"{err.filename}: " if err.filename else ""
        print(f"robot-rl: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robot-rl: interrupted", file=sys.stderr)
        return 130


def _never_fail_on_encoding() -> None:
    """Print what the terminal cannot show as escapes (γ → \\u03b3) instead of failing: with
    PYTHONIOENCODING=ascii, a table of values is still a table."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (stream.encoding or "").lower().replace("-", "") != "utf8":
            reconfigure(errors="backslashreplace")


def _check_environment() -> None:
    """Environment variables that would otherwise fail deep inside a library, as one line."""
    gl = os.environ.get("MUJOCO_GL")
    if gl is not None and sys.platform.startswith("linux") and gl.lower().strip() not in MUJOCO_GL:
        raise RobotRLError(f"MUJOCO_GL={gl!r} is not a MuJoCo rendering backend; use one of: "
                           f"{', '.join(MUJOCO_GL[:5])} (or unset it)")


if __name__ == "__main__":
    sys.exit(main())
