"""A host written from docs/serial-protocol.md alone, against the emulator over a real pty.

Nothing here imports the project's protocol or host code: the CRC, COBS, packet layout, INFO parsing
and the session come from the document's tables. If the document and the emulator drift apart, this
host stops working. It also checks the rules issue 12 added: SAFE during an e-stop, ENABLED kept
after a watchdog trip, GET_STATUS before CONFIG, one SETPOINT per period, and STATUS's layout.
"""

from __future__ import annotations

import struct
import time

import pytest
import serial
from emulator_host import EmulatorThread


# ---- section 3: CRC-32C, bit by bit as the document's C function
def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


# ---- section 2: COBS
def cobs_encode(data: bytes) -> bytes:
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block = bytearray()
    return bytes(out + bytes([len(block) + 1]) + block)


def cobs_decode(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        n = data[i]
        out += data[i + 1:i + n]
        i += n
        if n < 255 and i < len(data):
            out.append(0)
    return bytes(out)


HELLO, INFO, CONFIG, ENABLE, DISABLE, SETPOINT, STATE, ESTOP, RESET, GET_STATUS, STATUS, FAULT, ACK, NACK = \
    range(1, 15)
CONFIGURED, ENABLED, SAFE, ESTOPPED, LIMIT, WATCHDOG = 1, 2, 4, 8, 16, 32


class DocHost:
    def __init__(self, port: str) -> None:
        self.port = serial.Serial(port, timeout=0.01)
        self.port.reset_input_buffer()
        self.seq, self.buffer, self.t0 = 0, b"", time.monotonic()
        self.states: list[tuple[int, int, int, tuple[float, ...]]] = []  # seq, time, flags, values

    def send(self, msg_type: int, payload: bytes = b"") -> int:
        seq, self.seq = self.seq, (self.seq + 1) & 0xFFFF
        stamp = int((time.monotonic() - self.t0) * 1e6) & 0xFFFFFFFF
        body = struct.pack("<BBHI", 1, msg_type, seq, stamp) + payload
        self.port.write(b"\x00" + cobs_encode(body + struct.pack("<I", crc32c(body))) + b"\x00")
        return seq

    def packets(self) -> list[tuple[int, int, int, bytes]]:
        self.buffer += self.port.read(4096)
        *frames, self.buffer = self.buffer.split(b"\x00")
        out = []
        for frame in frames:
            raw = cobs_decode(frame) if frame else b""
            if len(raw) < 12 or crc32c(raw[:-4]) != struct.unpack_from("<I", raw, len(raw) - 4)[0]:
                continue
            version, msg_type, seq, stamp = struct.unpack_from("<BBHI", raw)
            if version != 1:
                continue
            payload = raw[8:-4]
            if msg_type == STATE:
                flags, _ = struct.unpack_from("<BH", payload)
                values = struct.unpack_from(f"<{(len(payload) - 3) // 4}f", payload, 3)
                self.states.append((seq, stamp, flags, values))
            out.append((msg_type, seq, stamp, payload))
        return out

    def request(self, msg_type: int, payload: bytes = b"") -> tuple[int, bytes]:
        """Section 7: 100 ms, resend up to 3 times; an answer to any try counts."""
        tries = []
        for _ in range(4):
            tries.append(self.send(msg_type, payload))
            deadline = time.monotonic() + 0.1
            while time.monotonic() < deadline:
                for kind, _, _, body in self.packets():
                    if kind in (INFO, STATUS) and struct.unpack_from("<H", body)[0] in tries:
                        return kind, body
                    answered = kind in (ACK, NACK) and body[0] == msg_type
                    if answered and struct.unpack_from("<H", body, 1)[0] in tries:
                        return kind, body
        raise AssertionError(f"no answer to type {msg_type}")

    def status(self) -> tuple[int, dict[str, int]]:
        kind, body = self.request(GET_STATUS)
        assert kind == STATUS and len(body) == 64
        _, flags, _, *counters = struct.unpack("<HBB15I", body)
        names = ("frames_ok", "bad_crc", "bad_framing", "seq_gaps", "setpoints", "setpoints_rejected",
                 "watchdog_trips", "limit_hits", "latency_count")
        return flags, dict(zip(names, counters, strict=False))


def parse_info(body: bytes) -> dict:
    _, version, rate, kinds, n_joints, n_fields, _ = struct.unpack_from("<HBHBBBI", body)
    at = 12
    name = body[at + 1:at + 1 + body[at]].decode()
    at += 1 + body[at]
    joints = []
    for _ in range(n_joints):
        jname = body[at + 1:at + 1 + body[at]].decode()
        at += 1 + body[at]
        joints.append((jname, *struct.unpack_from("<BHBHffff", body, at)))
        at += 22
    fields = []
    for _ in range(n_fields):
        fname = body[at + 1:at + 1 + body[at]].decode()
        at += 1 + body[at]
        fields.append((fname, struct.unpack_from("<H", body, at)[0]))
        at += 2
    assert at == len(body)
    return {"version": version, "rate": rate, "kinds": kinds, "name": name, "joints": joints,
            "fields": fields}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    dev = EmulatorThread(str(tmp_path_factory.mktemp("doc") / "tty"))
    h = DocHost(dev.link)
    yield h
    h.port.close()
    dev.stop()


def test_a_session_from_the_document(host):
    kind, body = host.request(HELLO)
    info = parse_info(body)
    assert kind == INFO and info["version"] == 1 and info["joints"][0][0] == "slider"
    assert info["name"].endswith("InvertedPendulum-v5")  # section 6: the task, for the policy's period
    flags, _ = host.status()  # section 7: refuse a device an earlier host left ENABLED or ESTOPPED
    assert not flags & (ENABLED | ESTOPPED)
    tick_us = 10 ** 6 // info["rate"]
    period_us = 40_000  # the pendulum policy's period, a whole number of ticks
    assert period_us % tick_us == 0
    assert host.request(CONFIG, struct.pack("<IIBBI", period_us, 200_000, 0, 0, 0))[0] == ACK
    assert host.request(ENABLE)[0] == ACK
    host.states.clear()
    next_deadline = time.monotonic()
    sent = 0
    while sent < 20:  # one SETPOINT per period, on the host's clock, from the latest STATE
        host.packets()
        if time.monotonic() >= next_deadline and host.states:
            seq, stamp, flags, _ = host.states[-1]
            host.send(SETPOINT, struct.pack("<BBHIf", 0, 1, seq, stamp, 0.0))
            sent += 1
            next_deadline += period_us * 1e-6
    flags, counters = host.status()
    assert flags & (CONFIGURED | ENABLED) == CONFIGURED | ENABLED and not flags & (SAFE | WATCHDOG)
    assert counters["setpoints"] >= 20 and counters["setpoints_rejected"] == 0
    assert 0 < counters["latency_count"] <= counters["setpoints"]  # one sample per tick at most
    time.sleep(0.4)  # silence: the 200 ms watchdog trips
    flags, _ = host.status()
    assert flags & (ENABLED | SAFE | WATCHDOG) == ENABLED | SAFE | WATCHDOG  # the table in section 4
    assert host.request(DISABLE)[0] == ACK
    assert host.request(ESTOP)[0] == ACK
    flags, _ = host.status()
    assert flags & (ESTOPPED | SAFE) == ESTOPPED | SAFE and not flags & ENABLED
    assert host.request(CONFIG, struct.pack("<IIBBI", period_us, 200_000, 0, 0, 0))[0] == NACK
    assert host.request(RESET)[0] == ACK
    assert host.status()[0] == 0
