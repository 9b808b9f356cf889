"""The serial wire protocol between a host and a robot's microcontroller (or the firmware emulator).

Everything a second implementation needs is in docs/serial-protocol.md; this module is the reference.

    frame   = 0x00  COBS(packet)  0x00          (a run of 0x00 is one delimiter; empty frames are idle)
    packet  = version u8 | type u8 | seq u16 | timestamp_us u32 | payload | crc32c u32     (little-endian)

- COBS (consistent-overhead byte stuffing) removes every 0x00 from the packet, so 0x00 marks frame
  boundaries only: a corrupted byte costs the one frame it is in, and a receiver resynchronises at the
  next 0x00. Frames are *preceded and followed* by 0x00, so a flipped delimiter, a truncated frame or
  garbage between frames never merges two good frames.
- CRC-32C (Castagnoli): polynomial 0x1EDC6F41 (reflected 0x82F63B78), init 0xFFFFFFFF, input and output
  reflected, xorout 0xFFFFFFFF; check value of b"123456789" is 0xE3069283. It covers the header and the
  payload. Chosen over CRC-16 because truncated or garbage frames pass a 16-bit check once in 65536.
- `seq` counts each sender's packets (+1 per packet, wraps 65535 -> 0); a receiver counts gaps.
  `timestamp_us` is the sender's monotonic clock in microseconds, wrapping at 2**32.
- Byte 0 (version) and byte 1 (type) keep their meaning in every protocol version, and a device
  answers HELLO of any version with its INFO: a host can always learn the device's version and refuse it.

Message payloads are small frozen dataclasses with `pack()` / `unpack(payload)`; `decode_message`
dispatches on the type and checks the exact payload length. Numbers: float32 for physical values.
Imports numpy and the standard library only (the serial path runs without mujoco or torch).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

PROTOCOL_VERSION = 1
MAX_PACKET = 2048
"""Largest decoded packet in bytes (header + payload + CRC); longer frames are dropped."""
MAX_FRAME = MAX_PACKET + MAX_PACKET // 254 + 2
"""Largest COBS-encoded packet in bytes (without delimiters)."""
MAX_FIELDS = 32
"""At most this many state fields (CONFIG selects them with a 32-bit mask)."""
NO_JOINT = 0xFF
"""FAULT.joint when the fault concerns no joint in particular."""

HEADER = struct.Struct("<BBHI")
CRC = struct.Struct("<I")
OVERHEAD = HEADER.size + CRC.size  # 12 bytes


class ProtocolError(ValueError):
    """A frame or payload that does not decode; the receiver drops it and counts the kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        """Counter it belongs to: "bad_cobs", "bad_length", "bad_crc", "bad_payload", "unknown_type", or
        "unsupported" (a well-formed request naming a command kind, safe mode or fault kind this side
        does not know: a device answers NACK UNSUPPORTED)."""


class MsgType(enum.IntEnum):
    HELLO = 0x01        # host -> device: who are you? (answered with INFO, whatever the version)
    INFO = 0x02         # device -> host: protocol version, joints, state fields, firmware rate
    CONFIG = 0x03       # host -> device: control period, watchdog, safe mode, command kind, fields
    ENABLE = 0x04       # host -> device: motors on (acknowledged)
    DISABLE = 0x05      # host -> device: motors to the safe state, then off (acknowledged)
    SETPOINT = 0x06     # host -> device, streamed, unacknowledged: one command per control period
    STATE = 0x07        # device -> host, streamed every control period once configured
    ESTOP = 0x08        # host -> device: stop now; latched until RESET (acknowledged)
    RESET = 0x09        # host -> device: clear e-stop and faults, back to unconfigured (acknowledged)
    GET_STATUS = 0x0A   # host -> device: ask for STATUS
    STATUS = 0x0B       # device -> host: flags and counters
    FAULT = 0x0C        # device -> host, unsolicited: watchdog tripped, joint limit, bad setpoint, ...
    ACK = 0x0D          # device -> host: request done
    NACK = 0x0E         # device -> host: request refused, with a reason
    INJECT = 0x7F       # host -> emulator only: inject a fault (a real device answers NACK UNSUPPORTED)


