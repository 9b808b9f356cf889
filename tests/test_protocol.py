"""The serial wire protocol: CRC-32C and COBS against published vectors, the worked example frame of
docs/serial-protocol.md, every message's round trip and refusals, and 10^5 frames with injected bit
flips, truncation and garbage over a real pseudo-terminal (pyserial on the host end)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import tty

import numpy as np
import pytest
import serial

from robot_rl.hardware import protocol as P
from robot_rl.hardware.emulator import FaultConfig, FaultInjector

# ---------------------------------------------------------------------------------------------- CRC


def test_crc32c_check_value_and_rfc3720_vectors():
    assert P.crc32c(b"123456789") == 0xE3069283  # the CRC catalogue's check value
    # RFC 3720 (iSCSI), appendix B.4
    assert P.crc32c(bytes(32)) == 0x8A9136AA
    assert P.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert P.crc32c(bytes(range(32))) == 0x46DD794E
    assert P.crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


def test_crc32c_continues_across_pieces():
    data = bytes(range(200))
    assert P.crc32c(data[77:], P.crc32c(data[:77])) == P.crc32c(data)


def _crc32c_bitwise(data: bytes) -> int:
    """Independent bit-at-a-time CRC-32C (the form in docs/serial-protocol.md)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_table_equals_bitwise_form():
    rng = random.Random(1)
    for n in (0, 1, 7, 64, 300):
        data = rng.randbytes(n)
        assert P.crc32c(data) == _crc32c_bitwise(data)


# --------------------------------------------------------------------------------------------- COBS

# Wikipedia's COBS examples (the encoded form without the trailing delimiter).
COBS_EXAMPLES = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize("raw, encoded", COBS_EXAMPLES)
def test_cobs_examples(raw, encoded):
    assert P.cobs_encode(raw) == encoded
    assert P.cobs_decode(encoded) == raw


def test_cobs_round_trip_has_no_zero_and_bounded_overhead():
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randrange(0, 1200)
        raw = bytes(rng.choice((0, 0, 1, 0xFF, rng.randrange(256))) for _ in range(n))
        enc = P.cobs_encode(raw)
        assert 0 not in enc
        assert len(enc) <= n + n // 254 + 1
        assert P.cobs_decode(enc) == raw


@pytest.mark.parametrize("bad", [b"\x05\x11\x22", b"\x00\x11", b"\x03\x11\x00"])
def test_cobs_rejects_invalid_encodings(bad):
    with pytest.raises(P.ProtocolError) as err:
        P.cobs_decode(bad)
    assert err.value.kind == "bad_cobs"


# ------------------------------------------------------------------------------- the worked example

# docs/serial-protocol.md, "A worked example": SETPOINT seq 7 at 1000 µs, torque 0.5 on one joint,
# computed from STATE seq 6 sampled at 960 µs.
EXAMPLE_PACKET = bytes.fromhex("01 06 07 00 e8 03 00 00 00 01 06 00 c0 03 00 00 00 00 00 3f 2b 5e 0d 04")
EXAMPLE_FRAME = bytes.fromhex("00 04 01 06 07 03 e8 03 01 01 03 01 06 03 c0 03 01 01 01 01 06 3f 2b 5e 0d 04"
                              " 00")


def test_worked_example_frame_byte_by_byte():
    msg = P.Setpoint(P.CommandKind.TORQUE, state_seq=6, state_time_us=960, values=np.array([0.5]))
    assert P.pack_packet(P.MsgType.SETPOINT, 7, 1000, msg.pack()) == EXAMPLE_PACKET
    assert _crc32c_bitwise(EXAMPLE_PACKET[:-4]) == int.from_bytes(EXAMPLE_PACKET[-4:], "little") == 0x040D5E2B
    assert P.encode_frame(P.MsgType.SETPOINT, 7, 1000, msg.pack()) == EXAMPLE_FRAME
    packet = P.decode_frame(EXAMPLE_FRAME[1:-1])
    assert (packet.version, packet.type, packet.seq, packet.timestamp_us) == (1, 6, 7, 1000)
    decoded = P.decode_message(packet)
    assert (decoded.kind, decoded.state_seq, decoded.state_time_us) == (P.CommandKind.TORQUE, 6, 960)
    assert decoded.values.tolist() == [0.5]


