"""What the policy node reports on `diagnostics`, as a pure function of what it knows (no ROS needed).

`diagnose(NodeSnapshot)` gives the level, the message and the key/value pairs of the node's one
diagnostic_msgs/DiagnosticStatus: lifecycle, rate, period/latency/jitter percentiles over the last
ticks (times in ms), safety interventions by reason, JointStates received and rejected by reason, the
joints a driver must publish, deadline misses and QoS problems. The node turns it into the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robot_rl.hardware.control_loop import LoopStats

#: diagnostic_msgs/DiagnosticStatus level names, in the message's order (OK=0 .. STALE=3).
LEVELS = ("OK", "WARN", "ERROR", "STALE")
NAME = "robot_rl_policy: control loop"


@dataclass(frozen=True)
class RobotCounters:
    """The ros2 backend's counters, copied out of it."""

    received: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    last_rejection: str | None = None
    states_lost: int = 0
    commands_sent: int = 0
    state_deadline_missed: int = 0
    command_deadline_missed: int = 0
    qos_problems: tuple[str, ...] = ()
    required_joints: tuple[str, ...] = ()
    """Every JointState entry a driver must publish (the commanded joints and the state joints)."""

    @classmethod
    def of(cls, robot: Any) -> RobotCounters:
        """The counters of a `Ros2Robot`."""
        return cls(received=robot.received, rejected=robot.rejected,
                   last_rejection=robot.decoder.last_rejection, states_lost=robot.states_lost,
                   commands_sent=robot.commands_sent, state_deadline_missed=robot.state_deadline_missed,
                   command_deadline_missed=robot.command_deadline_missed,
                   qos_problems=tuple(robot.qos_problems), required_joints=robot.decoder.required)


@dataclass(frozen=True)
class NodeSnapshot:
    """The node's state at one moment. `task` None: not configured (no loop, no robot)."""

    lifecycle: str
    stale: bool = False
    estop: str | None = None
    """The latched e-stop's reason, None when not e-stopped."""
    error: str | None = None
    """The last refusal or fault, None when there is none."""
    task: str | None = None
    bundle: str = ""
    trigger: str = ""
    period: float = 0.0
    """Control period, seconds."""
    steps: int = 0
    stats: LoopStats | None = None
    """The loop's timing; None for a report that must go out at once (no percentiles computed)."""
    safety: Mapping[str, Any] | None = None
    """`SafetyFilter.report()`."""
    robot: RobotCounters | None = None
    goals: Mapping[str, Any] | None = None
    """A goal task's host-side goals (`GoalTracker.report()`), None for other tasks."""


@dataclass(frozen=True)
class Diagnostics:
    level: str
    """One of LEVELS."""
    message: str
    values: dict[str, Any]
    """Plain values (times in ms), in report order; `text` gives them as the message's strings."""

    def text(self) -> list[tuple[str, str]]:
        """(key, value) strings: floats to 6 significant digits, booleans lower case, None empty."""
        return [(key, as_text(value)) for key, value in self.values.items()]


def diagnose(s: NodeSnapshot) -> Diagnostics:
    """The node's diagnostic status for `s`: ERROR while e-stopped or after a refusal or fault, STALE
    while active on a stale state, OK while active, WARN in any other lifecycle state."""
    values = report(s)
    if s.estop or s.error:
        level, message = "ERROR", s.estop or s.error or ""
    elif s.lifecycle == "active" and s.stale:
        level = "STALE"
        message = f"stale state: {values.get('safety_last_detail')}; sending the safe command"
    elif s.lifecycle == "active":
        level, message = "OK", f"active at {values.get('rate_hz', 0.0):.1f} Hz"
    else:
        level, message = "WARN", s.lifecycle
    return Diagnostics(level, message, values)


def report(s: NodeSnapshot) -> dict[str, Any]:
    """The key/value pairs of `diagnose`, as plain values."""
    out: dict[str, Any] = {"lifecycle": s.lifecycle, "stale": s.stale, "estop": s.estop or ""}
    if s.task is None:
        return out
    ms = 1e3
    out.update({"task": s.task, "bundle": s.bundle, "trigger": s.trigger, "period_ms": s.period * ms,
                "steps": s.steps})
    if s.stats is not None:
        st = s.stats
        out.update({"rate_hz": 1 / st.period.p50 if st.period.p50 > 0 else 0.0,
                    "period_p50_ms": st.period.p50 * ms, "period_p99_ms": st.period.p99 * ms,
                    "jitter_p99_ms": st.jitter.p99 * ms, "latency_p50_ms": st.latency.p50 * ms,
                    "latency_p99_ms": st.latency.p99 * ms, "latency_max_ms": st.latency.max * ms})
    if s.safety is not None:
        out["safety_interventions"] = s.safety["total"]
        for reason, count in s.safety["interventions"].items():
            out[f"safety_{reason}"] = count
        out["safety_last_reason"] = s.safety["last_reason"]
        out["safety_last_detail"] = s.safety["last_detail"]
    robot = s.robot
    if robot is not None:
        out["joints_required"] = ", ".join(robot.required_joints)
        out["states_received"] = robot.received
        out["states_rejected"] = sum(robot.rejected.values())
        for reason, count in robot.rejected.items():
            out[f"states_rejected_{reason}"] = count
        out["last_rejection"] = robot.last_rejection
        out["states_lost"] = robot.states_lost
        out["commands_sent"] = robot.commands_sent
        out["state_deadline_missed"] = robot.state_deadline_missed
        out["command_deadline_missed"] = robot.command_deadline_missed
        if robot.qos_problems:
            out["qos_problems"] = "; ".join(robot.qos_problems)
    if s.goals is not None:
        out.update(goals_reached=s.goals["successes"], goal_error_rad=s.goals["angle"],
                   goal_source=s.goals["goal_source"], dropped=s.goals["dropped"])
    return out


def as_text(value: Any) -> str:
    """A diagnostic value as the message carries it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)
