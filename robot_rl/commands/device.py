"""`robot-rl device reset --port TTY`: RESET a serial device on purpose, e.g. one that a killed or
faulted host left enabled (its watchdog has put the motors in the safe state) or e-stopped.

Sends HELLO (the protocol version is checked first), GET_STATUS, RESET and GET_STATUS, and prints the
device's flags before and after. RESET clears the e-stop and the watchdog latch, turns the motors off
and leaves the device unconfigured; nothing else is sent. Exit 0 once the device is reset.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("device", help="serial device maintenance (reset an e-stopped or abandoned device)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    reset = actions.add_parser("reset", description=__doc__,
                               help="RESET the device: e-stop and watchdog latch cleared, motors off",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    reset.add_argument("--port", required=True,
                       help="the device's tty (e.g. the path `robot-rl emulate --link` made)")
    reset.set_defaults(run=run_reset)


def run_reset(args: argparse.Namespace) -> int:
    from robot_rl.hardware.serial_robot import flag_names, reset_device

    info, before, after = reset_device(args.port)
    print(f"{info.device_name!r} at {args.port}: flags {flag_names(before.flags)} (last fault "
          f"{before.last_fault.name}) -> RESET -> {flag_names(after.flags)}")
    return 0
