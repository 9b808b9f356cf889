"""`robot-rl deploy BUNDLE --backend mujoco|pybullet|serial|ros2 [--port TTY] [--duration S]`: run a policy
bundle on a robot through the safety filter at its control period, then print the loop statistics
(rate, period jitter, compute latency and overruns as p50/p99/max) and the safety interventions.

Backends come from `BACKENDS`, an explicit registry of modules that each expose
`make_robot(spec, options) -> Robot` (options: `port`, `realtime`, and for the simulated backends
`seed` and `task`). A simulated robot runs one episode (or `--duration` simulated seconds), in real
time unless `--fast`; a serial robot runs until `--duration` or Ctrl-C. SIGINT or SIGTERM ends the run
at the next tick: the safe command and DISABLE are sent (ESTOP instead if the loop had faulted; on
ros2 the safe command is published last), the report printed, and the exit code is 128 + the signal's
number (`robot_rl.stop_signals`, shared with `robot-rl train`). A serial device that an earlier host
left enabled (killed mid-run: its watchdog has put the motors in the safe state) or e-stopped is
refused with one line, exit 2, unless `--recover` RESETs it (or `robot-rl device reset --port`). A bad
bundle, an unknown backend or a robot that is not the bundle's (joint names or count) is one line on
stderr, exit 2, with nothing sent to the motors. `--backend ros2 [--ros-args ...]` runs the same loop
over ROS 2 topics (hardware/ros2_robot.py): after --ros-args, `-r` remaps and `-p NAME:=VALUE` for the
policy node's topic, joint and deadline parameters (`ros2_robot.PARAMETER_OPTIONS`; any other is an
error); the `robot_rl_policy` lifecycle node (`python -m robot_rl.hardware.ros2_policy_node`) runs the
same tick from ROS callbacks, with all its parameters.

A goal task (the cube: `cube:rotate-z`, `cube:reorient`) gets its goals from the host
(hardware/goal_tracker.py): drawn from `--seed` with hold-and-advance on the measured cube orientation,
or fixed with `--goal W,X,Y,Z` / `--goal yaw:DEG`; the report counts the goals reached in a row, and a
drop ends the run (stop reason "dropped", exit 0: the deployment worked, the policy failed).
A relative action (position_delta) is integrated by the control loop from the measured joint positions.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from typing import Any

from robot_rl.commands import seed_arg
from robot_rl.stop_signals import stop_on_signals

BACKENDS: dict[str, str] = {
    "mujoco": "robot_rl.hardware.mujoco_robot",
    "pybullet": "robot_rl.hardware.pybullet_robot",
    "serial": "robot_rl.hardware.serial_robot",
    "ros2": "robot_rl.hardware.ros2_robot",
}
# How a run may end and still count as a success (exit 0).
_CLEAN_STOPS = ("steps", "duration", "episode_end", "dropped", "interrupted")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="run a policy bundle on a robot (mujoco, pybullet, serial or ros2)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="a bundle folder (manifest.json) or zoo:<name>")
    p.add_argument("--backend", required=True, metavar="NAME", help=f"one of: {', '.join(BACKENDS)}")
    p.add_argument("--port", help="serial backend: the device's tty (e.g. the path `robot-rl emulate` made)")
    p.add_argument("--duration", type=float, metavar="S",
                   help="seconds to run (default: one episode on a simulator, until Ctrl-C on a robot)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=None,
                      help="simulated backends: pace the simulator to the wall clock (default)")
    pace.add_argument("--fast", dest="realtime", action="store_false",
                      help="simulated backends: run as fast as possible")
    p.add_argument("--seed", type=seed_arg,
                   help="simulated backends: seed of the episode's initial state (default 0); goal tasks "
                        "(cube), every backend: seed of the goals drawn")
    p.add_argument("--task", help="simulated backends: another task's model (to check a bundle against it)")
    p.add_argument("--max-delta", type=float, default=None, metavar="FRACTION",
                   help="safety filter: largest command change per step, as a fraction of the command "
                        "range (default 0.5; inf: no rate limit)")
    p.add_argument("--recover", action="store_true",
                   help="serial backend: RESET a device that an earlier host left enabled or e-stopped "
                        "(without it, such a device is refused with one line and nothing is sent)")
    p.add_argument("--goal", metavar="W,X,Y,Z|yaw:DEG",
                   help="goal tasks (cube): one fixed goal orientation instead of goals drawn from --seed")
    p.add_argument("--runtime", default="numpy", help="policy runtime: numpy (default), onnx or torch")
    p.add_argument("--json", action="store_true", help="print the statistics as one JSON object")
    p.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=None,
                   help="ros2 backend: ROS arguments: -r remaps, -p NAME:=VALUE for joints, joint_map, "
                        "state_joints, state_topic, imu_topic, command_topic, state_deadline, "
                        "command_deadline")
    p.set_defaults(run=run_deploy)


def backend_module(name: str) -> Any:
    """The backend module registered as `name`; a ConfigError listing the valid names otherwise."""
    from robot_rl.errors import ConfigError

    if name not in BACKENDS:
        raise ConfigError(f"--backend: {name!r} is not a backend; choose one of: {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name])


def robot_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options a backend's `make_robot` gets: port and realtime always, seed/task when given."""
    options: dict[str, Any] = {"port": args.port, "realtime": args.realtime}
    for key in ("seed", "task", "ros_args"):
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    if getattr(args, "recover", False):
        options["recover"] = True
    return options


