"""The emulated firmware: the protocol's device-side state machine over a plant, without any I/O.

`Device.handle(packet, rx_us)` takes one decoded packet from the host; `Device.tick(k)` runs firmware
tick k (watchdog, STATE on a control-period boundary, control law, physics). What the device sends
goes out through the `send(message, stamp_us)` callback; INJECTs that act on the byte stream (faults,
disconnect) go to the `inject(message)` callback after they are checked and acknowledged. The rules
are those of docs/serial-protocol.md; every frame a host can send is answered (ACK/NACK/INFO/STATUS)
or counted, none raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from robot_rl.hardware import protocol as P
from robot_rl.hardware.emulator.faults import inject_error
from robot_rl.hardware.emulator.plant import MujocoPlant

LIMIT_HYSTERESIS = 0.01
"""rad or m a joint must move away from its limit before reaching it again is a new JOINT_LIMIT."""
COUNTERS = ("seq_gaps", "setpoints", "setpoints_rejected", "watchdog_trips", "limit_hits", "unknown_type",
            "bad_payload", "unsupported", "bad_version", "tx_overflow", "overruns",
            "disconnects")
"""The device's own counters (the frame decoder keeps frames_ok, bad_crc, bad_cobs, bad_length). They
count from the device's start and survive RESET, HELLO and CONFIG; the latency and arrival figures
(and `latency_count`) restart at each CONFIG."""


class Device:
    """Device state (configured, enabled, safe, e-stopped), counters and the control law for `plant`."""

    def __init__(self, plant: MujocoPlant, info: P.Info, *, tick_us: int, step_ticks: int,
                 send: Callable[[P.Message, int], None], inject: Callable[[P.Inject], None],
                 decoder_counters: dict[str, int], freeze_until_enable: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
        self.plant = plant
        self.info = info
        self.version = info.protocol_version
        self.tick_us = tick_us
        self._step_ticks = step_ticks
        self._send_cb, self._inject_cb = send, inject
        self._decoder_counters = decoder_counters
        self.freeze_until_enable = freeze_until_enable
        self.log = log or (lambda text: None)
        """Called with one line per session event (CONFIG, ENABLE, DISABLE, ESTOP, RESET, watchdog)."""
        self.n = len(plant.joints)
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.latencies_us: list[int] = []
        self.arrivals_us: list[int] = []
        self._last_host_seq: int | None = None
        self._k = 0
        self._rx_us = 0
        self.reset()

    # ---- state
    def reset(self) -> None:
        """Power-on state, and RESET's: unconfigured, disabled, latches cleared (counters kept)."""
        self.configured = self.enabled = self.safe = self.estopped = self.watchdog_tripped = False
        self.config: P.Config | None = None
        self.layout: P.StateLayout | None = None
        self._field_names: list[str] = []
        self.command = np.zeros(self.n)
        self.command_kind = P.CommandKind.TORQUE
        self.safe_mode = P.SafeMode.DAMPING
        self.hold = self.plant.positions()
        self.last_fault = P.Fault.NONE
        self._setpoint_seq = 0xFFFF
        self._last_setpoint_us = 0
        self._config_tick, self._period_ticks = 0, 1
        self._pending_latency: int | None = None
        self._limit_active = np.zeros(self.n, dtype=bool)
        self._limit_armed = np.zeros(self.n, dtype=bool)  # True: reported, not yet moved away
        self.frozen = self.freeze_until_enable

    @property
    def flags(self) -> P.Flags:
        """SAFE whenever the safe mode drives the motors: after a watchdog trip and during an e-stop."""
        f = P.Flags(0)
        for on, flag in ((self.configured, P.Flags.CONFIGURED), (self.enabled, P.Flags.ENABLED),
                         (self.safe or self.estopped, P.Flags.SAFE), (self.estopped, P.Flags.ESTOPPED),
                         (bool(self._limit_active.any()), P.Flags.LIMIT),
                         (self.watchdog_tripped, P.Flags.WATCHDOG)):
            if on:
                f |= flag
        return f

    def now_us(self) -> int:
        """Device clock, µs: the start of the current (or last) tick."""
        return self._k * self.tick_us

    # ---- one firmware tick
    def tick(self, k: int) -> None:
        """Tick k spans device time [k, k + 1) ticks: the state at its start is what STATE reports."""
        self._k = k
        t_us = k * self.tick_us
        config = self.config  # set while enabled (ENABLE needs a CONFIG)
        if self.enabled and config is not None and not self.safe \
                and t_us - self._last_setpoint_us > config.watchdog_us:
            self.safe = self.watchdog_tripped = True
            self.hold = self.plant.positions()
            self.counters["watchdog_trips"] += 1
            silent_ms = (t_us - self._last_setpoint_us) / 1000.0
            self._fault(P.Fault.WATCHDOG, value=silent_ms)
            self.log(f"watchdog: no setpoint for {silent_ms:g} ms; motors in the safe mode "
                     f"({self.safe_mode.name}) until ENABLE")
        if self.configured and (k - self._config_tick) % self._period_ticks == 0:
            values = self.plant.sample(self._field_names)
            self._send(P.State(self.flags, self._setpoint_seq, values), stamp=t_us)
        if self._pending_latency is not None:  # the firmware takes a setpoint at the tick after it came
            self.latencies_us.append((t_us - self._pending_latency) & 0xFFFFFFFF)
            self._pending_latency = None
        if k % self._step_ticks == self._step_ticks // 2:
            # The step [b, b + dt) from boundary b is integrated at its middle tick with the command of
            # that moment: a command takes effect at the *nearest* step boundary, so the plant's
            # discretisation shifts it by at most dt/2 either way instead of delaying it dt/2 on average.
            ctrl = self._control()
            if not self.frozen:
                self.plant.step(ctrl)

    def _control(self) -> np.ndarray:
        """Actuator controls for this tick, by mode; clipped; outward torque cut at a position limit."""
        plant = self.plant
        q, qd = plant.positions(), plant.velocities()
        if self.estopped or self.safe:
            if self.safe_mode == P.SafeMode.HOLD:
                ctrl = plant.kp * (self.hold - q) - plant.kd * qd
            else:
                ctrl = -plant.kd * qd
        elif not self.enabled:
            ctrl = np.zeros(self.n)
        elif self.command_kind == P.CommandKind.TORQUE:
            ctrl = self.command.copy()
        elif self.command_kind == P.CommandKind.POSITION:
            target = np.clip(self.command, plant.position_low, plant.position_high)
            ctrl = plant.kp * (target - q) - plant.kd * qd
        else:
            ctrl = plant.kd * (self.command - qd)
        ctrl = np.clip(ctrl, plant.command_low, plant.command_high)
        low, high = q <= plant.position_low, q >= plant.position_high
        at_limit = low | high
        ctrl[(low & (ctrl < 0)) | (high & (ctrl > 0))] = 0.0
        servo = plant.servo
        if servo.any():  # a position servo's control is its target: hold, limp (its position), or the command
            if self.estopped or self.safe:
                target = self.hold if self.safe_mode == P.SafeMode.HOLD else q
            elif not self.enabled or self.command_kind != P.CommandKind.POSITION:
                target = q
            else:
                target = np.clip(self.command, plant.position_low, plant.position_high)
            ctrl = np.where(servo, np.clip(target, plant.command_low, plant.command_high), ctrl)
        new = at_limit & ~self._limit_armed
        if new.any() and self.enabled:
            self.counters["limit_hits"] += int(new.sum())
            for j in np.flatnonzero(new):
                self._fault(P.Fault.JOINT_LIMIT, joint=int(j), value=float(q[j]))
        self._limit_active = at_limit
        # a joint resting on its limit reports once: re-armed only after it moves LIMIT_HYSTERESIS away
        away = (q > plant.position_low + LIMIT_HYSTERESIS) & (q < plant.position_high - LIMIT_HYSTERESIS)
        self._limit_armed = (self._limit_armed | at_limit) & ~away
        return ctrl

    # ---- messages
    def handle(self, packet: P.Packet, rx_us: int) -> None:
        """One packet from the host (CRC already checked), received at device time `rx_us`."""
        self._rx_us = rx_us
        if packet.type == P.MsgType.HELLO:  # a new host session numbers its packets afresh
            self._last_host_seq = None
        if self._last_host_seq is not None:
            gap = P.seq_gap(self._last_host_seq, packet.seq)
            if gap:
                self.counters["seq_gaps"] += gap
                if self.enabled:  # lost packets may have been setpoints the motors needed
                    self._fault(P.Fault.SETPOINT_GAP, value=float(gap))
        self._last_host_seq = packet.seq
        if packet.version != self.version:
            self.counters["bad_version"] += 1
            if packet.type == P.MsgType.HELLO:  # HELLO of any version is answered: the host can refuse us
                self._send(dataclasses.replace(self.info, req_seq=packet.seq))
            elif packet.type == P.MsgType.SETPOINT:  # streamed: never answered, only counted
                self.counters["setpoints"] += 1
                self.counters["setpoints_rejected"] += 1
            else:
                self._nack(packet, P.Nack.VERSION)
            return
        try:
            msg = P.decode_message(packet)
        except P.ProtocolError as err:
            self.counters[err.kind] = self.counters.get(err.kind, 0) + 1
            if packet.type == P.MsgType.SETPOINT:
                self.counters["setpoints"] += 1
                self.counters["setpoints_rejected"] += 1
                count = packet.payload[1] if len(packet.payload) >= 2 else 0
                self._fault(P.Fault.BAD_SETPOINT, value=float(count))
            else:
                reason = {"unknown_type": P.Nack.UNKNOWN_TYPE, "unsupported": P.Nack.UNSUPPORTED}.get(
                    err.kind, P.Nack.BAD_PAYLOAD)
                self._nack(packet, reason)
            return
        handler = self._HANDLERS.get(type(msg))
        if handler is None:  # a device-to-host message sent to the device
            self._nack(packet, P.Nack.UNSUPPORTED)
            return
        handler(self, packet, msg)

    def _on_hello(self, packet: P.Packet, msg: P.Hello) -> None:
        self._send(dataclasses.replace(self.info, req_seq=packet.seq))

    def _on_config(self, packet: P.Packet, msg: P.Config) -> None:
        if self.estopped:
            return self._nack(packet, P.Nack.ESTOPPED)
        if self.enabled:
            return self._nack(packet, P.Nack.BUSY)
        period_ticks, rest = divmod(msg.control_period_us, self.tick_us)
        if period_ticks < 1 or rest or msg.watchdog_us < 1:
            return self._nack(packet, P.Nack.BAD_PAYLOAD)
        if msg.field_mask >> len(self.info.fields):
            return self._nack(packet, P.Nack.UNSUPPORTED)
        self.config, self.configured = msg, True
        self.command_kind, self.safe_mode = msg.command_kind, msg.safe_mode
        self.layout = P.StateLayout(self.info, msg.field_mask)
        self._field_names = [name for i, (name, _) in enumerate(self.info.fields)
                             if self.layout.mask >> i & 1]
        self._period_ticks = period_ticks
        # the first STATE at the next physics-step boundary (the state changes only there)
        self._config_tick = (self._k // self._step_ticks + 1) * self._step_ticks
        self.latencies_us, self.arrivals_us = [], []
        self._ack(packet)
        self.log(f"CONFIG: period {msg.control_period_us / 1000:g} ms, watchdog "
                 f"{msg.watchdog_us / 1000:g} ms, {msg.command_kind.name}, safe mode {msg.safe_mode.name}")

    def _on_enable(self, packet: P.Packet, msg: P.Enable) -> None:
        if self.estopped:
            return self._nack(packet, P.Nack.ESTOPPED)
        if not self.configured:
            return self._nack(packet, P.Nack.NOT_CONFIGURED)
        if not (self.enabled and not self.safe):  # enabling an enabled device is a no-op
            self.enabled, self.safe, self.watchdog_tripped = True, False, False
            self.frozen = False
            q = self.plant.positions()
            self.hold = q
            self.command = q.copy() if self.command_kind == P.CommandKind.POSITION else np.zeros(self.n)
            self._last_setpoint_us = max(self.now_us(), self._rx_us)
            self.log("ENABLE: motors on")
        self._ack(packet)

    def _on_disable(self, packet: P.Packet, msg: P.Disable) -> None:
        if self.enabled:
            self.log("DISABLE: motors off")
        self.enabled = self.safe = False
        self.command = np.zeros(self.n)
        self._ack(packet)

    def _on_setpoint(self, packet: P.Packet, msg: P.Setpoint) -> None:
        self.counters["setpoints"] += 1
        if not self.enabled or self.safe or self.estopped:
            self.counters["setpoints_rejected"] += 1
            return
        values = msg.values.astype(np.float64)
        if msg.kind != self.command_kind or values.size != self.n or not np.isfinite(values).all():
            self.counters["setpoints_rejected"] += 1
            self._fault(P.Fault.BAD_SETPOINT, value=float(values.size))
            return  # not applied; the watchdog is not fed either
        self.command = values
        self._setpoint_seq = packet.seq
        self._last_setpoint_us = max(self.now_us(), self._rx_us)  # fed when it arrived
        arrival = (self._rx_us - msg.state_time_us) & 0xFFFFFFFF
        if msg.state_time_us and arrival < 0x80000000:  # it echoes a STATE we sent: measure it
            self._pending_latency = msg.state_time_us
            self.arrivals_us.append(arrival)

    def _on_estop(self, packet: P.Packet, msg: P.Estop) -> None:
        if not self.estopped:
            self.hold = self.plant.positions()
            self._fault(P.Fault.ESTOP)
            self.log("ESTOP: motors in the safe mode, latched until RESET")
        self.estopped, self.enabled = True, False
        self._ack(packet)

    def _on_reset(self, packet: P.Packet, msg: P.Reset) -> None:
        frozen = self.frozen
        if self.configured or self.estopped:
            self.log("RESET: unconfigured, motors off")
        self.reset()
        self.frozen = frozen
        self._ack(packet)

    def _on_get_status(self, packet: P.Packet, msg: P.GetStatus) -> None:
        self._send(P.Status(packet.seq, self.flags, self.last_fault, self.status_counters()))

    def status_counters(self) -> dict[str, int]:
        """STATUS's fifteen counters (section 6 of the protocol document)."""
        lat = np.array(self.latencies_us, dtype=np.float64)
        dec = self._decoder_counters
        counters = {**self.counters, "frames_ok": dec["frames_ok"], "bad_crc": dec["bad_crc"],
                    "bad_framing": dec["bad_cobs"] + dec["bad_length"],
                    "latency_count": lat.size}
        for name, values in (("latency", lat), ("arrival", np.array(self.arrivals_us, dtype=np.float64))):
            if values.size:
                counters.update({f"{name}_p50_us": int(np.percentile(values, 50)),
                                 f"{name}_p99_us": int(np.percentile(values, 99)),
                                 f"{name}_max_us": int(values.max())})
        return counters

    def _on_inject(self, packet: P.Packet, msg: P.Inject) -> None:
        if inject_error(msg) is not None:  # NaN, a probability above 1, a negative seed, ...
            self.counters["bad_payload"] += 1
            return self._nack(packet, P.Nack.BAD_PAYLOAD)
        self._ack(packet)  # acknowledged before it acts: a MUTE or DISCONNECT would swallow the ACK
        if msg.kind == P.InjectKind.RESET_PLANT:
            self.plant.reset(int(msg.value))
            self.frozen = True
            self.hold = self.plant.positions()
        else:
            self._inject_cb(msg)

    _HANDLERS: ClassVar[dict[type, Callable[..., None]]] = {
        P.Hello: _on_hello, P.Config: _on_config, P.Enable: _on_enable, P.Disable: _on_disable,
        P.Setpoint: _on_setpoint, P.Estop: _on_estop, P.Reset: _on_reset, P.GetStatus: _on_get_status,
        P.Inject: _on_inject}

    # ---- sending
    def _ack(self, packet: P.Packet) -> None:
        self._send(P.Ack(packet.type, packet.seq))

    def _nack(self, packet: P.Packet, reason: P.Nack) -> None:
        self._send(P.NackMsg(packet.type, packet.seq, reason))

    def _fault(self, code: P.Fault, joint: int = P.NO_JOINT, value: float = 0.0) -> None:
        self.last_fault = code
        self._send(P.FaultReport(code, joint, value))

    def _send(self, msg: P.Message, stamp: int | None = None) -> None:
        self._send_cb(msg, self.now_us() if stamp is None else stamp)
