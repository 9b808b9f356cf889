"""The ROS 2 policy node `robot_rl_policy`: a policy bundle on a ROS 2 robot, through the hardware layer.

    python -m robot_rl.hardware.ros2_policy_node zoo:Hopper-v5_ppo --ros-args -p trigger:=state
    ros2 lifecycle set /robot_rl_policy activate        # with -p autostart:=false

It is the hardware layer run from ROS callbacks, not a second implementation: a `Ros2Robot` backend
embedded in this node, the bundle's `Policy`, a `SafetyFilter`, and the `ControlLoop` whose tick
(read state -> policy -> safety filter -> command) runs from the node's executor, one tick at a time
(`NodeControlLoop` adds `start`/`tick`/`stop` to `ControlLoop`, which only has a blocking `run`).

**Timing.** The loop runs at the bundle's control period (`period` overrides it, for benchmarks).
`trigger:=state` (default): a fresh JointState runs the tick as soon as it arrives, when one is due
(`StateSchedule`: a token bucket at the control rate, so a driver at that rate has every state answered
and a faster one is down-sampled), so the command answers the newest state with no phase delay; a
watchdog timer (period: the stale timeout plus a tenth of a control period, at most 0.5 ms; restarted
by every tick) runs a tick when states stop, which the safety filter then answers with the safe
command. `trigger:=timer`: a timer at the control period runs every tick, whatever the state's phase
(so a state may be up to a period old). `executor:=auto` (default) runs the callbacks on rclpy's
EventsExecutor where rclpy has one (Jazzy and later), else on its SingleThreadedExecutor, whose
Python work per wake-up over a lifecycle node's services, timers and QoS event handlers (~0.3 ms
here) made the node drop states at 500 Hz. `realtime_priority:=N` (1-99; default 0, off) runs the
node's threads under SCHED_FIFO, as ros2_control's controller manager does, where permitted.

**Stale state.** The filter's stale timeout is `stale_timeout` (default 1.5 control periods): with
`trigger:=state` the safe command (zero torque or velocity, or hold the measured position) follows
the last state after the timeout plus at most 0.5 ms, i.e. within two control periods with half a
period to spare for scheduling delays (a state half a period late counts as stale: raise the timeout
for a jittery driver, at the cost of a later safe command), and the node reports it at once
(diagnostics level STALE, a warning in the log).

**Lifecycle** (rclpy's lifecycle node; `ros2 lifecycle` or the `~/change_state` service):
configure = load and verify the bundle, create the robot's subscriptions and publisher (the Robot's
configure); activate = the control loop's start: joints mapped by name onto the policy's order, the
state checked for every field the policy reads, the robot activated and the filter seeded from the
measured state; a mismatch refuses the transition with an error that names both sides (the node
stays inactive, logs it and reports it in diagnostics); deactivate = the Robot's deactivate (the safe
command is published once); cleanup/shutdown close the robot; an error e-stops it. With `autostart`
(default true) the node configures itself, waits for the first JointState, and activates; a refusal
then ends the process with exit code 2 and the error on stderr.

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

import collections
import dataclasses
import gc
import math
import sys
import time
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, RobotRLError
from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.robot import Lifecycle, RobotState
from robot_rl.hardware.ros2_robot import check_ranges, seconds_range
from robot_rl.spec import TaskSpec

NODE_NAME = "robot_rl_policy"
TRIGGERS = ("state", "timer")
EXECUTORS = ("auto", "events", "single")
#: Parameters and defaults; list-valued ones are typed (string or double arrays).
PARAMETERS: dict[str, Any] = {
    "bundle": "",
    "runtime": "numpy",
    "state_topic": "joint_states",
    "imu_topic": "",
    "command_topic": "commands",
    "diagnostics_topic": "diagnostics",
    "estop_topic": "estop",
    "joints": [],
    "joint_map": [],
    "state_joints": [],
    "period": 0.0,
    "trigger": "state",
    "executor": "auto",
    "realtime_priority": 0,
    "stale_timeout": 0.0,
    "max_delta": 0.5,
    "safety_limits": True,
    "command_low": [],
    "command_high": [],
    "state_deadline": 0.0,
    "command_deadline": -1.0,
    "diagnostics_period": 1.0,
    "autostart": True,
    "activate_timeout": 0.0,
}
_DOUBLE_ARRAYS = ("command_low", "command_high")
PARAMETER_HELP = {
    "bundle": "policy bundle folder or zoo:<name>",
    "runtime": "numpy (default), onnx or torch",
    "state_topic": "sensor_msgs/JointState in (relative names follow the node's namespace)",
    "imu_topic": "sensor_msgs/Imu in, for bundles that observe the base (empty: none)",
    "command_topic": "std_msgs/Float64MultiArray out, one value per joint in `joints` order",
    "diagnostics_topic": "diagnostic_msgs/DiagnosticArray out: timing, interventions, rejected states",
    "diagnostics_period": "seconds between diagnostics (each costs ~0.5-1 ms of the control thread)",
    "estop_topic": "std_msgs/Bool in: true e-stops the node from any state until cleanup (empty: none)",
    "joints": "the robot's joint names in the command controller's order (default: the bundle's)",
    "joint_map": "ROBOT_NAME=POLICY_NAME for robot joints named differently from the bundle's",
    "state_joints": "JointState names forming qpos/qvel, in order (default: the whole message)",
    "period": "control period in seconds (0: the bundle's)",
    "trigger": "state: tick on each fresh JointState; timer: tick on a timer",
    "executor": "auto (events where rclpy has it, else single), events or single",
    "realtime_priority": "SCHED_FIFO priority 1-99 for the node's threads (0: off; needs CAP_SYS_NICE)",
    "stale_timeout": "seconds without a new state before the safe command (0: 1.5 control periods)",
    "max_delta": "largest command change per step, fraction of the command range (inf: none)",
    "safety_limits": "clip to the limits, rate limit and stale check (NaN rejection always stays)",
    "command_low": "per-joint lower command limits in policy order, to tighten the bundle's",
    "command_high": "per-joint upper command limits in policy order, to tighten the bundle's",
    "state_deadline": "requested deadline on the state topic, s (0: none; -1: 2 periods)",
    "command_deadline": "offered deadline on the command topic, s (-1: 2 periods; 0: none)",
    "autostart": "configure and activate at start (else wait for lifecycle transitions)",
    "activate_timeout": "autostart: seconds to wait for a first JointState (0: forever)",
}


# --------------------------------------------------------------------------------------------------
# The control loop, one tick at a time


class NodeControlLoop(ControlLoop):
    """`ControlLoop` driven from callbacks: `start()` and `tick()` (ControlLoop's), and `stop()`
    (deactivate; the robot stays open). Timing records keep the last `window` ticks, so a node that
    runs for days keeps a fixed memory."""

    window = 2048

    def _reset_records(self) -> None:
        super()._reset_records()
        for name in ("_periods", "_jitter", "_latency", "_lateness", "_overrun"):
            setattr(self, name, collections.deque(maxlen=self.window))

    @property
    def steps(self) -> int:
        """Commands written since `start`."""
        return self._steps

    def stop(self, reason: str = "deactivated") -> None:
        """Deactivate the robot (its safe command) and end the run; the robot is left open."""
        self._mapping = None
        self._stop_reason = reason
        self._t_end = self._clock()
        if self.robot.lifecycle is Lifecycle.ACTIVE:
            self.robot.deactivate()


class StateSchedule:
    """When a fresh state runs a tick: a token bucket at the control rate. A token accrues per control
    period (at most `capacity`); a state that finds at least half a token ticks and spends one. A driver
    at the control rate has every state ticked, a late one and the next on time alike (the bucket
    absorbs the jitter); a faster driver is down-sampled to the control rate on average; after a gap
    at most `capacity` states tick in a row."""

    capacity = 2.0

    def __init__(self, period: float) -> None:
        self.period = period
        self.tokens = 1.0
        self.last: float | None = None

    def due(self, now: float) -> bool:
        if self.last is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) / self.period)
        self.last = now
        if self.tokens < 0.5:
            return False
        self.tokens -= 1.0
        return True


# --------------------------------------------------------------------------------------------------
# Setup from parameters (no ROS needed)


def tightened_spec(spec: TaskSpec, low: list[float], high: list[float]) -> TaskSpec:
    """`spec` with its command limits narrowed to [low, high] (empty lists leave them); never widened."""
    action = spec.action
    new_low, new_high = np.array(action.low), np.array(action.high)
    for name, values, pick in (("command_low", low, np.maximum), ("command_high", high, np.minimum)):
        if len(values) == 0:
            continue
        if len(values) != spec.act_dim:
            raise ConfigError(f"{name}: {len(values)} values for {spec.act_dim} joints "
                              f"{list(spec.joint_names)}")
        if name == "command_low":
            new_low = pick(new_low, values)
        else:
            new_high = pick(new_high, values)
    if (new_low > new_high).any():
        raise ConfigError(f"command limits: low {new_low.tolist()} is above high {new_high.tolist()}")
    if np.array_equal(new_low, action.low) and np.array_equal(new_high, action.high):
        return spec
    return dataclasses.replace(spec, action=dataclasses.replace(action, low=tuple(new_low.tolist()),
                                                                high=tuple(new_high.tolist())))


def build_loop(p: dict[str, Any], node: Any, on_state: Any) -> tuple[NodeControlLoop, Any]:
    """The control loop and the robot for the parameters `p`, embedded in `node` (robot configured)."""
    from robot_rl.hardware.ros2_robot import Ros2Robot
    from robot_rl.hardware.safety import SafetyConfig, SafetyFilter
    from robot_rl.policies import load

    if not p["bundle"]:
        raise ConfigError("the parameter bundle is not set (a bundle folder or zoo:<name>)")
    if p["trigger"] not in TRIGGERS:
        raise ConfigError(f"trigger: {p['trigger']!r} is not valid; choose one of: {', '.join(TRIGGERS)}")
    policy = load(p["bundle"], runtime=p["runtime"])
    spec = policy.spec
    period = p["period"] or spec.control_period
    if not (math.isfinite(period) and period > 0):
        raise ConfigError(f"period: must be a positive number of seconds, got {period}")
    stale = p["stale_timeout"] or 1.5 * period  # the safe command within 2 periods, with a margin
    safety = SafetyFilter(tightened_spec(spec, list(p["command_low"]), list(p["command_high"])),
                          SafetyConfig(max_delta=p["max_delta"], stale_timeout=stale,
                                       enabled=p["safety_limits"]))
    robot = Ros2Robot(spec, node=node, joints=list(p["joints"]) or None, joint_map=list(p["joint_map"]),
                      state_joints=list(p["state_joints"]), state_topic=p["state_topic"],
                      imu_topic=p["imu_topic"], command_topic=p["command_topic"],
                      state_deadline=p["state_deadline"], command_deadline=p["command_deadline"],
                      period=period, on_state=on_state)
    robot.configure()
    return NodeControlLoop(robot, policy, safety, period=period, realtime=True, clock=time.monotonic), robot


def coerce_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """Parameter values checked against the defaults' types: numbers as floats, string and number
    lists; a ConfigError naming the parameter otherwise (YAML reads `[y, n]` as booleans: quote names)."""
    out = dict(values)
    for key, default in PARAMETERS.items():
        value = out[key]
        try:
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, float):
                ok = not isinstance(value, bool)
                value = float(value)
            elif isinstance(default, list):
                value = list(value or [])
                kind = float if key in _DOUBLE_ARRAYS else str
                ok = all(isinstance(v, (int, float) if kind is float else str) and not isinstance(v, bool)
                         for v in value)
                value = [kind(v) for v in value]
            else:
                ok = isinstance(value, type(default))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"parameter {key}: {out[key]!r} is not a {_type_name(default, key)}")
        out[key] = value
    check_ranges(out, _RANGES)
    return out


_RANGES: dict[str, tuple[Any, str]] = {
    "period": seconds_range("the bundle's"),
    "stale_timeout": seconds_range("1.5 control periods"),
    "state_deadline": seconds_range("none", "2 control periods"),
    "command_deadline": seconds_range("none", "2 control periods"),
    "diagnostics_period": seconds_range(None),
    "activate_timeout": seconds_range("wait forever"),
}


def _type_name(default: Any, key: str) -> str:
    if isinstance(default, list):
        return "list of numbers" if key in _DOUBLE_ARRAYS else "list of strings (quote names like 'y')"
    return {bool: "boolean", float: "number", str: "string"}[type(default)]


# --------------------------------------------------------------------------------------------------
# The node


def make_policy_node(context: Any = None) -> Any:
    """The node class (built here so that importing this module needs no rclpy)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
    from std_msgs.msg import Bool

    success, failure = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE

    class PolicyNode(LifecycleNode):
        def __init__(self, bundle: str | None = None) -> None:
            super().__init__(NODE_NAME, context=context)
            for key, default in PARAMETERS.items():
                descriptor = ParameterDescriptor(description=PARAMETER_HELP.get(key, ""), read_only=True)
                # numbers: `-p period:=1` (an integer) is fine too; lists: an empty default has no type
                descriptor.dynamic_typing = isinstance(default, (float, list))
                if key == "bundle" and bundle:
                    default = bundle
                self.declare_parameter(key, default, descriptor)
            self.loop: NodeControlLoop | None = None
            self.robot: Any = None
            self.error: str | None = None
            self.done = False
            self.exit_code = 0
            self.stale = False
            self._timers: list[Any] = []
            self._tick_timer: Any = None
            self._diag_timer: Any = None
            self._diag_pub: Any = None
            self._schedule: StateSchedule | None = None
            self._active = False
            self._started = time.monotonic()
            self._waiting_logged = 0.0
            self.estop_reason: str | None = None  # latched by the e-stop topic until cleanup
            topic = self.get_parameter("estop_topic").value
            if topic:  # from construction on, so that it reaches every lifecycle state
                self.create_subscription(Bool, topic, self._on_estop, 10)
            self._autostart_timer = (self.create_timer(0.02, self._autostart)
                                     if self.get_parameter("autostart").value else None)

        # ------------------------------------------------------------ lifecycle
        def params(self) -> dict[str, Any]:
            return coerce_parameters({key: self.get_parameter(key).value for key in PARAMETERS})

        def on_configure(self, state: Any) -> Any:
            self.error = None
            try:
                self.p = p = self.params()
                if self._diag_pub is None:
                    self._diag_pub = self.create_publisher(DiagnosticArray, p["diagnostics_topic"], 10)
                    self._diag_timer = self.create_timer(p["diagnostics_period"], self.publish_diagnostics)
                self.loop, self.robot = build_loop(p, self, self._on_state)
            except RobotRLError as err:
                return self._refuse(f"refusing to configure: {err}")
            # Everything long-lived exists now: move it out of the cyclic collector's sight, so that
            # its collections scan only what ticks allocate (here a gen-1 pass fell from ~5 ms, which
            # drops states at 500 Hz, to ~1 ms). Undone at cleanup.
            gc.collect()
            gc.freeze()
            spec, robot = self.loop.spec, self.robot
            self.get_logger().info(
                f"configured {spec.name} ({p['bundle']}): joints {list(robot.joints)} -> "
                f"{list(spec.joint_names)}, {self.loop.period * 1e3:g} ms, trigger {p['trigger']}, stale "
                f"after {self.loop.safety.stale_timeout * 1e3:g} ms; state "
                f"{robot.topic_name(p['state_topic'])}, commands {robot.topic_name(p['command_topic'])}")
            return success

        def on_activate(self, state: Any) -> Any:
            loop, robot = self.loop, self.robot
            if self.estop_reason is not None:
                name = self.get_fully_qualified_name()
                return self._refuse(f"refusing to activate: {self.estop_reason}; clear it with the cleanup "
                                    f"transition (ros2 lifecycle set {name} cleanup), then configure and "
                                    f"activate")
            if robot.latest is None:
                return self._refuse(f"refusing to activate: {robot.no_state_reason()}")
            try:
                loop.start()
            except RobotRLError as err:
                if robot.lifecycle is Lifecycle.ERROR:  # a failed read: make the robot usable again
                    robot.recover()
                    robot.configure()
                return self._refuse(f"refusing to activate: {err}")
            self.error = None
            period = loop.period
            if self.p["trigger"] == "timer":
                self._schedule = None  # states are only stored; the timer ticks
                self._tick_timer = self.create_timer(period, self._run_tick)
            else:
                self._schedule = StateSchedule(period)
                # just past the stale timeout after the last tick: that tick is then certainly stale
                watchdog = loop.safety.stale_timeout + min(0.1 * period, 0.0005)
                self._tick_timer = self.create_timer(watchdog, self._watchdog)
            self._active = True
            self.get_logger().info(f"active: {loop.spec.name} at {1 / period:g} Hz")
            self.publish_diagnostics()
            return super().on_activate(state)

        def on_deactivate(self, state: Any) -> Any:
            self._stop_ticking()
            if self.loop is not None:
                self.loop.stop()
            self.get_logger().info("inactive: the safe command was sent")
            self.publish_diagnostics()
            return super().on_deactivate(state)

        def on_cleanup(self, state: Any) -> Any:
            self._release()
            if self.estop_reason is not None:
                self.get_logger().info(f"e-stop cleared by cleanup ({self.estop_reason})")
            self.estop_reason = None
            return success

        def on_shutdown(self, state: Any) -> Any:
            self._stop_ticking()
            if self.loop is not None and self.loop.running:
                self.loop.stop("shutdown")
            self._release()
            return success

        def on_error(self, state: Any) -> Any:
            self._stop_ticking()
            if self.robot is not None:
                self.robot.estop(self.error or "lifecycle error")
            self._release()
            return success

        # ------------------------------------------------------------ ticking
        def _on_state(self, state: RobotState) -> None:
            if self._active and self._schedule is not None and self._schedule.due(time.monotonic()):
                self._run_tick()
                self._tick_timer.reset()

        def _watchdog(self) -> None:
            self._run_tick()  # spends no token: the state that comes back ticks at once

        def _run_tick(self) -> None:
            loop = self.loop
            counts = loop.safety.counts
            stale_before = counts["stale"]
            try:
                loop.tick()
            except RobotRLError as err:
                self._halt(f"control loop fault: {err}")
                return
            stale = counts["stale"] != stale_before
            if stale != self.stale:
                self.stale = stale
                if stale:  # counted in the diagnostics; the log says it at most once a second
                    self.get_logger().warning(f"stale state: {loop.safety.last_detail}; the safe command "
                                              f"is being sent", throttle_duration_sec=1.0)
                else:
                    self.get_logger().info("state is fresh again; the policy is back in control",
                                           throttle_duration_sec=1.0)
                self.publish_diagnostics(timing=False)  # at once: no percentiles to compute first

        def _halt(self, reason: str) -> None:
            """Stop ticking and e-stop: the filter holds the safe action, the robot sends its safe command."""
            self.error = reason
            self.get_logger().error(reason)
            self._stop_ticking()
            if self.loop is not None:  # configured (loop and robot come and go together): e-stop both
                self.loop.estop(reason)
            self.publish_diagnostics()

        def _on_estop(self, msg: Any) -> None:
            if not msg.data or self.estop_reason is not None:
                return  # false never clears it: only the cleanup transition does, deliberately
            topic = self.resolve_topic_name(self.get_parameter("estop_topic").value)
            self.estop_reason = f"e-stop from {topic}"
            self._halt(self.estop_reason)

        def _stop_ticking(self) -> None:
            self._active = False
            if self._tick_timer is not None:
                self.destroy_timer(self._tick_timer)
                self._tick_timer = None

        def _release(self) -> None:
            if self.robot is not None:
                self.robot.close()
            self.robot = self.loop = None
            gc.unfreeze()

        def _refuse(self, message: str) -> Any:
            self.error = message
            self.get_logger().error(message)
            self.publish_diagnostics()
            return failure

        # ------------------------------------------------------------ autostart
        def _autostart(self) -> None:
            label = self._state_machine.current_state[1]
            if label == "unconfigured":
                if self.trigger_configure() != success:
                    return self._give_up()
                return None
            if label != "inactive" or self.robot is None:
                return None
            decoder = self.robot.decoder
            persistent = decoder.rejected["names"] + decoder.rejected["length"]
            if self.robot.latest is None and persistent < 3:
                waited = time.monotonic() - self._started
                timeout = self.p["activate_timeout"]
                if timeout and waited > timeout:
                    self.error = (f"refusing to activate: no valid JointState on "
                                  f"{self.robot.topic_name(self.p['state_topic'])} within {timeout:g} s")
                    self.get_logger().error(self.error)
                    return self._give_up()
                if waited - self._waiting_logged > 5.0:
                    self._waiting_logged = waited
                    self.get_logger().info(f"waiting for JointState on "
                                           f"{self.robot.topic_name(self.p['state_topic'])}")
                return None
            if self.trigger_activate() != success:
                return self._give_up()
            self.destroy_timer(self._autostart_timer)
            self._autostart_timer = None
            return None

        def _give_up(self) -> None:
            self.exit_code = 2
            self.done = True
            if self._autostart_timer is not None:
                self.destroy_timer(self._autostart_timer)
                self._autostart_timer = None

        # ------------------------------------------------------------ diagnostics
        def publish_diagnostics(self, timing: bool = True) -> None:
            if self._diag_pub is None:
                return
            msg = DiagnosticArray(status=[self.status(timing)])
            msg.header.stamp = self.get_clock().now().to_msg()
            self._diag_pub.publish(msg)

        def status(self, timing: bool = True) -> Any:
            values = self.report(timing)
            label = values["lifecycle"]
            if self.estop_reason or self.error:
                level, message = DiagnosticStatus.ERROR, self.estop_reason or self.error
            elif label == "active" and self.stale:
                level = DiagnosticStatus.STALE
                message = f"stale state: {values.get('safety_last_detail')}; sending the safe command"
            elif label == "active":
                level, message = DiagnosticStatus.OK, f"active at {values.get('rate_hz', 0):.1f} Hz"
            else:
                level, message = DiagnosticStatus.WARN, label
            return DiagnosticStatus(level=level, name=f"{NODE_NAME}: control loop", message=message,
                                    hardware_id=values.get("task", ""),
                                    values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])

        def report(self, timing: bool = True) -> dict[str, Any]:
            """Everything the diagnostics carry, as plain values (times in ms); without `timing`, no
            percentiles (a report that must go out at once)."""
            out: dict[str, Any] = {"lifecycle": self._state_machine.current_state[1], "stale": self.stale,
                                   "estop": self.estop_reason or ""}
            loop, robot = self.loop, self.robot
            if loop is None or robot is None:
                return out
            ms = 1e3
            out.update({"task": loop.spec.name, "bundle": self.p["bundle"], "trigger": self.p["trigger"],
                        "period_ms": loop.period * ms, "steps": loop.steps})
            if timing:
                s = loop.stats()
                out.update({"rate_hz": 1 / s.period.p50 if s.period.p50 > 0 else 0.0,
                            "period_p50_ms": s.period.p50 * ms, "period_p99_ms": s.period.p99 * ms,
                            "jitter_p99_ms": s.jitter.p99 * ms, "latency_p50_ms": s.latency.p50 * ms,
                            "latency_p99_ms": s.latency.p99 * ms, "latency_max_ms": s.latency.max * ms})
            safety = loop.safety.report()
            out["safety_interventions"] = safety["total"]
            for reason, count in safety["interventions"].items():
                out[f"safety_{reason}"] = count
            out["safety_last_reason"] = safety["last_reason"]
            out["safety_last_detail"] = safety["last_detail"]
            out["states_received"] = robot.received
            out["states_rejected"] = sum(robot.rejected.values())
            for reason, count in robot.rejected.items():
                out[f"states_rejected_{reason}"] = count
            out["last_rejection"] = robot.decoder.last_rejection
            out["states_lost"] = robot.states_lost
            out["commands_sent"] = robot.commands_sent
            out["state_deadline_missed"] = robot.state_deadline_missed
            out["command_deadline_missed"] = robot.command_deadline_missed
            if robot.qos_problems:
                out["qos_problems"] = "; ".join(robot.qos_problems)
            return out

    return PolicyNode


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


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
    node = make_policy_node(context)(plain[0] if plain else None)
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
