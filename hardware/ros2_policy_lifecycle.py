"""The `robot_rl_policy` lifecycle node class (imports rclpy: loaded only where rclpy is; the entry
point, parameters, timing rules and diagnostics live in modules that do not need it).

Ticking (`trigger:=state`): an accepted JointState restarts the watchdog timer and runs a tick when
`StateSchedule` says one is due; every tick first checks the newest state's age from its arrival
(`stale_detail`): a stale state is answered with the safety filter's safe command (`ControlLoop.hold`),
never with the policy's. The watchdog (`watchdog_period` after the last arrival) ticks when states stop,
and again every watchdog period while they stay stopped. `trigger:=timer`: a timer at the control
period ticks, with the same watchdog and the same age check. See `ros2_policy_node` for the rest.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from std_msgs.msg import Bool

from robot_rl.errors import RobotRLError
from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.robot import Lifecycle, RobotState
from robot_rl.hardware.ros2_diagnostics import LEVELS, NAME, NodeSnapshot, RobotCounters, diagnose
from robot_rl.hardware.ros2_node_params import (
    NODE_NAME,
    PARAMETER_HELP,
    PARAMETERS,
    build_loop,
    coerce_parameters,
)
from robot_rl.hardware.ros2_node_timing import StateSchedule, stale_detail, watchdog_period

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class PolicyNode(LifecycleNode):
    """A policy bundle on a ROS 2 robot: a `Ros2Robot` embedded in this node, ticked by `ControlLoop`
    from the node's callbacks. `done` and `exit_code` tell the spinning caller when to stop."""

    def __init__(self, bundle: str | None = None, context: Any = None) -> None:
        super().__init__(NODE_NAME, context=context)
        for key, default in PARAMETERS.items():
            descriptor = ParameterDescriptor(description=PARAMETER_HELP.get(key, ""), read_only=True)
            # numbers: `-p period:=1` (an integer) is fine too; lists: an empty default has no type
            descriptor.dynamic_typing = isinstance(default, (float, list))
            if key == "bundle" and bundle:
                default = bundle
            self.declare_parameter(key, default, descriptor)
        self.p: dict[str, Any] = {}
        self.loop: ControlLoop | None = None
        self.robot: Any = None
        self.error: str | None = None
        self.done = False
        self.exit_code = 0
        self.stale = False
        self._tick_timer: Any = None
        self._watchdog: Any = None
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

    # ---------------------------------------------------------------- lifecycle
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
        # Everything long-lived exists now: move it out of the cyclic collector's sight, so that its
        # collections scan only what ticks allocate (here a gen-1 pass fell from ~5 ms, which drops
        # states at 500 Hz, to ~1 ms). Undone at cleanup.
        gc.collect()
        gc.freeze()
        spec, robot = self.loop.spec, self.robot
        self.get_logger().info(
            f"configured {spec.name} ({p['bundle']}): joints {list(robot.joints)} -> "
            f"{list(spec.joint_names)}, {self.loop.period * 1e3:g} ms, trigger {p['trigger']}, stale "
            f"after {self.loop.safety.stale_timeout * 1e3:g} ms; state "
            f"{robot.topic_name(p['state_topic'])} (a driver must publish {list(robot.decoder.required)}), "
            f"commands {robot.topic_name(p['command_topic'])}")
        if not robot.state_joints and {"qpos", "qvel"} & set(spec.state_fields):
            self.get_logger().warning(
                "the bundle names no state_joints (exported before they existed): qpos/qvel are read "
                "from the whole JointState in message order; give the joints with state_joints")
        return SUCCESS

    def on_activate(self, state: Any) -> Any:
        loop, robot = self.loop, self.robot
        if loop is None or robot is None:  # (the lifecycle activates only a configured node)
            return self._refuse("refusing to activate: not configured")
        if self.estop_reason is not None:
            name = self.get_fully_qualified_name()
            return self._refuse(f"refusing to activate: {self.estop_reason}; clear it with the cleanup "
                                f"transition (ros2 lifecycle set {name} cleanup), then configure and "
                                f"activate")
        if robot.latest is None:  # every JointState so far lacked a joint, or none came
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
        self._watchdog = self.create_timer(watchdog_period(loop.safety.stale_timeout, period), self._run_tick)
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
        return SUCCESS

    def on_shutdown(self, state: Any) -> Any:
        self._stop_ticking()
        if self.loop is not None and self.loop.running:
            self.loop.stop("shutdown")
        self._release()
        return SUCCESS

    def on_error(self, state: Any) -> Any:
        self._stop_ticking()
        if self.robot is not None:
            self.robot.estop(self.error or "lifecycle error")
        self._release()
        return SUCCESS

    # ---------------------------------------------------------------- ticking
    def _on_state(self, state: RobotState) -> None:
        if not self._active:
            return
        self._watchdog.reset()  # measured from this arrival, ticked or not
        if self._schedule is not None and self._schedule.due(self.robot.arrival):
            self._run_tick()

    def _run_tick(self) -> None:
        loop, robot = self.loop, self.robot
        if loop is None or robot is None:  # (ticking stops before the loop is released)
            return
        safety = loop.safety
        counts = safety.counts
        stale_before = counts["stale"]
        detail = (stale_detail(robot.arrival, robot.clock(), safety.stale_timeout)
                  if safety.config.enabled else None)
        try:
            if detail is None:
                loop.tick()
            else:  # too old to act on, ticked or not: the safe command, never the policy's
                loop.hold("stale", detail)
        except RobotRLError as err:
            self._halt(f"control loop fault: {err}")
            return
        stale = counts["stale"] != stale_before
        if stale != self.stale:
            self.stale = stale
            if stale:  # counted in the diagnostics; the log says it at most once a second
                self.get_logger().warning(f"stale state: {safety.last_detail}; the safe command is being "
                                          f"sent", throttle_duration_sec=1.0)
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
        for timer in (self._tick_timer, self._watchdog):
            if timer is not None:
                self.destroy_timer(timer)
        self._tick_timer = self._watchdog = None

    def _release(self) -> None:
        if self.robot is not None:
            self.robot.close()
        self.robot = self.loop = None
        gc.unfreeze()

    def _refuse(self, message: str) -> Any:
        self.error = message
        self.get_logger().error(message)
        self.publish_diagnostics()
        return FAILURE

    # ---------------------------------------------------------------- autostart
    def _autostart(self) -> None:
        label = self._state_machine.current_state[1]
        if label == "unconfigured":
            if self.trigger_configure() != SUCCESS:
                self._give_up()
            return
        if label != "inactive" or self.robot is None:
            return
        decoder = self.robot.decoder
        persistent = decoder.rejected["names"] + decoder.rejected["length"]
        if self.robot.latest is None and persistent < 3:
            waited = time.monotonic() - self._started
            timeout = self.p["activate_timeout"]
            if timeout and waited > timeout:
                self.error = (f"refusing to activate: no valid JointState on "
                              f"{self.robot.topic_name(self.p['state_topic'])} within {timeout:g} s")
                self.get_logger().error(self.error)
                self._give_up()
                return
            if waited - self._waiting_logged > 5.0:
                self._waiting_logged = waited
                self.get_logger().info(f"waiting for JointState on "
                                       f"{self.robot.topic_name(self.p['state_topic'])} with "
                                       f"{', '.join(decoder.required)}")
            return
        if self.trigger_activate() != SUCCESS:
            self._give_up()
            return
        if self._autostart_timer is not None:
            self.destroy_timer(self._autostart_timer)
            self._autostart_timer = None

    def _give_up(self) -> None:
        self.exit_code = 2
        self.done = True
        if self._autostart_timer is not None:
            self.destroy_timer(self._autostart_timer)
            self._autostart_timer = None

    # ---------------------------------------------------------------- diagnostics
    def snapshot(self, timing: bool = True) -> NodeSnapshot:
        """What the node knows now, for `diagnose`; without `timing`, no percentiles (a report that
        must go out at once)."""
        label = self._state_machine.current_state[1]
        loop, robot = self.loop, self.robot
        if loop is None or robot is None:
            return NodeSnapshot(label, self.stale, self.estop_reason, self.error)
        return NodeSnapshot(label, self.stale, self.estop_reason, self.error, task=loop.spec.name,
                            bundle=self.p["bundle"], trigger=self.p["trigger"], period=loop.period,
                            steps=loop.steps, stats=loop.stats() if timing else None,
                            safety=loop.safety.report(), robot=RobotCounters.of(robot),
                            goals=loop.goals.report() if loop.goals is not None else None)

    def publish_diagnostics(self, timing: bool = True) -> None:
        if self._diag_pub is None:
            return
        d = diagnose(self.snapshot(timing))
        status = DiagnosticStatus(level=bytes([LEVELS.index(d.level)]), name=NAME, message=d.message,
                                  hardware_id=d.values.get("task", ""),
                                  values=[KeyValue(key=k, value=v) for k, v in d.text()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)
