"""Test helpers: the emulator in a thread of the test process, and a raw host that writes any frame a
host can send (any type, version, length, sequence number) through pyserial on the real pty and
collects every packet the device sends back. No mocks: the bytes cross a real pseudo-terminal."""

from __future__ import annotations

import struct
import threading
import time

import serial

from robot_rl.hardware import protocol as P
from robot_rl.hardware.emulator import Emulator, MujocoPlant

TASK = "InvertedPendulum-v5"


class EmulatorThread:
    """An emulator serving in a background thread; `alive` is False if `serve()` raised."""

    def __init__(self, link: str, **kwargs) -> None:
        self.emulator = Emulator(MujocoPlant(TASK, seed=0, physics_dt=kwargs.pop("physics_dt", 0.002)),
                                 link=link, **kwargs)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.emulator.wait_ready(10)
        self.link = link

    def _serve(self) -> None:
        try:
            self.emulator.serve()
        except BaseException as err:  # recorded for the test to see
            self.error = err
            raise

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and self.error is None

    def stop(self) -> None:
        self.emulator.stop()
        self.thread.join(5)


class RawHost:
    """Writes crafted frames and reads the device's packets (decoded header + payload)."""

    def __init__(self, port: str) -> None:
        self.serial = serial.Serial(port, timeout=0.01, exclusive=True)
        self.serial.reset_input_buffer()
        self.decoder = P.FrameDecoder()
        self.seq = 0
        self.backlog: list[P.Packet] = []
        """Packets `answer` passed over (FAULTs, STATEs): `read` returns them first."""

    def close(self) -> None:
        self.serial.close()

    def write(self, msg_type: int, payload: bytes = b"", *, version: int = P.PROTOCOL_VERSION,
              seq: int | None = None) -> int:
        """One frame, CRC correct; returns the sequence number used (the next one unless `seq`)."""
        seq = self.seq if seq is None else seq
        self.seq = (seq + 1) & 0xFFFF
        self.serial.write(P.encode_frame(msg_type, seq, 0, payload, version))
        return seq

    def write_bytes(self, data: bytes) -> None:
        self.serial.write(data)

    def read(self, seconds: float) -> list[P.Packet]:
        """Every packet the device sent within `seconds`."""
        out, self.backlog = self.backlog, []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out += self.decoder.feed(self.serial.read(4096))
        return out

    def answer(self, seq: int, timeout: float = 1.0) -> P.Packet | None:
        """The device's answer (INFO, STATUS, ACK, NACK) to the request sent with `seq`, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for packet in self.decoder.feed(self.serial.read(4096)):
                if answers(packet, seq):
                    return packet
                self.backlog.append(packet)
        return None

    def request(self, msg_type: int, payload: bytes = b"", **kwargs) -> P.Packet | None:
        return self.answer(self.write(msg_type, payload, **kwargs))

    def message(self, msg: P.Message) -> P.Message:
        """Send a well-formed request and decode its answer (AssertionError if none)."""
        packet = self.request(msg.TYPE, msg.pack())
        assert packet is not None, f"no answer to {msg.TYPE.name}"
        return P.decode_message(packet)

    def status(self) -> P.Status:
        reply = self.message(P.GetStatus())
        assert isinstance(reply, P.Status)
        return reply


def answers(packet: P.Packet, seq: int) -> bool:
    """Whether `packet` is an answer carrying request sequence number `seq`."""
    if packet.type in (P.MsgType.INFO, P.MsgType.STATUS) and len(packet.payload) >= 2:
        return struct.unpack_from("<H", packet.payload)[0] == seq
    if packet.type in (P.MsgType.ACK, P.MsgType.NACK) and len(packet.payload) >= 3:
        return struct.unpack_from("<H", packet.payload, 1)[0] == seq
    return False


def faults(packets: list[P.Packet]) -> list[P.FaultReport]:
    return [P.FaultReport.unpack(p.payload) for p in packets if p.type == P.MsgType.FAULT]


def states(packets: list[P.Packet]) -> list[P.State]:
    return [P.State.unpack(p.payload) for p in packets if p.type == P.MsgType.STATE]
