"""`robot-rl task check FILE`: load a task declared in a launch file (or a file holding only the `task:`
mapping) and print its joints, actuators, observation layout and terms, before any training starts.

A wrong joint or term name, a model that does not compile: the one-line error of the declaration. A
launch file whose `task:` is a registered id: that task's layout, said to be registered (not declared).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("task", help="check a task declared in a launch file (joints, actuators, terms)")
    actions = p.add_subparsers(dest="task_command", metavar="ACTION")
    actions.required = True
    check = actions.add_parser("check", help="load the declared task and print its layout and terms")
    check.add_argument("file", help="a launch file whose task: is a mapping, or a file of that mapping")
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    from robot_rl.sim.declared.report import describe_file

    print(describe_file(args.file))
    return 0