def run_deploy(args: argparse.Namespace) -> int:
    from robot_rl.errors import ConfigError, RobotRLError
    from robot_rl.hardware.control_loop import ControlLoop
    from robot_rl.hardware.goal_tracker import goal_tracker, parse_goal
    from robot_rl.hardware.safety import SafetyConfig, SafetyFilter
    from robot_rl.policies import load

    module = backend_module(args.backend)
    if args.ros_args and args.backend != "ros2":
        raise ConfigError("--ros-args is for --backend ros2")
    if args.recover and args.backend != "serial":
        raise ConfigError("--recover is for --backend serial (it RESETs the device)")
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration must be > 0 seconds, got {args.duration}")
    policy = load(args.bundle, runtime=args.runtime)
    safety_config = SafetyConfig() if args.max_delta is None else SafetyConfig(max_delta=args.max_delta)
    safety = SafetyFilter(policy.spec, safety_config)
    goals = goal_tracker(policy.spec, seed=args.seed or 0,
                         goal=None if args.goal is None else parse_goal(args.goal))
    options = robot_options(args)
    if goals is not None and args.backend in ("serial", "ros2"):
        options.pop("seed", None)  # the goals' seed here: a robot's start is its own
    robot = module.make_robot(policy.spec, options)
    if goals is not None and hasattr(robot, "on_goal"):  # ros2: a goal on its goal topic replaces ours
        robot.on_goal = goals.set_goal
    loop = ControlLoop(robot, policy, safety, goals=goals)
    error: RobotRLError | None = None
    device: Any = None
    received: list[int] = []
    with stop_on_signals(loop, received):  # every backend, ros2 too (its rclpy context installs none)
        try:
            loop.run(duration=args.duration, close=False)
        except KeyboardInterrupt:
            pass
        except RobotRLError as err:
            error = err
        finally:
            try:
                if hasattr(robot, "status") and error is None:
                    device = robot.status()
            finally:
                robot.close()
    stats = loop.stats()
    if error is not None and stats.steps == 0:
        raise error  # refused before anything was sent (mismatch, bad port, ...): one line, exit 2
    report = {"task": policy.spec.name, "backend": args.backend, "bundle": args.bundle, **stats.to_dict()}
    if device is not None:
        report["device"] = device
    if error is not None:
        report["error"] = str(error)
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print(f"{policy.spec.name} on {args.backend}: {stats.summary()}")
        if device is not None:
            print(f"  device: {json.dumps(device, default=str)}")
    if error is not None:
        raise error
    if received:
        name = signal.Signals(received[0]).name
        done = "safe command published" if args.backend == "ros2" else "safe command sent and motors disabled"
        print(f"robot-rl deploy: stopped by {name}: {done}", file=sys.stderr)
        return 128 + received[0]
    if stats.stop_reason not in _CLEAN_STOPS:
        print(f"robot-rl deploy: stopped by {stats.stop_reason}", file=sys.stderr)
        return 1
    return 0
