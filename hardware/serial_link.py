"""The host's serial driver: pyserial on a real tty, a reader thread, requests with acknowledgement.

`SerialLink` owns the port. Its reader thread decodes frames as they arrive and keeps the latest
STATE (with the host time it arrived), the device's INFO, recent FAULTs, and counters:

    frames_ok, bad_crc, bad_cobs, bad_length, bad_payload, bad_version, unknown_type   (frames in)
    seq_gaps       device packets lost (gaps in the device's sequence numbers)
    state_timeouts silences: no STATE for `state_timeout` s while the device should be streaming
    timeouts       requests that got no answer in time (each retry counts)
    disconnects, reconnects, packets_sent, setpoints_sent

Requests (HELLO, CONFIG, ENABLE, DISABLE, ESTOP, RESET, GET_STATUS, INJECT) wait for the device's
answer, resending after `request_timeout` up to `retries` times; requests are idempotent, so a retry
after a lost ACK is harmless, and the answer to any try ends the wait (a late answer is not lost). A
NACK is a `DeviceRefused` with its reason; an answer that does not decode (an invalid INFO) refuses the
device at once. SETPOINTs are streamed, never acknowledged.

A vanished port (the cable pulled, the emulator's pty closed) ends the reader's read with an error: the
link marks itself disconnected (`HardwareError` on the next use) and, with `reconnect=True`, reopens
the port in the background as soon as it exists again. A device that answers HELLO with another
protocol version is refused before anything else is sent.

Imports numpy, pyserial and robot_rl.hardware.protocol only.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import serial

from robot_rl.hardware import protocol as P
from robot_rl.hardware.robot import HardwareError

DEFAULT_BAUDRATE = 1_000_000
NACK_HINTS = {
    P.Nack.ESTOPPED: " (the device is e-stopped; RESET it, e.g. Robot.recover(), once the cause is fixed)",
    P.Nack.BUSY: " (the device is enabled; DISABLE it first)",
    P.Nack.NOT_CONFIGURED: " (send CONFIG first)",
}


class DeviceRefused(HardwareError):
    """The device answered a request with NACK `reason`."""

    def __init__(self, reason: P.Nack, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class InvalidReply:
    """An answer (INFO, STATUS, ACK, NACK) of this protocol version whose payload does not decode."""

    type_name: str
    error: str


MAX_PENDING_REPLIES = 64
"""Answers nobody waits for (to a request given up on) are forgotten beyond this many."""


@dataclass(frozen=True)
class StateSample:
    """One STATE as received: the device's numbers plus when the host got it."""

    seq: int
    """Device sequence number, unwrapped (keeps counting past 65535)."""
    device_time: float
    """Seconds on the device clock when sampled (unwrapped)."""
    device_time_us: int
    """The raw u32 timestamp, to echo in a SETPOINT."""
    raw_seq: int
    host_time: float
    """`time.monotonic()` when the reader thread decoded it."""
    flags: P.Flags
    setpoint_seq: int
    values: np.ndarray


@dataclass(frozen=True)
class FaultEvent:
    """A FAULT report with its device timestamp (s, unwrapped) and host arrival time (monotonic)."""

    device_time: float
    host_time: float
    report: P.FaultReport


_ANSWERS: dict[int, P.MsgType] = {P.MsgType.INFO: P.MsgType.HELLO, P.MsgType.STATUS: P.MsgType.GET_STATUS}
"""Answer type -> the request it answers, for answers whose payload starts with the request's seq."""


