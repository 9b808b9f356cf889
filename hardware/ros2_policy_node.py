"""The ROS 2 policy node `robot_rl_policy`: a policy bundle on a ROS 2 robot, through the hardware layer.

    python -m robot_rl.hardware.ros2_policy_node zoo:Hopper-v5_ppo --ros-args -p trigger:=state
    ros2 lifecycle set /robot_rl_policy activate        # with -p autostart:=false

It is the hardware layer run from ROS callbacks, not a second implementation: a `Ros2Robot` backend
embedded in this node, the bundle's `Policy`, a `SafetyFilter`, and the `ControlLoop` whose tick
(read state -> policy -> safety filter -> command) runs from the node's executor, one tick at a time
(`ControlLoop.start`/`tick`/`hold`/`stop`). This module is the entry point and needs rclpy only when
run; the node class is `ros2_policy_lifecycle.PolicyNode`, its parameters `ros2_node_params`, its
timing rules `ros2_node_timing`, its diagnostics the pure function `ros2_diagnostics.diagnose`.

**Timing.** The loop runs at the bundle's control period (`period` overrides it, for benchmarks).
`trigger:=state` (default): a fresh JointState runs the tick as soon as it arrives, when one is due
(`StateSchedule`: a token bucket at the control rate, so a driver at that rate has every state answered
and a faster one is down-sampled), so the command answers the newest state with no phase delay; a
watchdog timer (period: the stale timeout plus a tenth of a control period, at most 0.5 ms; restarted
by every state's arrival, ticked or paced out) runs a tick when states stop. `trigger:=timer`: a timer
at the control period runs every tick, whatever the state's phase (so a state may be up to a period
old), with the same watchdog. `executor:=auto` (default) runs the callbacks on rclpy's
EventsExecutor where rclpy has one (Jazzy and later), else on its SingleThreadedExecutor, whose
Python work per wake-up over a lifecycle node's services, timers and QoS event handlers (~0.3 ms
here) made the node drop states at 500 Hz. `realtime_priority:=N` (1-99; default 0, off) runs the
node's threads under SCHED_FIFO, as ros2_control's controller manager does, where permitted.

**Stale state.** A state's age is measured from its arrival (whatever the pacing). Every tick checks
the newest state's age first: older than `stale_timeout` (default 1.5 control periods), it is answered
with the *safe command* (zeros for a torque or velocity bundle; for position control, hold the last
measured positions, within the limits), never with the policy's. So the safe command follows the last
state after the timeout plus at most 0.5 ms, i.e. within two control periods with half a period to
spare for scheduling delays, for a driver at, below or above the control rate, and is repeated every
watchdog period while the state stays stale (a state half a period late counts as stale: raise the
timeout for a jittery driver, at the cost of a later safe command). The node reports it at once
(diagnostics level STALE, a warning in the log). The safety filter's own stale check (sequence and
stamp) stays behind it.

**Lifecycle** (rclpy's lifecycle node; `ros2 lifecycle` or the `~/change_state` service):
configure = load and verify the bundle, create the robot's subscriptions and publisher (the Robot's
configure); activate = the control loop's start: joints mapped by name onto the policy's order, the
newest JointState checked for every joint a driver must publish (the commanded ones and the bundle's
`task_spec.state_joints`, found by name in any order, extra joints ignored) and every field the policy
reads, the robot activated and the filter seeded from the measured state; a mismatch refuses the
transition with an error that names both sides (the node stays inactive, logs it and reports it in
diagnostics); deactivate = the Robot's deactivate (the safe command is published once);
cleanup/shutdown close the robot; an error e-stops it. With `autostart` (default true) the node
configures itself, waits for the first JointState, and activates; a refusal then ends the process
with exit code 2 and the error on stderr.

**E-stop** (`estop`, std_msgs/Bool, reliable, depth 10; `estop_topic:=` empty turns it off): `true`
from any lifecycle state stops ticking, e-stops the control loop (the filter holds the safe action,
the robot publishes its safe command once) and latches: activation is refused, whatever arrives
after (a `false` too), until the cleanup transition; diagnostics report it at ERROR level.

**QoS**: state in best effort (sensor-data profile), depth 1; commands out reliable, depth 1, with
an offered deadline `command_deadline` (default 2 control periods; misses are counted in the
diagnostics). `state_deadline` > 0 also requests a deadline on the state topic: only a driver that
offers one at least as short then connects (the sim bridge offers 1.5 periods), so it is off by
default; the stale check covers the state either way. See `robot_rl.hardware.ros2_robot`.

**Diagnostics** (`diagnostics`, diagnostic_msgs/DiagnosticArray, every `diagnostics_period` s and at
once on a change of stale state or a refusal): lifecycle, rate, period/latency/jitter percentiles over
the last ticks, safety interventions by reason, JointStates received and rejected by reason, deadline
misses and QoS problems, as key/value pairs.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from robot_rl.errors import ConfigError, RobotRLError
from robot_rl.hardware.ros2_node_params import EXECUTORS, NODE_NAME, PARAMETERS


def set_realtime_priority(priority: int, logger: Any = None) -> bool:
    """SCHED_FIFO at `priority` (1-99) for this thread and the threads it starts from now on (the
    executor's), as ros2_control's controller manager does: a controller then wakes when its state
    arrives, not when a busy machine gets round to it. 0: leave the scheduling alone. Needs root or
    CAP_SYS_NICE; without it a warning, and the node runs as before."""
    import os

    if not priority:
        return False
    if not 1 <= int(priority) <= 99:
        raise ConfigError(f"realtime_priority: must be 0 (off) or 1..99, got {priority}")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (OSError, AttributeError) as err:
        if logger is not None:
            logger.warning(f"realtime_priority {priority}: not permitted here ({err}); running without")
        return False
    return True


def make_executor(kind: str, context: Any) -> Any:
    """rclpy's EventsExecutor ("events", `rclpy.experimental` since Jazzy: callbacks dispatched from
    middleware events, without the per-wait Python work of building a wait set over every service,
    timer and QoS event handler of a lifecycle node, ~0.3 ms a wake-up here) or SingleThreadedExecutor
    ("single"); "auto": events where rclpy has it, else single."""
    from rclpy.executors import SingleThreadedExecutor

    if kind not in EXECUTORS:
        raise ConfigError(f"executor: {kind!r} is not valid; choose one of: {', '.join(EXECUTORS)}")
    if kind in ("auto", "events"):
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            if kind == "events":
                raise ConfigError("executor: events needs rclpy.experimental.EventsExecutor (ROS 2 Jazzy "
                                  "or later); use executor:=single") from None
        else:
            return EventsExecutor(context=context)
    return SingleThreadedExecutor(context=context)


def run_deploy(args: Any) -> int:
    """`robot-rl deploy BUNDLE --backend ros2 [--ros-args ...]` as this lifecycle node, for the deploy
    command to call with its parsed arguments (`bundle`, `runtime`, `max_delta`, `duration`, and
    `ros_args`: the list after `--ros-args`)."""
    argv = [NODE_NAME, str(args.bundle), "--ros-args", *list(getattr(args, "ros_args", None) or [])]
    for key in ("runtime", "max_delta"):
        value = getattr(args, key, None)
        if value is not None:
            argv += ["-p", f"{key}:={value!r}" if isinstance(value, float) else f"{key}:={value}"]
    return main(argv, duration=getattr(args, "duration", None))


def main(argv: list[str] | None = None, duration: float | None = None) -> int:
    """`python -m robot_rl.hardware.ros2_policy_node [BUNDLE] [--ros-args ...]`: run the node until
    SIGINT/SIGTERM or `duration` seconds (then deactivate: the safe command is sent), or a refused
    autostart (exit code 2)."""
    import signal

    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv if argv is None else argv)
    plain = remove_ros_args(argv)[1:]
    if len(plain) > 1 or (plain and plain[0].startswith("-")):
        print(f"usage: {NODE_NAME} [BUNDLE] [--ros-args -p NAME:=VALUE ...]; parameters: "
              f"{', '.join(PARAMETERS)}", file=sys.stderr)
        return 2
    context = rclpy.Context()
    rclpy.init(args=argv, context=context, signal_handler_options=SignalHandlerOptions.NO)
    stop: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    from robot_rl.hardware.ros2_policy_lifecycle import PolicyNode

    node = PolicyNode(plain[0] if plain else None, context=context)
    try:
        set_realtime_priority(node.get_parameter("realtime_priority").value, node.get_logger())
        executor = make_executor(node.get_parameter("executor").value, context)
        executor.add_node(node)
        end = time.monotonic() + duration if duration else math.inf
        while not stop and not node.done and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
        if node.done and node.error:
            print(f"{NODE_NAME}: error: {node.error}", file=sys.stderr)
        return node.exit_code
    except RobotRLError as err:
        print(f"{NODE_NAME}: error: {err}", file=sys.stderr)
        return 2
    finally:
        try:
            node.trigger_shutdown()  # deactivates first when active: the safe command goes out
        except Exception as err:  # never let cleanup hide the exit code
            print(f"{NODE_NAME}: shutdown: {err}", file=sys.stderr)
        node.destroy_node()
        context.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
