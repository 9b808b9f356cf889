"""The JointState CDR reader against rclpy's own serialization: the same names, arrays and stamp for
random messages; a layout it does not read (big-endian, too short) is left to the ordinary path."""

from __future__ import annotations

import array

import numpy as np
import pytest

from robot_rl.hardware.joint_state_cdr import JointStateReader

serialization = pytest.importorskip("rclpy.serialization")
JointState = pytest.importorskip("sensor_msgs.msg").JointState


def random_message(rng: np.random.Generator) -> JointState:
    n = int(rng.integers(0, 6))
    msg = JointState(name=[f"{'j' * int(rng.integers(1, 9))}{i}" for i in range(n)])
    msg.header.frame_id = "f" * int(rng.integers(0, 7))
    msg.header.stamp.sec = int(rng.integers(0, 2**31 - 1))
    msg.header.stamp.nanosec = int(rng.integers(0, 10**9))
    sizes = [n if rng.random() < 0.7 else int(rng.integers(0, 6)) for _ in range(3)]  # some mismatched
    msg.position, msg.velocity, msg.effort = (array.array("d", rng.normal(size=k).tobytes()) for k in sizes)
    return msg


def test_reads_what_rclpy_serialized() -> None:
    reader, rng = JointStateReader(), np.random.default_rng(0)
    for _ in range(1000):
        msg = random_message(rng)
        names, position, velocity, stamp = reader.read(serialization.serialize_message(msg))
        assert names == list(msg.name)
        assert position.tolist() == list(msg.position) and velocity.tolist() == list(msg.velocity)
        assert stamp == pytest.approx(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, abs=1e-6)


def test_a_stream_with_the_same_names_reuses_the_layout_and_still_reads_new_values() -> None:
    reader = JointStateReader()
    msg = JointState(name=["a", "b"], position=[1.0, 2.0], velocity=[3.0, 4.0])
    first = reader.read(serialization.serialize_message(msg))
    msg.position, msg.velocity = array.array("d", [5.0, 6.0]), array.array("d", [7.0, 8.0])
    names, position, velocity, _ = reader.read(serialization.serialize_message(msg))
    assert names is first[0]  # the cached name list
    assert position.tolist() == [5.0, 6.0] and velocity.tolist() == [7.0, 8.0]
    msg.name = ["a", "c"]  # new names: read afresh
    assert reader.read(serialization.serialize_message(msg))[0] == ["a", "c"]


def test_what_it_does_not_read_is_left_to_the_ordinary_path() -> None:
    reader = JointStateReader()
    raw = serialization.serialize_message(JointState(name=["a", "b"], position=[1.0, 2.0],
                                                     velocity=[3.0, 4.0], effort=[5.0, 6.0]))
    assert reader.read(b"\x00\x00" + raw[2:]) is None  # big-endian encapsulation
    for cut in (10, 20, len(raw) - 28):  # inside the header, the names, the velocities
        assert reader.read(raw[:cut]) is None
    assert reader.read(raw[:len(raw) - 24]) is not None  # only effort cut: not read, so not needed