class SerialLink:
    """One serial port speaking the protocol. Thread-safe: one reader thread, any number of writers."""

    def __init__(self, port: str, *, baudrate: int = DEFAULT_BAUDRATE, request_timeout: float = 0.1,
                 retries: int = 3, reconnect: bool = True, reconnect_interval: float = 0.05,
                 state_timeout: float = 0.5) -> None:
        self.port = str(port)
        self.baudrate = baudrate
        self.request_timeout = request_timeout
        self.retries = retries
        self.reconnect = reconnect
        self.reconnect_interval = reconnect_interval
        self.state_timeout = state_timeout
        self.counters = dict.fromkeys(
            ("frames_ok", "bad_crc", "bad_cobs", "bad_length", "bad_payload", "bad_version", "unknown_type",
             "seq_gaps", "state_timeouts", "timeouts", "disconnects", "reconnects", "packets_sent",
             "setpoints_sent"), 0)
        self.faults: collections.deque[FaultEvent] = collections.deque(maxlen=64)
        """The device's recent FAULT reports, oldest first."""
        self.info: P.Info | None = None
        self.device_version: int | None = None
        self.last_error: str | None = None
        self.streaming = False
        """Set by the owner once CONFIG is acknowledged: from then on STATE silences count as timeouts."""
        self._serial: serial.Serial | None = None
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._state: StateSample | None = None
        self._replies: dict[tuple[int, int], P.Message | InvalidReply] = {}
        self._last_device_seq: int | None = None
        self._seq_unwrap = P.WrapCounter(16)
        self._time_unwrap = P.WrapCounter(32)
        self._seq = 0
        self._t0 = time.monotonic()
        self._decoder = P.FrameDecoder()
        self._connected = False
        self._closing = threading.Event()
        self._reader: threading.Thread | None = None
        self._silent = False

    # ------------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        return self._connected

    def open(self) -> None:
        """Open the port and start the reader; a clear HardwareError if the port does not exist."""
        if self._reader is not None:
            return
        self._open_port()
        self._closing.clear()
        self._reader = threading.Thread(target=self._read_loop, name=f"serial-reader {self.port}",
                                        daemon=True)
        self._reader.start()

    def _open_port(self) -> None:
        if not os.path.exists(self.port):
            raise HardwareError(f"serial port {self.port!r} does not exist (is the device plugged in, "
                                f"or the emulator running?)")
        try:
            ser = serial.Serial(self.port, baudrate=self.baudrate, timeout=0.02, write_timeout=0.5,
                                exclusive=True)
        except (serial.SerialException, OSError, ValueError) as err:
            raise HardwareError(f"cannot open serial port {self.port!r}: {err}") from None
        ser.reset_input_buffer()  # bytes queued while nobody listened are stale
        self._decoder.reset()
        self._serial = ser
        self._connected = True

    def close(self) -> None:
        """Stop the reader and close the port. Idempotent."""
        self._closing.set()
        reader, self._reader = self._reader, None
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=2.0)
        self._drop_port()

    def _drop_port(self) -> None:
        ser, self._serial = self._serial, None
        self._connected = False
        if ser is not None:
            try:
                ser.close()
            except Exception:
                pass
        with self._cond:
            self._cond.notify_all()

    def wait_connected(self, timeout: float) -> bool:
        """Wait for the background reconnect; True once the port is open again."""
        deadline = time.monotonic() + timeout
        while not self._connected and time.monotonic() < deadline and not self._closing.is_set():
            time.sleep(min(self.reconnect_interval, 0.01))
        return self._connected

    def _require_connected(self) -> serial.Serial:
        ser = self._serial
        if ser is None or not self._connected:
            why = f": {self.last_error}" if self.last_error else ""
            raise HardwareError(f"serial link to {self.port} is down{why}")
        return ser

    # ------------------------------------------------------------------ reader thread
    def _read_loop(self) -> None:
        while not self._closing.is_set():
            ser = self._serial
            if ser is None:
                if not self.reconnect:
                    return
                time.sleep(self.reconnect_interval)
                try:
                    self._open_port()
                except HardwareError:
                    continue
                self.counters["reconnects"] += 1
                self._last_device_seq = None
                self._seq_unwrap.reset()
                self._time_unwrap.reset()
                self.forget_state()
                continue
            try:
                data = ser.read(ser.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as err:
                if self._closing.is_set():
                    return
                self.last_error = f"device disconnected ({err})"
                self.counters["disconnects"] += 1
                self._drop_port()
                continue
            now = time.monotonic()
            if data:
                for packet in self._decoder.feed(data):
                    self._dispatch(packet, now)
                self.counters.update(self._decoder.counters)
            self._check_silence(now)

    def _check_silence(self, now: float) -> None:
        state = self._state
        if not self.streaming or state is None:
            return
        if now - state.host_time > self.state_timeout:
            if not self._silent:
                self._silent = True
                self.counters["state_timeouts"] += 1
        else:
            self._silent = False

    def _dispatch(self, packet: P.Packet, now: float) -> None:
        if self._last_device_seq is not None:
            self.counters["seq_gaps"] += P.seq_gap(self._last_device_seq, packet.seq)
        self._last_device_seq = packet.seq
        if packet.version != P.PROTOCOL_VERSION:
            self.counters["bad_version"] += 1
            if packet.type == P.MsgType.INFO:  # byte 0 and 1 mean the same in every version
                with self._cond:
                    self.device_version = packet.version
                    self._cond.notify_all()
            return
        try:
            msg = P.decode_message(packet)
        except P.ProtocolError as err:
            self.counters[err.kind] = self.counters.get(err.kind, 0) + 1
            request = _ANSWERS.get(packet.type)
            if request is not None and len(packet.payload) >= 2:  # it starts with the request's seq
                # an answer that does not decode (e.g. an INFO whose joint map points outside its
                # fields) is the device's answer all the same: the waiting request refuses the device
                answer = (int(request), int.from_bytes(packet.payload[:2], "little"))
                with self._cond:
                    self._replies[answer] = InvalidReply(P.MsgType(packet.type).name, str(err))
                    self._cond.notify_all()
            return
        if isinstance(msg, P.State):
            sample = StateSample(self._seq_unwrap.update(packet.seq),
                                 self._time_unwrap.update(packet.timestamp_us) * 1e-6, packet.timestamp_us,
                                 packet.seq, now, msg.flags, msg.setpoint_seq, msg.values)
            with self._cond:
                self._state = sample
                self._silent = False
                self._cond.notify_all()
        elif isinstance(msg, P.FaultReport):
            device_time = self._time_unwrap.update(packet.timestamp_us) * 1e-6
            self.faults.append(FaultEvent(device_time, now, msg))
        else:
            key = self._reply_key(msg)
            if key is not None:
                with self._cond:
                    if isinstance(msg, P.Info):
                        self.info = msg
                        self.device_version = msg.protocol_version
                    self._replies[key] = msg
                    while len(self._replies) > MAX_PENDING_REPLIES:
                        del self._replies[next(iter(self._replies))]
                    self._cond.notify_all()

    def _foreign_version(self) -> bool:
        return self.device_version is not None and self.device_version != P.PROTOCOL_VERSION

    @staticmethod
    def _reply_key(msg: P.Message) -> tuple[int, int] | None:
        if isinstance(msg, (P.Ack, P.NackMsg)):
            return (msg.req_type, msg.req_seq)
        if isinstance(msg, P.Info):
            return (P.MsgType.HELLO, msg.req_seq)
        if isinstance(msg, P.Status):
            return (P.MsgType.GET_STATUS, msg.req_seq)
        return None

    # ------------------------------------------------------------------ sending
    def now_us(self) -> int:
        return int((time.monotonic() - self._t0) * 1e6) & 0xFFFFFFFF

    def send(self, msg: P.Message) -> int:
        """Frame and write one message; returns its sequence number. HardwareError if the link is down."""
        with self._write_lock:
            ser = self._require_connected()
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFFFF
            frame = P.encode_frame(msg.TYPE, seq, self.now_us(), msg.pack())
            try:
                ser.write(frame)
            except (serial.SerialException, OSError, TypeError, AttributeError) as err:
                self.last_error = f"write failed ({err})"
                raise HardwareError(f"serial link to {self.port}: {self.last_error}") from None
            self.counters["packets_sent"] += 1
            return seq

    def request(self, msg: P.Message, timeout: float | None = None, retries: int | None = None) -> P.Message:
        """Send `msg` and wait for its answer (ACK, INFO, STATUS); resend on timeout.

        Every try is a new packet with a new `seq`; the answer to any try of this request counts (the
        tries are the same idempotent request), so an answer that comes late still ends the wait.
        A NACK becomes a `DeviceRefused` naming the reason; no answer after the retries, a HardwareError.
        """
        timeout = self.request_timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        name = msg.TYPE.name
        keys: list[tuple[int, int]] = []
        try:
            for _ in range(retries + 1):
                keys.append((int(msg.TYPE), self.send(msg)))
                deadline = time.monotonic() + timeout
                with self._cond:
                    while not any(k in self._replies for k in keys) and not self._foreign_version():
                        left = deadline - time.monotonic()
                        if left <= 0 or not self._connected:
                            break
                        self._cond.wait(left)
                    reply = next((self._replies[k] for k in keys if k in self._replies), None)
                if self._foreign_version():
                    raise HardwareError(
                        f"device at {self.port} speaks serial protocol version {self.device_version}; this "
                        f"host speaks version {P.PROTOCOL_VERSION}: refused, nothing was sent to the motors")
                if isinstance(reply, InvalidReply):
                    raise HardwareError(f"device at {self.port} answered {name} with an invalid "
                                        f"{reply.type_name} ({reply.error}): refused, nothing was sent to "
                                        f"the motors")
                if isinstance(reply, P.NackMsg):
                    hint = NACK_HINTS.get(reply.reason, "")
                    raise DeviceRefused(reply.reason, f"device refused {name}: {reply.reason.name}{hint}")
                if reply is not None:
                    return reply
                self._require_connected()
                self.counters["timeouts"] += 1
        finally:
            with self._cond:  # answers to the other tries, arrived or still to come, are not kept
                for key in keys:
                    self._replies.pop(key, None)
        raise HardwareError(f"device at {self.port} did not answer {name} within {timeout * 1000:.0f} ms "
                            f"({retries + 1} tries)")

    def hello(self) -> P.Info:
        """HELLO -> INFO, checking the device's protocol version. Sends nothing else."""
        self.device_version = None
        info = self.request(P.Hello())
        assert isinstance(info, P.Info)
        if info.protocol_version != P.PROTOCOL_VERSION:
            raise HardwareError(
                f"device at {self.port} speaks serial protocol version {info.protocol_version}; this host "
                f"speaks version {P.PROTOCOL_VERSION}: refused, nothing was sent to the motors")
        return info

    def status(self) -> P.Status:
        reply = self.request(P.GetStatus())
        assert isinstance(reply, P.Status)
        return reply

    def send_setpoint(self, kind: P.CommandKind, values: np.ndarray, state: StateSample | None) -> int:
        """Stream one SETPOINT computed from `state` (its sequence and timestamp are echoed)."""
        msg = P.Setpoint(kind, state.raw_seq if state else 0, state.device_time_us if state else 0, values)
        seq = self.send(msg)
        self.counters["setpoints_sent"] += 1
        return seq

    # ------------------------------------------------------------------ state
    def latest_state(self) -> StateSample | None:
        return self._state

    def wait_state(self, newer_than: int | None, timeout: float) -> StateSample | None:
        """The latest STATE with seq > `newer_than` (any if None), waiting up to `timeout` s for one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                state = self._state
                if state is not None and (newer_than is None or state.seq > newer_than):
                    return state
                left = deadline - time.monotonic()
                if left <= 0 or not self._connected:
                    return state if newer_than is None else None
                self._cond.wait(left)

    def forget_state(self) -> None:
        """Drop the latest state (after a reset or a new configuration)."""
        with self._cond:
            self._state = None

    def snapshot(self) -> dict[str, Any]:
        """Counters plus link facts, for reports."""
        return {"port": self.port, "connected": self._connected, **self.counters,
                "last_error": self.last_error}

    def __enter__(self) -> SerialLink:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