class Nack(enum.IntEnum):
    """Why a device refused a request."""

    UNKNOWN_TYPE = 1     # a message type the device does not know
    BAD_PAYLOAD = 2      # wrong length or a value out of range (e.g. a period not a whole number of ticks)
    NOT_CONFIGURED = 3   # ENABLE before CONFIG
    ESTOPPED = 4         # e-stop latched: RESET first
    UNSUPPORTED = 5      # a command kind, field or message this device does not support
    BUSY = 6             # CONFIG while enabled
    VERSION = 7          # the request's protocol version is not the device's


class Fault(enum.IntEnum):
    """What a FAULT message (and STATUS.last_fault) reports."""

    NONE = 0
    WATCHDOG = 1        # no SETPOINT within the watchdog timeout: safe state entered (latched)
    JOINT_LIMIT = 2     # a joint reached its position limit; torque pushing outwards was cut
    BAD_SETPOINT = 3    # a SETPOINT with a non-finite value, wrong kind or count: not applied
    ESTOP = 4           # e-stop received
    SETPOINT_GAP = 5    # host packets were lost (sequence gap)


class Flags(enum.IntFlag):
    """STATE.flags / STATUS.flags."""

    CONFIGURED = 0x01
    ENABLED = 0x02
    SAFE = 0x04          # the safe mode (damping or hold) is driving the motors
    ESTOPPED = 0x08
    LIMIT = 0x10         # some joint is at a position limit
    WATCHDOG = 0x20      # the watchdog tripped since the last ENABLE


class CommandKind(enum.IntEnum):
    TORQUE = 0      # joint torque/force in the actuator's control units (N·m or N, or the MuJoCo ctrl)
    POSITION = 1    # joint position target, rad or m (the device runs a PD to it)
    VELOCITY = 2    # joint velocity target, rad/s or m/s


class SafeMode(enum.IntEnum):
    DAMPING = 0     # torque = -kd * velocity
    HOLD = 1        # PD to the positions measured when the safe state was entered


class InjectKind(enum.IntEnum):
    """INJECT faults on the emulator's outgoing stream (value, duration as in `Inject`)."""

    CLEAR = 0       # remove every injected fault
    DROP = 1        # drop each outgoing frame with probability value
    CORRUPT = 2     # flip one bit of each outgoing frame with probability value
    DELAY = 3       # hold every outgoing frame for value seconds
    GARBAGE = 4     # insert random bytes between frames with probability value
    TRUNCATE = 5    # cut each outgoing frame short with probability value
    DISCONNECT = 6  # close the pseudo-terminal for value seconds, then open a new one
    MUTE = 7        # stop sending (value 1) or resume (value 0); replies included
    RESET_PLANT = 8  # put the plant back to its initial state (seed = int(value)), frozen until ENABLE


COMMAND_KIND_NAMES = {"torque": CommandKind.TORQUE, "position": CommandKind.POSITION,
                      "velocity": CommandKind.VELOCITY}
RESERVED_FIELDS = ("joint_positions", "joint_velocities", "base_orientation", "base_angular_velocity")
"""Field names with a fixed meaning (RobotState's own attributes); any other name is a free state field."""


# --------------------------------------------------------------------------------------------------
# CRC-32C and COBS


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of `data` (continue from a previous `crc` to checksum in pieces)."""
    table = _CRC_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def cobs_encode(data: bytes | bytearray) -> bytes:
    """Consistent-overhead byte stuffing (Cheshire & Baker 1999): the result holds no 0x00 byte.

    Each block is a code byte n (1..255) followed by n - 1 data bytes; a code below 0xFF stands for
    its data followed by a 0x00, except at the very end. A final full block (0xFF) gets no extra 0x01.
    """
    out = bytearray()
    chunks = bytes(data).split(b"\x00")
    last = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        start, n = 0, len(chunk)
        while n - start >= 254:
            out.append(0xFF)
            out += chunk[start:start + 254]
            start += 254
        rest = n - start
        if i == last and rest == 0 and n > 0:
            break
        out.append(rest + 1)
        out += chunk[start:]
    return bytes(out)


def cobs_decode(data: bytes | bytearray | memoryview) -> bytes:
    """Inverse of `cobs_encode`; a ProtocolError("bad_cobs") if `data` is not a valid encoding."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise ProtocolError("bad_cobs", f"COBS block at byte {i} has code {code} "
                                            f"but {n - i - 1} bytes follow")
        block = data[i + 1:end]
        if 0 in block:
            raise ProtocolError("bad_cobs", "COBS data holds a 0x00 byte")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


