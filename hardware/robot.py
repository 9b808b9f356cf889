"""The hardware boundary: one small base class with an explicit lifecycle, for every backend.

    UNCONFIGURED --configure--> INACTIVE --activate--> ACTIVE --deactivate--> INACTIVE
         any state --fault / estop--> ERROR --recover--> UNCONFIGURED          any --close--> CLOSED

A control loop that runs against the MuJoCo backend runs unchanged against the serial link or ROS 2:
every backend subclasses `Robot` and implements only the `_hooks`. The base class owns the state
machine, refuses calls made in the wrong state (with an error that names both states), and guarantees
cleanup (`with robot:` deactivates and closes whatever happens). `write_command` returns what was
actually sent, after any clamp of the backend's own.

Imports numpy only: a serial or ROS 2 deployment imports this without mujoco or torch.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_rl.errors import RobotRLError


def all_finite(x: np.ndarray) -> bool:
    """No NaN/Inf in the float array `x`. A finite dot product proves it at once (NaN/Inf propagate);
    only an overflow or a bad entry pays for the exact check."""
    return math.isfinite(x.dot(x)) or bool(np.isfinite(x).all())


LAST_COMMAND = "ctrl"
"""The state field of the actuators' controls, i.e. the last command (a declared task's `last_action`
term reads it): zeros after the engine's reset, and from a backend's activation until its first command."""


class HardwareError(RobotRLError):
    """A robot refused a call, lost its link, or faulted; the message says which and why."""


class Lifecycle(enum.Enum):
    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    ERROR = "error"
    CLOSED = "closed"


@dataclass(frozen=True)
class RobotState:
    """One measurement of the robot, as the device sampled it.

    `joint_positions`/`joint_velocities` are the actuated joints in the robot's `joint_names` order
    (rad or m, rad/s or m/s): what the encoders say, used by the safety filter and to seed targets.
    `fields` holds the named state fields a policy's observation reads (the task spec's
    `state_fields`, e.g. `qpos`, `qvel`); a backend fills what it can measure or estimate.
    """

    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    timestamp: float
    """Seconds on the device's monotonic clock when the state was sampled."""
    sequence: int
    """Counts up by one per state the device produced; a gap means states were lost."""
    fields: Mapping[str, np.ndarray] = field(default_factory=dict)
    base_orientation: np.ndarray | None = None
    """IMU orientation as a unit quaternion (w, x, y, z), if the robot has one."""
    base_angular_velocity: np.ndarray | None = None
    """IMU angular velocity, rad/s, body frame."""

    def observation_fields(self) -> dict[str, np.ndarray]:
        """The mapping an `ObservationBuilder` reads: `fields` plus the IMU under fixed names."""
        out = dict(self.fields)
        out.setdefault("joint_positions", self.joint_positions)
        out.setdefault("joint_velocities", self.joint_velocities)
        if self.base_orientation is not None:
            out.setdefault("base_orientation", self.base_orientation)
        if self.base_angular_velocity is not None:
            out.setdefault("base_angular_velocity", self.base_angular_velocity)
        return out


# Which lifecycle states each call may be made from.
_ALLOWED = {
    "configure": {Lifecycle.UNCONFIGURED},
    "activate": {Lifecycle.INACTIVE},
    "read_state": {Lifecycle.INACTIVE, Lifecycle.ACTIVE},
    "write_command": {Lifecycle.ACTIVE},
    "deactivate": {Lifecycle.ACTIVE},
    "recover": {Lifecycle.ERROR},
}


