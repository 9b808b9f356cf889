"""The `serial` backend: a `Robot` whose motors sit behind a microcontroller on a serial port.

    robot = make_robot(policy.spec, {"port": "/tmp/robot_tty"})
    robot.configure()        # HELLO: protocol version, joints and state fields checked; then CONFIG
    state = robot.activate() # ENABLE, then the first state measured after it (targets are seeded from it)
    robot.write_command(u)   # one SETPOINT (returns what was sent: clipped to the device's range, float32)

`configure` refuses a device that is not the bundle's robot (protocol version, joint count or names,
missing state fields, unsupported command kind) with a HardwareError that names both sides, having sent
nothing but HELLO; and a device that an earlier host left ENABLED (killed: the watchdog holds the
motors in the safe mode) or ESTOPPED with a `DeviceLockedError` (one line, nothing sent but HELLO and
GET_STATUS), unless `recover=True`, which RESETs it first. `deactivate` sends the safe command (zeros;
the measured positions for position control) and then DISABLE.

`read_state` returns the latest STATE; if that one was already returned, it waits
up to half a control period for the next, so a host loop whose deadlines fall just before the
device's states arrive stays in step (every state is used once, none skipped). If none comes, it
returns the old one again, and the safety filter sees that its sequence did not advance. (Waiting for
a fresher state when the latest is old would skip a state, and hold a command two periods, whenever
the host's phase jitters across the threshold.)
A device in its safe state (watchdog), e-stopped, or a lost link is a HardwareError. `recover`
waits for the link to come back and RESETs the device, to configure again.

`RobotState.sequence` counts the device's control periods since CONFIG (the STATE grid), so it
advances by one per state the device produced and a gap means states were lost; it keeps counting
up across reconfigurations. `clock()` is the device clock as the host estimates it (offset = the
smallest host-minus-device time seen, so transport delay does not make states look fresher), so
`clock() - state.timestamp` is a state's age in device seconds. Imports numpy and pyserial only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.hardware import protocol as P
from robot_rl.hardware.goal_tracker import host_fields
from robot_rl.hardware.robot import HardwareError, Lifecycle, Robot, RobotState
from robot_rl.hardware.serial_link import DEFAULT_BAUDRATE, DeviceRefused, SerialLink, StateSample
from robot_rl.spec import TaskSpec

WATCHDOG_PERIODS, WATCHDOG_MIN = 5, 0.05
"""Default device watchdog: 5 control periods, at least 50 ms (a loaded host may miss a tick or two)."""
CLOCK_DRIFT = 1e-4
"""How fast (s/s) the clock offset may drift upwards: 100 ppm, above a crystal's tolerance."""


class DeviceLockedError(HardwareError):
    """The device is enabled or e-stopped by an earlier host; nothing was sent to the motors."""


def held_by_earlier_host(flags: P.Flags) -> str | None:
    """What state an earlier host left the device in that stops a new session ("ESTOPPED", "ENABLED"
    with why), or None when a new host may CONFIG it."""
    if flags & P.Flags.ESTOPPED:
        return "ESTOPPED"
    if flags & P.Flags.ENABLED:
        if flags & P.Flags.WATCHDOG:
            return "ENABLED (in its safe state: its watchdog tripped when the earlier host stopped sending)"
        return "ENABLED (still taking setpoints)"
    return None


def locked_message(port: str, state: str) -> str:
    """The one line a deploy prints for a device an earlier host left enabled or e-stopped."""
    return (f"device at {port} is {state}, left so by an earlier host; nothing was sent to the motors. "
            f"Reset it on purpose with `robot-rl deploy ... --recover` or `robot-rl device reset --port "
            f"{port}` (RESET clears the e-stop and the watchdog latch and turns the motors off)")