# --------------------------------------------------------------------------------------------------
# Packets and frames


@dataclass(frozen=True)
class Packet:
    """One decoded packet: header fields and the raw payload (not yet interpreted)."""

    version: int
    type: int
    seq: int
    timestamp_us: int
    payload: bytes


def pack_packet(msg_type: int, seq: int, timestamp_us: int, payload: bytes = b"",
                version: int = PROTOCOL_VERSION) -> bytes:
    """Header + payload + CRC-32C: the packet before framing."""
    header = HEADER.pack(version & 0xFF, int(msg_type) & 0xFF, seq & 0xFFFF, timestamp_us & 0xFFFFFFFF)
    body = header + payload
    if len(body) + CRC.size > MAX_PACKET:
        raise ValueError(f"packet of {len(body) + CRC.size} bytes exceeds MAX_PACKET = {MAX_PACKET}")
    return body + CRC.pack(crc32c(body))


def encode_frame(msg_type: int, seq: int, timestamp_us: int, payload: bytes = b"",
                 version: int = PROTOCOL_VERSION) -> bytes:
    """The bytes on the wire for one packet: 0x00, COBS(packet), 0x00."""
    return b"\x00" + cobs_encode(pack_packet(msg_type, seq, timestamp_us, payload, version)) + b"\x00"