def test_docs_carry_the_worked_example():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "serial-protocol.md").read_text()
    assert EXAMPLE_FRAME.hex(" ") in doc
    assert "0xE3069283" in doc and "0x82F63B78" in doc


# -------------------------------------------------------------------------------------- messages

INFO = P.Info(
    req_seq=41, protocol_version=1, firmware_rate_hz=1000,
    command_kinds=(P.CommandKind.TORQUE, P.CommandKind.POSITION), device_name="test rig",
    joints=(P.JointInfo("hip", 0, 3, 1, 3, (-1.0, 0.5), (-2.0, 2.0)),
            P.JointInfo("knee", 0, 4, 1, 4, (-np.inf, np.inf), (-1.0, 1.0))),
    fields=(("qpos", 6), ("qvel", 6), ("cfrc_ext", 24)))

MESSAGES = [
    P.Hello(), P.Enable(), P.Disable(), P.Estop(), P.Reset(), P.GetStatus(), INFO,
    P.Config(40_000, 120_000, P.SafeMode.HOLD, P.CommandKind.POSITION, 0b101),
    P.Ack(P.MsgType.CONFIG, 65535), P.NackMsg(P.MsgType.ENABLE, 3, P.Nack.NOT_CONFIGURED),
    P.FaultReport(P.Fault.JOINT_LIMIT, 1, -1.25), P.Inject(P.InjectKind.DROP, 0.25, 300),
    P.Status(9, P.Flags.ENABLED | P.Flags.LIMIT, P.Fault.WATCHDOG, dict.fromkeys(P.STATUS_COUNTERS, 7)),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_message_round_trip(msg):
    frame = P.encode_frame(msg.TYPE, 300, 123456, msg.pack())
    back = P.decode_message(P.decode_frame(frame[1:-1]))
    assert back == msg
    if isinstance(msg, P.Status):
        assert back.counters == msg.counters


def test_streamed_messages_round_trip_values():
    values = np.array([0.25, -1.5, 3.0e-3], dtype=np.float32)
    sp = P.decode_message(P.decode_frame(P.encode_frame(
        P.MsgType.SETPOINT, 1, 2, P.Setpoint(P.CommandKind.VELOCITY, 65535, 2**32 - 1, values).pack())[1:-1]))
    assert (sp.kind, sp.state_seq, sp.state_time_us) == (P.CommandKind.VELOCITY, 65535, 2**32 - 1)
    np.testing.assert_array_equal(sp.values, values)
    st = P.decode_message(P.decode_frame(P.encode_frame(
        P.MsgType.STATE, 1, 2, P.State(P.Flags.ENABLED | P.Flags.SAFE, 17, values).pack())[1:-1]))
    assert st.flags == P.Flags.ENABLED | P.Flags.SAFE and st.setpoint_seq == 17
    np.testing.assert_array_equal(st.values, values)


def test_names_hash_is_crc_of_newline_joined_names():
    assert INFO.names_hash == P.crc32c(b"hip\nknee")
    assert INFO.joint_names == ("hip", "knee")


@pytest.mark.parametrize("msg_type, payload", [
    (P.MsgType.ENABLE, b"\x00"),
    (P.MsgType.CONFIG, bytes(13)),
    (P.MsgType.SETPOINT, bytes([0, 2, 0, 0, 0, 0, 0, 0]) + bytes(4)),  # says 2 values, has 1
    (P.MsgType.STATE, bytes(5)),
    (P.MsgType.ACK, bytes(4)),
    (P.MsgType.INFO, INFO.pack()[:-3]),
    (P.MsgType.INFO, INFO.pack() + b"\x00"),
])
def test_malformed_payloads_are_refused(msg_type, payload):
    with pytest.raises(P.ProtocolError) as err:
        P.decode_message(P.Packet(1, msg_type, 0, 0, payload))
    assert err.value.kind == "bad_payload"


@pytest.mark.parametrize("msg_type, payload", [
    (P.MsgType.CONFIG, bytes(4) + bytes(4) + b"\x07" + bytes(5)),  # safe mode 7 does not exist
    (P.MsgType.CONFIG, bytes(4) + bytes(4) + b"\x00\x03" + bytes(4)),  # command kind 3 does not exist
    (P.MsgType.INJECT, b"\x63" + bytes(8)),  # fault kind 99 does not exist
])
def test_unknown_kinds_in_a_well_formed_request_are_unsupported(msg_type, payload):
    """Protocol point 9/13: the table says UNSUPPORTED for a kind the device does not take."""
    with pytest.raises(P.ProtocolError) as err:
        P.decode_message(P.Packet(1, msg_type, 0, 0, payload))
    assert err.value.kind == "unsupported"


def test_info_joint_map_must_point_into_a_field():
    bad = P.Info(0, 1, 1000, (P.CommandKind.TORQUE,), "x", (P.JointInfo("j", 0, 6, 1, 0, (0, 1), (0, 1)),),
                 (("qpos", 6), ("qvel", 6)))
    with pytest.raises(P.ProtocolError, match="joint 'j' maps to field 0 element 6"):
        P.Info.unpack(bad.pack())


def test_unknown_type_and_short_and_bad_crc_frames():
    with pytest.raises(P.ProtocolError) as err:
        P.decode_message(P.Packet(1, 0x55, 0, 0, b""))
    assert err.value.kind == "unknown_type"
    with pytest.raises(P.ProtocolError) as err:
        P.decode_frame(P.cobs_encode(bytes(range(1, 10))))
    assert err.value.kind == "bad_length"
    frame = bytearray(P.encode_frame(P.MsgType.HELLO, 1, 2)[1:-1])
    frame[3] ^= 0x10
    with pytest.raises(P.ProtocolError) as err:
        P.decode_frame(bytes(frame))
    assert err.value.kind in ("bad_crc", "bad_cobs")


def test_sequence_gaps_and_wrapping_counters():
    assert P.seq_gap(5, 6) == 0
    assert P.seq_gap(5, 9) == 3
    assert P.seq_gap(65535, 0) == 0
    assert P.seq_gap(65534, 2) == 3
    assert P.seq_gap(9, 9) == 0 and P.seq_gap(9, 8) == 0  # a repeat or a late packet is not a gap
    seq = P.WrapCounter(16)
    assert [seq.update(v) for v in (65534, 65535, 0, 3, 2)] == [65534, 65535, 65536, 65539, 65538]
    clock = P.WrapCounter(32)
    assert clock.update(2**32 - 10) == 2**32 - 10 and clock.update(5) == 2**32 + 5


def test_state_layout_cuts_fields_and_joints():
    layout = P.StateLayout(INFO, P.StateLayout.mask_for(INFO, ["cfrc_ext"]))
    assert layout.mask == 0b111  # qpos and qvel always: the joint map points into them
    assert layout.size == 36
    values = np.arange(36, dtype=np.float32)
    fields = layout.split(values)
    np.testing.assert_array_equal(fields["qvel"], np.arange(6, 12))
    np.testing.assert_array_equal(values[layout.joint_position_index], [3, 4])
    np.testing.assert_array_equal(values[layout.joint_velocity_index], [9, 10])
    small = P.StateLayout(INFO, 0)
    assert small.size == 12 and "cfrc_ext" not in small.fields


# ------------------------------------------------------------------------------------- the decoder


def test_decoder_reassembles_frames_fed_byte_by_byte():
    frames = [P.encode_frame(P.MsgType.STATE, i, 1000 * i, P.State(P.Flags(0), i, np.full(5, i)).pack())
              for i in range(20)]
    decoder = P.FrameDecoder()
    got = []
    for byte in b"".join(frames):
        got += decoder.feed(bytes([byte]))
    assert [p.seq for p in got] == list(range(20))
    assert decoder.counters == {"frames_ok": 20, "bad_cobs": 0, "bad_length": 0, "bad_crc": 0}


def test_decoder_discards_an_over_long_run_and_resynchronises():
    decoder = P.FrameDecoder()
    good = P.encode_frame(P.MsgType.HELLO, 1, 0)
    assert decoder.feed(b"\x07" * (P.MAX_FRAME + 10)) == []
    assert decoder.feed(b"\x07" * 50) == []
    got = decoder.feed(b"\x07\x00" + good)
    assert [p.seq for p in got] == [1]
    assert decoder.counters["bad_length"] == 1


# ---------------------------------------------------------------- 10^5 damaged frames over a real tty


def _pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def test_100k_frames_with_bit_flips_truncation_and_garbage_over_a_pty():
    """Every undamaged frame arrives intact and in order; no damaged frame is accepted; a damaged
    frame costs itself only (at most one frame lost per corruption)."""
    n = 100_000
    injector = FaultInjector(FaultConfig(corrupt=0.03, truncate=0.02, garbage=0.03), seed=7)
    rng = np.random.default_rng(3)
    master, slave, path = _pty_pair()
    port = serial.Serial(path, timeout=0.5)
    sent: list[tuple[int, bytes]] = []
    damaged: set[int] = set()
    wire = bytearray()
    for i in range(n):
        payload = P.State(P.Flags.ENABLED, i & 0xFFFF, rng.standard_normal(12).astype(np.float32)).pack()
        frame = P.encode_frame(P.MsgType.STATE, i & 0xFFFF, i * 2000, payload)
        before = dict(injector.counts)
        out = injector.apply(frame)
        if any(injector.counts[k] != before[k] for k in ("corrupted", "truncated")):
            damaged.add(i)  # a bit flip or a cut inside the frame or its delimiters
        sent.append((i, payload))
        wire += out
    assert 2000 < len(damaged) < 6000 and injector.counts["garbage"] > 2000

    def write() -> None:
        view = memoryview(wire)
        while view:
            written = os.write(master, view[:4096])
            view = view[written:]

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    decoder = P.FrameDecoder()
    received: list[P.Packet] = []
    expected = n - len(damaged)
    try:
        while len(received) < expected:
            data = port.read(port.in_waiting or 1)
            if not data:
                break  # 0.5 s of silence: nothing more is coming
            received += decoder.feed(data)
        received += decoder.feed(port.read(port.in_waiting) + b"\x00")
    finally:
        writer.join(timeout=10)
        port.close()
        os.close(master)
        os.close(slave)
    intact = [(i, payload) for i, payload in sent if i not in damaged]
    assert [(p.timestamp_us // 2000, p.payload) for p in received] == intact
    lost = n - len(received)
    assert lost == len(damaged)
    c = decoder.counters
    assert c["frames_ok"] == len(received)
    assert c["bad_crc"] + c["bad_cobs"] + c["bad_length"] >= len(damaged)


# ------------------------------------------------------------------------------- import hygiene


def test_serial_path_imports_without_mujoco_or_torch():
    code = ("import sys\n"
            "import robot_rl.hardware.serial_robot, robot_rl.hardware.serial_link\n"
            "import robot_rl.hardware.protocol, robot_rl.hardware.hil, robot_rl.hardware.safety\n"
            "import robot_rl.hardware.control_loop, robot_rl.commands.emulate, robot_rl.cli\n"
            "robot_rl.cli.build_parser()\n"
            "bad = [m for m in ('mujoco', 'torch', 'gymnasium', 'dm_control') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
