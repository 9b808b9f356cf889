"""The safety filter: on by default between a policy and every backend.

Each control step the policy's command passes through `SafetyFilter.filter(command, state, now)`,
which returns what may be sent. The rules, in order (the first that fires replaces the command by the
*safe action*; the later ones only change it):

1. e-stop: after `estop()`, the safe action until `reset()`.
2. non-finite or malformed: a command holding NaN/Inf, or of the wrong shape, never passes.
3. stale state: the state's sequence has not advanced for `stale_timeout` seconds, or its timestamp is
   more than `stale_timeout` older than the freshest state seen (clock offset between the device's
   clock and `now` is learnt from the states, so the device may keep its own clock; only its rate
   must match).
4. limits (`enabled`): clip to the action's [low, high] (torque/effort limits for torque commands),
   and for position commands also to the joint limits.
5. rate limit (`enabled`): the change from the last command sent is at most `max_delta` times the
   joint's command range per step.

The safe action: torque and velocity commands -> zeros; position commands -> hold the last measured
joint positions (clipped to the limits); a relative action ("position_delta": the policy changes
targets, the control loop integrates them into position commands) -> a zero change, i.e. hold the
current targets (the last command sent; on activation, the measured positions it was seeded from).
`report()` counts every intervention by reason (a step with
several counts each reason once) and names the last one. Everything is in the policy's joint order
`(act_dim,)`; robot units (N·m or N, rad or m, rad/s or m/s), seconds.

Imports numpy and the spec only: a serial deployment uses it without mujoco or torch.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.config import check
from robot_rl.hardware.robot import HardwareError, RobotState, all_finite
from robot_rl.spec import TaskSpec

#: Intervention reasons, in the order the rules are applied.
REASONS = ("estop", "malformed", "non_finite", "policy_error", "stale", "clip", "joint_limit", "rate_limit")


@dataclass(frozen=True)
class SafetyConfig:
    """How strict the filter is. The defaults are on: clipping, a rate limit and the stale check."""

    max_delta: float = 0.5
    """Largest change of a joint's command per control step, as a fraction of that joint's command
    range (action high - low; for a position command without a finite action range, the joint-limit
    range). `math.inf` turns the rate limit off."""
    stale_timeout: float | None = None
    """Seconds after which a state that did not advance is stale; None: two control periods."""
    enabled: bool = True
    """False turns off limits, rate limit and the stale check. NaN/Inf rejection and the e-stop stay:
    they are never optional."""

    def __post_init__(self) -> None:
        check(isinstance(self.max_delta, (int, float)) and not isinstance(self.max_delta, bool)
              and self.max_delta > 0, "max_delta",
              f"must be a positive fraction of the command range (inf: no rate limit), "
              f"got {self.max_delta!r}")
        if self.stale_timeout is not None:
            check(isinstance(self.stale_timeout, (int, float)) and not isinstance(self.stale_timeout, bool)
                  and math.isfinite(self.stale_timeout) and self.stale_timeout > 0, "stale_timeout",
                  f"must be a positive number of seconds (or null for 2 control periods), "
                  f"got {self.stale_timeout!r}")
        check(isinstance(self.enabled, bool), "enabled", f"must be true or false, got {self.enabled!r}")


class SafetyFilter:
    """Filters commands for one task spec; thread-safe (`estop` may come from another thread)."""

    def __init__(self, spec: TaskSpec, config: SafetyConfig | None = None) -> None:
        if spec.action.command_kind not in ("torque", "position", "velocity"):
            raise HardwareError(f"{spec.name}: a {spec.action.kind} action has no safe action on a robot; "
                                f"the safety filter takes torque, position, velocity or position_delta "
                                f"commands")
        self.spec = spec
        self.config = config or SafetyConfig()
        self.kind = spec.action.command_kind
        self.relative = spec.action.is_relative
        """Commands are integrated targets: the safe action holds them (the last command sent)."""
        self.stale_timeout = (self.config.stale_timeout if self.config.stale_timeout is not None
                              else 2.0 * spec.control_period)
        n = spec.act_dim
        low = np.array(spec.action.low, dtype=np.float64)
        high = np.array(spec.action.high, dtype=np.float64)
        limits = np.array(spec.joint_limits, dtype=np.float64).reshape(n, 2)
        if self.kind == "position":  # a position target must also lie within the joint's range
            self._joint_low, self._joint_high = limits[:, 0], limits[:, 1]
        else:
            self._joint_low, self._joint_high = np.full(n, -np.inf), np.full(n, np.inf)
        self._low, self._high = low, high
        span = high - low
        if self.kind == "position":
            span = np.where(np.isfinite(span), span, limits[:, 1] - limits[:, 0])
        # inf where a joint's range is unbounded (no rate limit there) or max_delta is inf
        with np.errstate(invalid="ignore"):
            self._max_step = np.where(np.isfinite(span), self.config.max_delta * span, np.inf)
        self._bound_low = np.maximum(low, self._joint_low)  # the clip and the joint range in one
        self._bound_high = np.minimum(high, self._joint_high)
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(REASONS, 0)
        self.first_at: dict[str, int] = {}
        """Reason -> the step (1-based, of `steps`) at which it first fired: when the filter first acted."""
        self.steps = 0
        self.last_reason: str | None = None
        self.last_detail: str | None = None
        self.estop_reason: str | None = None
        self._last = np.zeros(n)
        self._hold = np.zeros(n)
        self._sequence: int | None = None
        self._advanced_at: float | None = None
        self._offset: float | None = None  # smallest (now - timestamp) seen since reset
        self._stale_detail = ""

    # ------------------------------------------------------------------ lifecycle
    def reset(self, state: RobotState) -> None:
        """Seed from the measured state on activation: the last command becomes the safe action, the
        stale check starts afresh, and an e-stop is cleared."""
        with self._lock:
            self.estop_reason = None
            self._sequence = None
            self._advanced_at = None
            self._offset = None
            self._observe(state)
            self._last = self._hold_measured()

    def estop(self, reason: str = "e-stop") -> None:
        """From now on only the safe action passes, until `reset`."""
        with self._lock:
            self.estop_reason = reason
            self.last_reason, self.last_detail = "estop", reason

    @property
    def estopped(self) -> bool:
        return self.estop_reason is not None

    # ------------------------------------------------------------------ filtering
    def safe_action(self, state: RobotState) -> np.ndarray:
        """Torque/velocity: zeros; position: the last measured joint positions, within the limits."""
        with self._lock:
            self._observe_positions(state)
            return self._safe(state)

    def filter(self, command: Any, state: RobotState, now: float) -> np.ndarray:
        """The command that may be sent `(act_dim,)` float64, for the policy's `command` given the
        latest `state`; `now` in seconds on a monotonic clock running at the rate of the state's."""
        with self._lock:
            self.steps += 1
            fresh = self._observe(state, now)
            if self.estop_reason is not None:
                return self._refuse("estop", self.estop_reason, state)
            try:
                cmd = np.array(command, dtype=np.float64)
            except (TypeError, ValueError):
                return self._refuse("malformed", f"not a numeric array: {command!r}", state)
            if cmd.shape != self._last.shape:
                return self._refuse("malformed", f"shape {cmd.shape}, expected {self._last.shape}", state)
            if not all_finite(cmd):
                bad = [self.spec.joint_names[i] for i in np.flatnonzero(~np.isfinite(cmd))]
                return self._refuse("non_finite", f"NaN/Inf for {', '.join(bad)}", state)
            if not fresh:
                return self._refuse("stale", self._stale_detail, state)
            if self.config.enabled:
                cmd = self._limit(cmd)
            self._last = cmd
            return cmd.copy()

    def refuse(self, reason: str, detail: str, state: RobotState) -> np.ndarray:
        """Count an intervention decided elsewhere (e.g. the policy raised) and return the safe action."""
        if reason not in self.counts:
            raise ValueError(f"unknown intervention reason {reason!r}; valid: {', '.join(REASONS)}")
        with self._lock:
            self.steps += 1
            self._observe_positions(state)
            return self._refuse(reason, detail, state)

    def report(self) -> dict[str, Any]:
        """Interventions so far: counts by reason (only those that fired), the step each first fired at
        (`first_at`: a stall at start-up and one late in a run read alike in the counts), total, the last
        reason."""
        with self._lock:
            fired = {k: v for k, v in self.counts.items() if v}
            return {"enabled": self.config.enabled, "steps": self.steps, "interventions": fired,
                    "first_at": dict(self.first_at),
                    "total": sum(fired.values()), "last_reason": self.last_reason,
                    "last_detail": self.last_detail, "estopped": self.estop_reason is not None}

    # ------------------------------------------------------------------ internals
    def _limit(self, cmd: np.ndarray) -> np.ndarray:
        last, step = self._last, self._max_step
        if ((cmd >= self._bound_low) & (cmd <= self._bound_high) & (cmd >= last - step)
                & (cmd <= last + step)).all():
            return cmd  # the common case: within every limit, nothing fires
        fired = []
        clipped = np.minimum(np.maximum(cmd, self._low), self._high)
        if not np.array_equal(clipped, cmd):
            fired.append(("clip", self._joints(clipped != cmd)))
        limited = np.minimum(np.maximum(clipped, self._joint_low), self._joint_high)
        if not np.array_equal(limited, clipped):
            fired.append(("joint_limit", self._joints(limited != clipped)))
        lo, hi = self._last - self._max_step, self._last + self._max_step
        stepped = np.minimum(np.maximum(limited, lo), hi)
        if not np.array_equal(stepped, limited):
            fired.append(("rate_limit", self._joints(stepped != limited)))
        for reason, detail in fired:
            self.counts[reason] += 1
            self.first_at.setdefault(reason, self.steps)
            self.last_reason, self.last_detail = reason, detail
        return stepped

    def _refuse(self, reason: str, detail: str, state: RobotState) -> np.ndarray:
        self.counts[reason] += 1
        self.first_at.setdefault(reason, self.steps)
        self.last_reason, self.last_detail = reason, detail
        self._last = self._safe(state)
        return self._last.copy()

    def _safe(self, state: RobotState) -> np.ndarray:
        if self.relative:  # hold the current targets: a zero change
            return np.minimum(np.maximum(self._last, self._bound_low), self._bound_high)
        return self._hold_measured()

    def _hold_measured(self) -> np.ndarray:
        """Torque/velocity: zeros; position targets: the measured positions within the limits."""
        if self.kind != "position":
            return np.zeros_like(self._last)
        return np.minimum(np.maximum(self._hold, self._bound_low), self._bound_high)

    def _observe_positions(self, state: RobotState) -> None:
        q = np.asarray(state.joint_positions, dtype=np.float64).reshape(-1)
        if q.shape == self._hold.shape:
            self._hold = q.copy() if all_finite(q) else np.where(np.isfinite(q), q, self._hold)

    def _observe(self, state: RobotState, now: float | None = None) -> bool:
        """Track positions, sequence and clock offset; False if the state is stale at `now`."""
        self._observe_positions(state)
        if now is None:
            return True
        sequence, stamp = int(state.sequence), float(state.timestamp)
        if self._sequence is None or sequence > self._sequence:
            self._sequence, self._advanced_at = sequence, now
        offset = now - stamp
        if self._offset is None or offset < self._offset:
            self._offset = offset
        if not self.config.enabled:
            return True
        advanced_at = now if self._advanced_at is None else self._advanced_at  # set with the sequence above
        quiet = now - advanced_at
        if quiet > self.stale_timeout:
            self._stale_detail = (f"sequence {sequence} has not advanced for {quiet * 1e3:.1f} ms "
                                  f"(timeout {self.stale_timeout * 1e3:.1f} ms)")
            return False
        age = offset - self._offset
        if age > self.stale_timeout:
            self._stale_detail = (f"state is {age * 1e3:.1f} ms older than the freshest seen "
                                  f"(timeout {self.stale_timeout * 1e3:.1f} ms)")
            return False
        return True

    def _joints(self, mask: np.ndarray) -> str:
        return ", ".join(self.spec.joint_names[i] for i in np.flatnonzero(mask))