def decode_frame(frame: bytes | bytearray | memoryview) -> Packet:
    """A frame's COBS bytes (delimiters removed) -> Packet; a ProtocolError names what is wrong."""
    if len(frame) > MAX_FRAME:
        raise ProtocolError("bad_length", f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
    raw = cobs_decode(frame)
    if len(raw) > MAX_PACKET:  # fits MAX_FRAME when encoded, yet longer than any packet may be
        raise ProtocolError("bad_length", f"packet of {len(raw)} bytes exceeds MAX_PACKET = {MAX_PACKET}")
    if len(raw) < OVERHEAD:
        raise ProtocolError("bad_length", f"packet of {len(raw)} bytes is shorter than the "
                                          f"{OVERHEAD}-byte header and CRC")
    body = memoryview(raw)[:-CRC.size]
    (expected,) = CRC.unpack_from(raw, len(raw) - CRC.size)
    if crc32c(body) != expected:
        raise ProtocolError("bad_crc", "CRC-32C mismatch")
    version, msg_type, seq, stamp = HEADER.unpack_from(raw)
    return Packet(version, msg_type, seq, stamp, bytes(body[HEADER.size:]))


class FrameDecoder:
    """Splits a byte stream into packets at 0x00 delimiters; a bad frame is counted and skipped.

    `feed(data)` returns the packets completed by `data`. Damage never spreads past the next 0x00:
    an over-long run without a delimiter is discarded up to it.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False
        self.counters = {"frames_ok": 0, "bad_cobs": 0, "bad_length": 0, "bad_crc": 0}

    def reset(self) -> None:
        """Forget a partial frame (after a reconnect)."""
        self._buffer.clear()
        self._discarding = False

    def feed(self, data: bytes | bytearray) -> list[Packet]:
        if not data:
            return []
        packets: list[Packet] = []
        self._buffer += data
        if 0 not in data:
            if len(self._buffer) > MAX_FRAME:
                if not self._discarding:
                    self.counters["bad_length"] += 1
                self._discarding = True
                self._buffer.clear()
            return packets
        parts = self._buffer.split(b"\x00")
        self._buffer = bytearray(parts.pop())
        for part in parts:
            if self._discarding:  # the tail of an over-long run: ends at this delimiter
                self._discarding = False
                continue
            if not part:
                continue
            try:
                packets.append(decode_frame(part))
            except ProtocolError as err:
                self.counters[err.kind] += 1
            else:
                self.counters["frames_ok"] += 1
        return packets


class WrapCounter:
    """Unwraps a wrapping counter (u16 sequence, u32 microseconds) into an ever-increasing integer."""

    def __init__(self, bits: int) -> None:
        self.modulus = 1 << bits
        self.value: int | None = None

    def update(self, raw: int) -> int:
        if self.value is None:
            self.value = raw
        else:
            step = (raw - self.value) % self.modulus
            if step >= self.modulus // 2:  # an old (reordered or duplicated) value: step back
                step -= self.modulus
            self.value += step
        return self.value

    def reset(self) -> None:
        self.value = None


def seq_gap(previous: int, current: int) -> int:
    """Packets lost between two u16 sequence numbers (0 if consecutive; a repeat or reorder is 0)."""
    step = (current - previous) % 0x10000
    return step - 1 if 0 < step < 0x8000 else 0


# --------------------------------------------------------------------------------------------------
# Messages


class Message:
    """Base of every payload: `TYPE`, `pack() -> bytes`, `unpack(payload) -> message`."""

    TYPE: ClassVar[MsgType]

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> Any:
        _need_size(cls, payload, 0)
        return cls()


@dataclass(frozen=True)
class Hello(Message):
    TYPE: ClassVar[MsgType] = MsgType.HELLO


@dataclass(frozen=True)
class Enable(Message):
    TYPE: ClassVar[MsgType] = MsgType.ENABLE


@dataclass(frozen=True)
class Disable(Message):
    TYPE: ClassVar[MsgType] = MsgType.DISABLE


@dataclass(frozen=True)
class Estop(Message):
    TYPE: ClassVar[MsgType] = MsgType.ESTOP


@dataclass(frozen=True)
class Reset(Message):
    TYPE: ClassVar[MsgType] = MsgType.RESET


@dataclass(frozen=True)
class GetStatus(Message):
    TYPE: ClassVar[MsgType] = MsgType.GET_STATUS


@dataclass(frozen=True)
class JointInfo:
    """One actuated joint as the device describes it."""

    name: str
    position_field: int
    """Index (in INFO's field table) of the field holding this joint's position ..."""
    position_index: int
    """... and the element within that field. Likewise for the velocity."""
    velocity_field: int
    velocity_index: int
    position_limits: tuple[float, float]
    """rad or m; ±inf where unlimited."""
    command_limits: tuple[float, float]
    """Range of a TORQUE command in the device's units; ±inf where unbounded."""


_INFO_HEAD = struct.Struct("<HBHBBBI")   # req_seq, version, rate_hz, kinds mask, joints, fields, names crc
_JOINT = struct.Struct("<BHBHffff")       # pos field, pos index, vel field, vel index, limits
_FIELD = struct.Struct("<H")             # size (after the name)


@dataclass(frozen=True)
class Info(Message):
    """The device describes itself (answer to HELLO)."""

    TYPE: ClassVar[MsgType] = MsgType.INFO
    req_seq: int
    protocol_version: int
    firmware_rate_hz: int
    command_kinds: tuple[CommandKind, ...]
    device_name: str
    joints: tuple[JointInfo, ...]
    fields: tuple[tuple[str, int], ...]
    """(name, number of float32 elements) of every state field the device can stream, in order."""
    names_hash: int = -1
    """CRC-32C of the joint names joined by "\\n" (UTF-8); computed from the names if not given."""

    def __post_init__(self) -> None:
        if self.names_hash < 0:
            object.__setattr__(self, "names_hash", joint_names_hash([j.name for j in self.joints]))

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def pack(self) -> bytes:
        if len(self.fields) > MAX_FIELDS:
            raise ValueError(f"at most {MAX_FIELDS} state fields, got {len(self.fields)}")
        kinds = sum(1 << int(k) for k in self.command_kinds)
        out = bytearray(_INFO_HEAD.pack(self.req_seq & 0xFFFF, self.protocol_version, self.firmware_rate_hz,
                                        kinds, len(self.joints), len(self.fields), self.names_hash))
        out += _str8(self.device_name)
        for j in self.joints:
            out += _str8(j.name)
            out += _JOINT.pack(j.position_field, j.position_index, j.velocity_field, j.velocity_index,
                               *j.position_limits, *j.command_limits)
        for name, size in self.fields:
            out += _str8(name) + _FIELD.pack(size)
        return bytes(out)

    @classmethod
    def unpack(cls, payload: bytes) -> Info:
        try:
            req_seq, version, rate, kinds, n_joints, n_fields, names_hash = _INFO_HEAD.unpack_from(payload)
            at = _INFO_HEAD.size
            device, at = _read_str8(payload, at)
            joints = []
            for _ in range(n_joints):
                name, at = _read_str8(payload, at)
                pf, pi, vf, vi, plo, phi, clo, chi = _JOINT.unpack_from(payload, at)
                at += _JOINT.size
                joints.append(JointInfo(name, pf, pi, vf, vi, (plo, phi), (clo, chi)))
            fields = []
            for _ in range(n_fields):
                name, at = _read_str8(payload, at)
                (size,) = _FIELD.unpack_from(payload, at)
                at += _FIELD.size
                fields.append((name, size))
        except (struct.error, UnicodeDecodeError, IndexError) as err:
            raise ProtocolError("bad_payload", f"INFO does not decode: {err}") from None
        if at != len(payload):
            raise ProtocolError("bad_payload", f"INFO has {len(payload) - at} bytes too many")
        for j in joints:
            for f, i in ((j.position_field, j.position_index), (j.velocity_field, j.velocity_index)):
                if f >= len(fields) or i >= fields[f][1]:
                    raise ProtocolError("bad_payload", f"INFO: joint {j.name!r} maps to field {f} "
                                                       f"element {i}, which does not exist")
        kind_list = tuple(k for k in CommandKind if kinds & (1 << int(k)))
        return cls(req_seq, version, rate, kind_list, device, tuple(joints), tuple(fields), names_hash)


_CONFIG = struct.Struct("<IIBBI")


@dataclass(frozen=True)
class Config(Message):
    """How the host will drive the device. Acknowledged; refused while enabled."""

    TYPE: ClassVar[MsgType] = MsgType.CONFIG
    control_period_us: int
    """STATE is streamed, and SETPOINTs are expected, once per this period (a whole number of ticks)."""
    watchdog_us: int
    """No SETPOINT for this long while enabled -> safe state (latched until the next ENABLE)."""
    safe_mode: SafeMode
    command_kind: CommandKind
    field_mask: int
    """Bit i set: STATE carries INFO's field i. Fields the joint map uses are always sent."""

    def pack(self) -> bytes:
        return _CONFIG.pack(self.control_period_us, self.watchdog_us, int(self.safe_mode),
                            int(self.command_kind), self.field_mask)

    @classmethod
    def unpack(cls, payload: bytes) -> Config:
        _need_size(cls, payload, _CONFIG.size)
        period, watchdog, safe, kind, mask = _CONFIG.unpack(payload)
        try:  # a kind or mode this side does not know is one it does not support (NACK UNSUPPORTED)
            return cls(period, watchdog, SafeMode(safe), CommandKind(kind), mask)
        except ValueError as err:
            raise ProtocolError("unsupported", f"CONFIG: {err}") from None


_SETPOINT = struct.Struct("<BBHI")


@dataclass(frozen=True)
class Setpoint(Message):
    """One command for every joint, streamed; it names the STATE it was computed from (for latency)."""

    TYPE: ClassVar[MsgType] = MsgType.SETPOINT
    kind: CommandKind
    state_seq: int
    """Sequence number of the STATE the command was computed from."""
    state_time_us: int
    """That STATE's timestamp (device clock): the device measures end-to-end latency against it."""
    values: np.ndarray = field(compare=False)
    """float32 `(num_joints,)`, robot order, units of `kind`."""

    def pack(self) -> bytes:
        values = np.ascontiguousarray(self.values, dtype="<f4")
        return _SETPOINT.pack(int(self.kind), values.size, self.state_seq & 0xFFFF,
                              self.state_time_us & 0xFFFFFFFF) + values.tobytes()

    @classmethod
    def unpack(cls, payload: bytes) -> Setpoint:
        if len(payload) < _SETPOINT.size:
            raise ProtocolError("bad_payload", f"SETPOINT of {len(payload)} bytes is too short")
        kind, count, state_seq, state_time = _SETPOINT.unpack_from(payload)
        _need_size(cls, payload, _SETPOINT.size + 4 * count)
        try:
            kind = CommandKind(kind)
        except ValueError:
            raise ProtocolError("bad_payload", f"SETPOINT: unknown command kind {kind}") from None
        values = np.frombuffer(payload, dtype="<f4", offset=_SETPOINT.size, count=count)
        return cls(kind, state_seq, state_time, values)


_STATE = struct.Struct("<BH")


@dataclass(frozen=True)
class State(Message):
    """One sample of the robot, streamed every control period once configured.

    `values` is the concatenation (float32) of the fields CONFIG selected, in INFO's field order; a
    `StateLayout` cuts it into named fields and picks the joints' positions and velocities.
    """

    TYPE: ClassVar[MsgType] = MsgType.STATE
    flags: Flags
    setpoint_seq: int
    """Sequence number of the last SETPOINT the device applied."""
    values: np.ndarray = field(compare=False)

    def pack(self) -> bytes:
        return _STATE.pack(int(self.flags), self.setpoint_seq & 0xFFFF) + \
            np.ascontiguousarray(self.values, dtype="<f4").tobytes()

    @classmethod
    def unpack(cls, payload: bytes) -> State:
        if len(payload) < _STATE.size or (len(payload) - _STATE.size) % 4:
            raise ProtocolError("bad_payload", f"STATE of {len(payload)} bytes is not 3 + 4n")
        flags, setpoint_seq = _STATE.unpack_from(payload)
        return cls(Flags(flags), setpoint_seq, np.frombuffer(payload, dtype="<f4", offset=_STATE.size))


STATUS_COUNTERS = ("frames_ok", "bad_crc", "bad_framing", "seq_gaps", "setpoints", "setpoints_rejected",
                   "watchdog_trips", "limit_hits", "latency_count", "latency_p50_us", "latency_p99_us",
                   "latency_max_us", "arrival_p50_us", "arrival_p99_us", "arrival_max_us")
_STATUS = struct.Struct("<HBB" + "I" * len(STATUS_COUNTERS))


@dataclass(frozen=True)
class Status(Message):
    """The device's flags and counters (answer to GET_STATUS). Latency: a SETPOINT taken by the firmware
    (next tick) - its STATE's sampling; arrival: the SETPOINT received - its STATE's sampling."""

    TYPE: ClassVar[MsgType] = MsgType.STATUS
    req_seq: int
    flags: Flags
    last_fault: Fault
    counters: dict[str, int] = field(compare=False)

    def pack(self) -> bytes:
        values = [min(int(self.counters.get(k, 0)), 0xFFFFFFFF) for k in STATUS_COUNTERS]
        return _STATUS.pack(self.req_seq & 0xFFFF, int(self.flags), int(self.last_fault), *values)

    @classmethod
    def unpack(cls, payload: bytes) -> Status:
        _need_size(cls, payload, _STATUS.size)
        req_seq, flags, fault, *values = _STATUS.unpack(payload)
        counters = dict(zip(STATUS_COUNTERS, values, strict=True))
        return cls(req_seq, Flags(flags), _enum(Fault, fault), counters)


_FAULT = struct.Struct("<BBf")


@dataclass(frozen=True)
class FaultReport(Message):
    """Sent by the device when a fault happens (rising edge), at most once per fault per tick."""

    TYPE: ClassVar[MsgType] = MsgType.FAULT
    code: Fault
    joint: int = NO_JOINT
    value: float = 0.0
    """WATCHDOG: ms since the last SETPOINT; JOINT_LIMIT: the position; SETPOINT_GAP: packets lost."""

    def pack(self) -> bytes:
        return _FAULT.pack(int(self.code), self.joint, self.value)

    @classmethod
    def unpack(cls, payload: bytes) -> FaultReport:
        _need_size(cls, payload, _FAULT.size)
        code, joint, value = _FAULT.unpack(payload)
        return cls(_enum(Fault, code), joint, value)


_ACK = struct.Struct("<BH")
_NACK = struct.Struct("<BHB")


@dataclass(frozen=True)
class Ack(Message):
    TYPE: ClassVar[MsgType] = MsgType.ACK
    req_type: int
    req_seq: int

    def pack(self) -> bytes:
        return _ACK.pack(self.req_type, self.req_seq & 0xFFFF)

    @classmethod
    def unpack(cls, payload: bytes) -> Ack:
        _need_size(cls, payload, _ACK.size)
        return cls(*_ACK.unpack(payload))


@dataclass(frozen=True)
class NackMsg(Message):
    TYPE: ClassVar[MsgType] = MsgType.NACK
    req_type: int
    req_seq: int
    reason: Nack

    def pack(self) -> bytes:
        return _NACK.pack(self.req_type, self.req_seq & 0xFFFF, int(self.reason))

    @classmethod
    def unpack(cls, payload: bytes) -> NackMsg:
        _need_size(cls, payload, _NACK.size)
        req_type, req_seq, reason = _NACK.unpack(payload)
        return cls(req_type, req_seq, _enum(Nack, reason))


_INJECT = struct.Struct("<BfI")


@dataclass(frozen=True)
class Inject(Message):
    """Emulator only: start (or clear) an injected fault. Acknowledged."""

    TYPE: ClassVar[MsgType] = MsgType.INJECT
    kind: InjectKind
    value: float = 0.0
    duration_ms: int = 0
    """How long the fault lasts; 0 = until CLEAR (DISCONNECT: value is the seconds closed)."""

    def pack(self) -> bytes:
        return _INJECT.pack(int(self.kind), self.value, self.duration_ms)

    @classmethod
    def unpack(cls, payload: bytes) -> Inject:
        _need_size(cls, payload, _INJECT.size)
        kind, value, duration = _INJECT.unpack(payload)
        try:
            return cls(InjectKind(kind), value, duration)
        except ValueError:
            raise ProtocolError("unsupported", f"INJECT: unknown fault kind {kind}") from None


MESSAGES: dict[int, type[Message]] = {cls.TYPE: cls for cls in (
    Hello, Info, Config, Enable, Disable, Setpoint, State, Estop, Reset, GetStatus, Status, FaultReport,
    Ack, NackMsg, Inject)}


def decode_message(packet: Packet) -> Message:
    """The message a packet carries; a ProtocolError for an unknown type or a malformed payload."""
    cls = MESSAGES.get(packet.type)
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type 0x{packet.type:02x}")
    return cls.unpack(packet.payload)


def joint_names_hash(names: Sequence[str]) -> int:
    """CRC-32C of the joint names joined by newlines (UTF-8): INFO's `names_hash`."""
    return crc32c("\n".join(names).encode())


# --------------------------------------------------------------------------------------------------
# State layout


class StateLayout:
    """Where each field and each joint's position and velocity lie in a STATE's `values`.

    Built by both ends from the device's INFO and the CONFIG field mask, so they agree on the layout
    without sending it again. Fields the joint map points into are always included.
    """

    def __init__(self, info: Info, field_mask: int) -> None:
        mask = field_mask
        for j in info.joints:
            mask |= (1 << j.position_field) | (1 << j.velocity_field)
        self.mask = mask & ((1 << len(info.fields)) - 1)
        self.fields: dict[str, slice] = {}
        offsets: dict[int, int] = {}
        start = 0
        for i, (name, size) in enumerate(info.fields):
            if self.mask & (1 << i):
                offsets[i] = start
                self.fields[name] = slice(start, start + size)
                start += size
        self.size = start
        """Elements (float32) of a STATE's values."""
        joints = info.joints
        self.joint_position_index = np.array([offsets[j.position_field] + j.position_index for j in joints],
                                             dtype=np.intp)
        self.joint_velocity_index = np.array([offsets[j.velocity_field] + j.velocity_index for j in joints],
                                             dtype=np.intp)

    @staticmethod
    def mask_for(info: Info, names: Sequence[str]) -> int:
        """The field mask that selects `names` (each must be one of INFO's fields)."""
        index = {name: i for i, (name, _) in enumerate(info.fields)}
        return sum(1 << index[n] for n in set(names))

    def split(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """Named fields (float64 copies) from a STATE's values."""
        v = np.asarray(values, dtype=np.float64)
        return {name: v[s] for name, s in self.fields.items()}


# --------------------------------------------------------------------------------------------------
# helpers


def _need_size(cls: type[Message], payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise ProtocolError("bad_payload", f"{cls.TYPE.name} payload has {len(payload)} bytes; "
                                           f"expected {size}")


def _str8(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"string {text[:20]!r}... is longer than 255 bytes")
    return bytes([len(raw)]) + raw


def _read_str8(payload: bytes, at: int) -> tuple[str, int]:
    n = payload[at]
    end = at + 1 + n
    if end > len(payload):
        raise struct.error("string runs past the payload")
    return payload[at + 1:end].decode(), end


def _enum(cls: Any, value: int) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise ProtocolError("bad_payload", f"unknown {cls.__name__} code {value}") from None