class SerialRobot(Robot):
    """A robot over a `SerialLink`, driven at the spec's control period."""

    def __init__(self, spec: TaskSpec, port: str, *, baudrate: int = DEFAULT_BAUDRATE,
                 watchdog: float | None = None, safe_mode: str = "damping", time_scale: float = 1.0,
                 request_timeout: float = 0.1, retries: int = 3, connect_timeout: float = 2.0,
                 recover: bool = False) -> None:
        super().__init__()
        if spec.action.command_kind not in P.COMMAND_KIND_NAMES:
            raise ConfigError(f"serial backend: a {spec.action.kind!r} action has no motor command; "
                              f"it takes {', '.join(P.COMMAND_KIND_NAMES)}")
        if safe_mode not in ("damping", "hold"):
            raise ConfigError(f"safe_mode: {safe_mode!r} is not valid; choose one of: damping, hold")
        if not time_scale > 0:
            raise ConfigError(f"time_scale: must be > 0, got {time_scale}")
        self.spec = spec
        self.port = str(port)
        self.command_kind = spec.action.command_kind  # a relative action: the loop sends integrated targets
        self.joint_names = spec.joint_names
        self.time_scale = float(time_scale)
        self.watchdog = watchdog if watchdog is not None else max(WATCHDOG_PERIODS * spec.control_period,
                                                                  WATCHDOG_MIN)
        self.safe_mode = P.SafeMode.HOLD if safe_mode == "hold" else P.SafeMode.DAMPING
        self.connect_timeout = connect_timeout
        self.recover_device = bool(recover)
        """RESET a device left enabled or e-stopped by an earlier host instead of refusing it."""
        self.link = SerialLink(self.port, baudrate=baudrate, request_timeout=request_timeout, retries=retries,
                               state_timeout=max(0.1, 5 * spec.control_period / self.time_scale))
        self.info: P.Info | None = None
        self.layout: P.StateLayout | None = None
        self.last_sent: np.ndarray | None = None
        self._kind = P.COMMAND_KIND_NAMES[spec.action.command_kind]
        self._host = host_fields(spec)
        """State fields the control loop supplies (targets, a goal task's goal): not asked of the device."""
        self._last_seq: int | None = None
        self._last_sample: StateSample | None = None
        self._offset: tuple[float, float] | None = None  # (host - device/scale at the last update, host)
        self._grid_origin = 0.0  # device time of the first state after CONFIG
        self._sequence = 0  # RobotState.sequence of that state: it keeps counting up across reconfigures
        self._last_sequence = -1
        self._device_configured = False
        self._estop_requested = False
        self._low: np.ndarray | None = None  # the device's command limits, from its INFO at connect
        self._high: np.ndarray | None = None

    # ------------------------------------------------------------------ clock
    def clock(self) -> float:
        """The device clock now (seconds), estimated from the host's monotonic clock."""
        if self._offset is None:  # no state yet: nothing to compare with
            return time.monotonic()
        offset, _ = self._offset
        return (time.monotonic() - offset) * self.time_scale

    def _track_clock(self, sample: StateSample) -> None:
        measured = sample.host_time - sample.device_time / self.time_scale
        if self._offset is None:
            self._offset = (measured, sample.host_time)
            return
        offset, since = self._offset
        offset += CLOCK_DRIFT * (sample.host_time - since)
        self._offset = (min(offset, measured), sample.host_time)

    # ------------------------------------------------------------------ lifecycle hooks
    def _configure(self) -> None:
        link = self.link
        if link._reader is None:
            link.open()
        elif not link.connected and not link.wait_connected(self.connect_timeout):
            raise HardwareError(f"serial link to {self.port} is down and did not come back within "
                                f"{self.connect_timeout:g} s: {link.last_error}")
        info = link.hello()
        self._check_device(info)
        left = held_by_earlier_host(link.status().flags)
        if left is not None:
            if not self.recover_device:
                raise DeviceLockedError(locked_message(self.port, left))
            link.request(P.Reset())  # asked for: --recover
            info = link.hello()
            self._check_device(info)
        mask = P.StateLayout.mask_for(info, [n for n in self.spec.state_fields if n not in P.RESERVED_FIELDS
                                             and n not in self._host]
                                      + [n for n in P.RESERVED_FIELDS if n in dict(info.fields)])
        config = P.Config(round(self.spec.control_period * 1e6), round(self.watchdog * 1e6), self.safe_mode,
                          self._kind, mask)
        link.forget_state()
        self._device_configured = True  # from CONFIG on, a failure e-stops the device
        try:
            link.request(config)
        except DeviceRefused as err:  # enabled or e-stopped since our GET_STATUS: not ours to e-stop
            self._device_configured = False
            if err.reason in (P.Nack.BUSY, P.Nack.ESTOPPED):
                raise DeviceLockedError(locked_message(self.port, err.reason.name)) from None
            raise
        link.streaming = True
        self.info, self.layout = info, P.StateLayout(info, mask)
        self.joint_names = info.joint_names
        self._low = np.array([j.command_limits[0] for j in info.joints])
        self._high = np.array([j.command_limits[1] for j in info.joints])
        self._last_seq, self._last_sample, self._offset = None, None, None
        first = link.wait_state(None, max(1.0, 10 * self.spec.control_period / self.time_scale))
        if first is None:
            raise HardwareError(f"device at {self.port} acknowledged CONFIG but streams no STATE")
        self._grid_origin = first.device_time
        self._sequence = self._last_sequence + 1

    def _check_device(self, info: P.Info) -> None:
        """Refuse a device that is not the bundle's robot; names both sides."""
        spec = self.spec
        device = f"device {info.device_name!r} at {self.port}"
        names = info.joint_names
        if len(info.joints) != len(spec.joint_names):
            raise HardwareError(f"{device} has {len(info.joints)} joints {list(names)}; the bundle "
                                f"({spec.name}) commands {len(spec.joint_names)}: {list(spec.joint_names)}. "
                                f"Nothing was sent to the motors.")
        if all(names):
            if sorted(names) != sorted(spec.joint_names):
                raise HardwareError(f"{device} has joints {list(names)}; the bundle ({spec.name}) expects "
                                    f"{list(spec.joint_names)}. Nothing was sent to the motors.")
        elif info.names_hash != P.joint_names_hash(spec.joint_names):
            expected = P.joint_names_hash(spec.joint_names)
            raise HardwareError(f"{device} reports joint-name hash 0x{info.names_hash:08x}; the bundle's "
                                f"{list(spec.joint_names)} hash to 0x{expected:08x}")
        offered = dict(info.fields)
        missing = [n for n in spec.state_fields if n not in offered and n not in self._host]
        if missing:
            raise HardwareError(f"{device} cannot provide the state fields {missing} that the bundle's "
                                f"observation reads; it offers {list(offered)}")
        wrong = [f"{n} ({offered[n]} vs {size})" for n, size in spec.state_fields.items()
                 if n in offered and offered[n] != size]
        if wrong:
            raise HardwareError(f"{device}: state field sizes differ from the bundle's (device vs bundle): "
                                f"{', '.join(wrong)}")
        if self._kind not in info.command_kinds:
            raise HardwareError(f"{device} does not take {self.command_kind} commands "
                                f"(it takes {', '.join(k.name.lower() for k in info.command_kinds)})")

    def _activate(self) -> RobotState:
        self.link.request(P.Enable())
        enabled_after = time.monotonic()
        deadline = enabled_after + max(1.0, 10 * self.spec.control_period / self.time_scale)
        while True:  # the first state sampled with the motors enabled seeds the targets
            sample = self.link.wait_state(self._last_seq, max(0.0, deadline - time.monotonic()))
            if sample is None:
                raise HardwareError(f"device at {self.port} acknowledged ENABLE but sent no state after it")
            self._last_seq = sample.seq
            if sample.flags & P.Flags.ENABLED and sample.host_time >= enabled_after:
                break
        self.last_sent = None
        return self._to_state(sample)

    def _read_state(self) -> RobotState:
        link = self.link
        if not link.connected:
            raise HardwareError(f"serial link to {self.port} lost: {link.last_error}")
        period = self.spec.control_period / self.time_scale  # host seconds
        sample = link.wait_state(self._last_seq, 0.5 * period) or link.latest_state()
        if sample is None:
            raise HardwareError(f"no state from the device at {self.port}")
        self._last_seq = sample.seq
        return self._to_state(sample)

    def _to_state(self, sample: StateSample) -> RobotState:
        if sample is not self._last_sample:
            self._track_clock(sample)
            self._last_sample = sample
        flags = sample.flags
        if flags & P.Flags.ESTOPPED:
            raise HardwareError(f"device at {self.port} is e-stopped")
        if flags & P.Flags.SAFE and self.lifecycle is Lifecycle.ACTIVE:
            why = "its watchdog tripped (no setpoint in time)" if flags & P.Flags.WATCHDOG else "safe mode"
            raise HardwareError(f"device at {self.port} went to its safe state: {why}")
        layout = self.layout
        assert layout is not None
        values = sample.values.astype(np.float64)
        sequence = self._sequence + round((sample.device_time - self._grid_origin) / self.spec.control_period)
        self._last_sequence = max(self._last_sequence, sequence)
        fields: Mapping[str, np.ndarray] = layout.split(values)
        return RobotState(
            joint_positions=values[layout.joint_position_index],
            joint_velocities=values[layout.joint_velocity_index],
            timestamp=sample.device_time,
            sequence=sequence,
            fields={k: v for k, v in fields.items() if k not in P.RESERVED_FIELDS[2:]},
            base_orientation=fields.get("base_orientation"),
            base_angular_velocity=fields.get("base_angular_velocity"),
        )

    def _write_command(self, command: np.ndarray) -> np.ndarray:
        if command.shape != (len(self.joint_names),):
            raise HardwareError(f"command has shape {command.shape}; this robot takes "
                                f"({len(self.joint_names)},)")
        if not np.isfinite(command).all():  # the safety filter stops these; the link never carries one
            raise HardwareError(f"refused to send a non-finite command {command.tolist()}")
        sent = np.clip(command, self._low, self._high).astype(np.float32)
        self.link.send_setpoint(self._kind, sent, self._last_sample)
        self.last_sent = sent.astype(np.float64)
        return self.last_sent

    def _deactivate(self) -> None:
        """The safe command once (torque, velocity: zeros; position: the measured positions), then
        DISABLE (the device turns the motors off)."""
        try:
            self.link.send_setpoint(self._kind, self._safe_command(), self._last_sample)
        finally:
            self.link.request(P.Disable())

    def _safe_command(self) -> np.ndarray:
        n = len(self.joint_names)
        sample, layout = self._last_sample, self.layout
        if self._kind != P.CommandKind.POSITION or sample is None or layout is None:
            return np.zeros(n, dtype=np.float32)
        q = sample.values.astype(np.float64)[layout.joint_position_index]
        assert self.info is not None
        low = np.array([j.position_limits[0] for j in self.info.joints])
        high = np.array([j.position_limits[1] for j in self.info.joints])
        return np.clip(q, low, high).astype(np.float32)

    def estop(self, reason: str = "e-stop") -> None:
        """ESTOP to the device, from any state (the base class: lifecycle to ERROR, never raises)."""
        self._estop_requested = True
        try:
            super().estop(reason)
        finally:
            self._estop_requested = False

    def _estop(self) -> None:
        """ESTOP, then wait briefly for its ACK; raises if the link is down (the base records it).

        Called by the base class also when a call fails; a device this host never configured (e.g.
        refused for its joints or protocol version) is then left alone, not even e-stopped.
        """
        if not (self._estop_requested or self._device_configured):
            return
        self.link.request(P.Estop(), timeout=0.05, retries=2)

    def _recover(self) -> None:
        link = self.link
        if link._reader is not None and not link.connected and not link.wait_connected(self.connect_timeout):
            raise HardwareError(f"serial link to {self.port} is still down after {self.connect_timeout:g} s")
        if link.connected:
            link.request(P.Reset())
        self._device_configured = False
        link.streaming = False
        link.forget_state()

    def _close(self) -> None:
        self.link.close()

    # ------------------------------------------------------------------ extras
    def status(self) -> dict[str, Any]:
        """The device's STATUS counters plus the link's, for reports (device latency in µs)."""
        out: dict[str, Any] = {"link": self.link.snapshot()}
        try:
            status = self.link.status()
        except HardwareError as err:
            out["device_error"] = str(err)
        else:
            out["device"] = {"flags": flag_names(status.flags), "last_fault": status.last_fault.name,
                             **status.counters}
        return out