class Robot:
    """Base of every backend. Subclasses set `joint_names` and `command_kind` and implement the hooks."""

    joint_names: tuple[str, ...] = ()
    command_kind: str = "torque"
    """"torque", "position" or "velocity": what `write_command` values mean."""
    realtime: bool = True
    """False for a simulated robot whose time advances only when it is commanded: a control loop then
    runs it as fast as possible instead of sleeping to the control period's deadlines."""
    last_reward: float | None = None
    """Reward of the last command's step, for a simulated backend that computes one (else None)."""
    episode_over: bool = False
    """True once a simulated backend's episode has ended (terminated or time limit); a real robot's
    never does. The next activation starts a new one."""

    def __init__(self) -> None:
        self._lifecycle = Lifecycle.UNCONFIGURED
        self._lock = threading.RLock()
        self.last_error: str | None = None

    # ---------------------------------------------------------------- lifecycle
    @property
    def lifecycle(self) -> Lifecycle:
        return self._lifecycle

    def clock(self) -> float:
        """Now, in seconds on the clock of `RobotState.timestamp` (the host's monotonic clock unless a
        backend says otherwise: a simulator's own time). The safety filter measures staleness on it."""
        return time.monotonic()

    def stale_detail(self) -> str | None:
        """Why the newest state must not be acted on now, for a backend whose states arrive on their
        own (ROS 2: its age from its arrival, against the backend's stale timeout); None while it is
        fresh, or for a backend read on demand (the safety filter's sequence and timestamp check guards
        those). The control loop sends the safe action instead of the policy's while this says why."""
        return None

    def configure(self) -> None:
        """Open the connection and check the robot is the one expected (joints, protocol version)."""
        with self._transition("configure"):
            self._configure()
            self._lifecycle = Lifecycle.INACTIVE

    def activate(self) -> RobotState:
        """Enable the motors; targets are seeded from the measured state, never from a stale command."""
        with self._transition("activate"):
            state = self._activate()
            self._lifecycle = Lifecycle.ACTIVE
            return state

    def read_state(self) -> RobotState:
        with self._transition("read_state"):
            return self._read_state()

    def write_command(self, command: np.ndarray) -> np.ndarray:
        """Send one command `(len(joint_names),)`; returns what was actually sent."""
        with self._transition("write_command"):
            return self._write_command(np.asarray(command, dtype=np.float64))

    def deactivate(self) -> None:
        """Bring the motors to their safe state and disable them."""
        with self._transition("deactivate"):
            self._deactivate()
            self._lifecycle = Lifecycle.INACTIVE

    def estop(self, reason: str = "e-stop") -> None:
        """Stop now, from any state: motors to their safe state, lifecycle to ERROR. Never raises."""
        with self._lock:
            if self._lifecycle is Lifecycle.CLOSED:
                return
            try:
                self._estop()
            except Exception as err:  # the e-stop must not be stopped by a failing link
                self.last_error = f"{reason}; e-stop hook failed: {err}"
            else:
                self.last_error = reason
            self._lifecycle = Lifecycle.ERROR

    def recover(self) -> None:
        """Leave ERROR explicitly (after the cause is fixed): back to UNCONFIGURED, to configure again."""
        with self._transition("recover"):
            self._recover()
            self.last_error = None
            self._lifecycle = Lifecycle.UNCONFIGURED

    def close(self) -> None:
        """Deactivate if needed and release the connection. Idempotent; never raises."""
        with self._lock:
            if self._lifecycle is Lifecycle.CLOSED:
                return
            if self._lifecycle is Lifecycle.ACTIVE:
                try:
                    self._deactivate()
                except Exception as err:
                    self.estop(f"deactivate on close failed: {err}")
            try:
                self._close()
            finally:
                self._lifecycle = Lifecycle.CLOSED

    def __enter__(self) -> Robot:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- hooks for subclasses
    def _configure(self) -> None:
        pass

    def _activate(self) -> RobotState:
        return self._read_state()

    def _read_state(self) -> RobotState:
        raise NotImplementedError

    def _write_command(self, command: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _deactivate(self) -> None:
        pass

    def _estop(self) -> None:
        pass

    def _recover(self) -> None:
        pass

    def _close(self) -> None:
        pass

    # ---------------------------------------------------------------- internals
    def _transition(self, call: str) -> _Guard:
        return _Guard(self, call)


class _Guard:
    """Checks the lifecycle state before a call and moves to ERROR if the call fails."""

    def __init__(self, robot: Robot, call: str) -> None:
        self.robot, self.call = robot, call

    def __enter__(self) -> None:
        self.robot._lock.acquire()
        state = self.robot._lifecycle
        if state not in _ALLOWED[self.call]:
            self.robot._lock.release()
            allowed = ", ".join(sorted(s.value for s in _ALLOWED[self.call]))
            raise HardwareError(f"{type(self.robot).__name__}.{self.call}() is not allowed in state "
                                f"{state.value!r} (allowed from: {allowed})")

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is not None and self.call != "recover":
                self.robot.last_error = f"{self.call}: {exc}"
                try:
                    self.robot._estop()
                except Exception:
                    pass
                self.robot._lifecycle = Lifecycle.ERROR
        finally:
            self.robot._lock.release()