def flag_names(flags: P.Flags) -> str:
    """"ENABLED|LIMIT" for flags ("-" if none)."""
    return "|".join(f.name for f in P.Flags if f in flags and f.name) or "-"


def reset_device(port: str, *, baudrate: int = DEFAULT_BAUDRATE, request_timeout: float = 0.1,
                 retries: int = 3) -> tuple[P.Info, P.Status, P.Status]:
    """`robot-rl device reset --port`: HELLO (the protocol version checked), then the device's STATUS
    before and after a RESET (e-stop and watchdog latch cleared, motors off, unconfigured)."""
    with SerialLink(port, baudrate=baudrate, request_timeout=request_timeout, retries=retries,
                    reconnect=False) as link:
        info = link.hello()
        before = link.status()
        link.request(P.Reset())
        after = link.status()
    return info, before, after


def make_robot(spec: TaskSpec, options: Mapping[str, Any]) -> SerialRobot:
    """The backend factory `robot-rl deploy --backend serial --port TTY` calls."""
    options = dict(options)
    port = options.pop("port", None)
    if not port:
        raise ConfigError("the serial backend needs --port (the device's tty, e.g. /dev/ttyACM0 or the "
                          "path `robot-rl emulate --link` made)")
    options.pop("realtime", None)  # a real device always runs in real time
    known = ("baudrate", "watchdog", "safe_mode", "time_scale", "request_timeout", "retries",
             "connect_timeout", "recover")
    unknown = [k for k, v in options.items() if k not in known and v is not None]
    if unknown:
        raise ConfigError(f"serial backend: unknown option {unknown[0]!r}; valid: port, {', '.join(known)}")
    return SerialRobot(spec, port, **{k: v for k, v in options.items() if v is not None})
