"""What any host can send to the emulator, and the places docs/serial-protocol.md had left open
(issue 12, points 1-14), each held against the emulator over a real pseudo-terminal (no mocks).

The emulator runs in a thread of this process; a raw host (tests/emulator_host.py) writes crafted
frames through pyserial and reads every packet the device sends back.
"""

from __future__ import annotations

import math
import os
import random
import struct
import time

import numpy as np
import pytest
from emulator_host import TASK, EmulatorThread, RawHost, faults, states

from robot_rl.errors import ConfigError
from robot_rl.hardware import protocol as P
from robot_rl.hardware.emulator import Emulator, MujocoPlant, parse_faults
from robot_rl.hardware.robot import HardwareError
from robot_rl.hardware.serial_link import SerialLink

CONFIG_40MS = P.Config(40_000, 200_000, P.SafeMode.DAMPING, P.CommandKind.TORQUE, 0)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    dev = EmulatorThread(str(tmp_path_factory.mktemp("tty") / "device"))
    yield dev
    dev.stop()


@pytest.fixture
def host(device):
    h = RawHost(device.link)
    h.message(P.Inject(P.InjectKind.CLEAR))
    h.message(P.Reset())
    h.read(0.05)  # and forget what came before
    yield h
    h.close()
    assert device.alive, f"the emulator died: {device.error!r}"


def _setpoint(values, kind=P.CommandKind.TORQUE, count=None) -> bytes:
    values = np.asarray(values, dtype="<f4")
    count = values.size if count is None else count
    return struct.pack("<BBHI", int(kind), count, 0, 0) + values.tobytes()


# ---------------------------------------------------------------------------------- hostile input


def test_the_nan_reset_plant_inject_is_refused_not_a_crash(host, device):
    """The frame that crashed the emulator: a valid INJECT RESET_PLANT whose value is NaN."""
    for value in (math.nan, math.inf, -1.0, 0.5, 2.0 ** 33):
        reply = host.message(P.Inject(P.InjectKind.RESET_PLANT, value))
        assert isinstance(reply, P.NackMsg) and reply.reason == P.Nack.BAD_PAYLOAD, value
    for kind, value in ((P.InjectKind.DELAY, math.nan), (P.InjectKind.DELAY, math.inf),
                        (P.InjectKind.DELAY, -0.1), (P.InjectKind.DROP, 1.5), (P.InjectKind.DROP, math.nan),
                        (P.InjectKind.DISCONNECT, math.nan), (P.InjectKind.MUTE, 0.5)):
        reply = host.message(P.Inject(kind, value))
        assert isinstance(reply, P.NackMsg) and reply.reason == P.Nack.BAD_PAYLOAD, (kind, value)
    assert isinstance(host.message(P.Inject(P.InjectKind.RESET_PLANT, 3.0)), P.Ack)
    assert isinstance(host.message(P.Hello()), P.Info)  # still answering
    assert device.alive


def test_every_frame_a_host_can_send_is_answered_or_counted(host, device):
    """Every message type, with payloads of many lengths (random bytes, NaN floats): each request is
    answered with its seq (INFO, STATUS, ACK or NACK); SETPOINTs are counted; the device survives."""
    rng = random.Random(12)
    nan = struct.pack("<f", math.nan)
    unanswered = []
    for msg_type in range(256):
        if msg_type in (P.MsgType.INJECT, P.MsgType.SETPOINT):
            continue  # INJECT: a valid MUTE or DISCONNECT would silence the device; SETPOINT below
        for length in (0, 1, 3, 9, 14, 40):
            payload = rng.randbytes(length) if length != 9 else bytes([rng.randrange(256)]) + nan + bytes(4)
            seq = host.write(msg_type, payload)
            if host.answer(seq, timeout=0.5) is None:
                unanswered.append((msg_type, length))
        host.message(P.Reset())  # whatever a CONFIG or ESTOP did
    assert unanswered == []
    before = host.status().counters
    for payload in (b"", b"\x00", _setpoint([math.nan]), _setpoint([1.0], count=3), _setpoint([1.0, 2.0]),
                    _setpoint([1.0], kind=7), rng.randbytes(200)):
        host.write(P.MsgType.SETPOINT, payload)
    time.sleep(0.1)
    after = host.status().counters
    assert after["setpoints"] - before["setpoints"] == 7
    assert after["setpoints_rejected"] - before["setpoints_rejected"] == 7
    for payload in (struct.pack("<BfI", 99, 0.0, 0), struct.pack("<BfI", 8, math.nan, 5)):
        assert host.request(P.MsgType.INJECT, payload) is not None
    assert device.alive


def test_fault_flags_with_non_finite_values_are_usage_errors():
    for item in ("delay=nan", "delay=inf", "delay=-1", "disconnect=nan", "disconnect=1:nan",
                 "disconnect=inf", "disconnect=1:inf", "mute=maybe", "drop=nan", "corrupt=2"):
        with pytest.raises(ConfigError, match=r"fault"):
            parse_faults([item])
    assert parse_faults(["mute=off"]).mute is False and parse_faults(["mute"]).mute is True


def test_emulate_refuses_a_nan_fault_in_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "robot_rl.cli", "emulate", "--task", TASK, "--link",
                             str(tmp_path / "tty"), "--fault", "delay=nan"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not a finite number" in result.stderr
    assert not os.path.lexists(tmp_path / "tty")


# ---------------------------------------------------------------------------------- --link


def test_link_of_another_is_refused_and_taken_only_with_force(tmp_path):
    link = tmp_path / "tty"
    link.symlink_to("/dev/null")  # a user's link
    plant = MujocoPlant(TASK, seed=0, physics_dt=0.002)
    with pytest.raises(ConfigError, match="already exists"):
        Emulator(plant, link=str(link))
    assert os.readlink(link) == "/dev/null"
    first = EmulatorThread(str(link), force=True)
    try:
        assert os.readlink(link) == first.emulator.path
    finally:
        first.stop()
    assert not os.path.lexists(link)  # ours, still pointing at our pty: removed


def test_a_second_emulator_cannot_steal_the_link_and_a_forced_one_keeps_it(tmp_path):
    link = str(tmp_path / "tty")
    first = EmulatorThread(link)
    second = None
    try:
        with pytest.raises(ConfigError, match="another emulator may be serving it"):
            EmulatorThread(link)
        assert os.readlink(link) == first.emulator.path  # untouched
        second = EmulatorThread(link, force=True)
        assert os.readlink(link) == second.emulator.path
        first.stop()  # must not delete the second's link
        assert os.readlink(link) == second.emulator.path
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert not os.path.lexists(link)


def test_a_link_taken_over_during_a_disconnect_is_not_repointed(tmp_path):
    link = tmp_path / "tty"
    dev = EmulatorThread(str(link))
    try:
        dev.emulator.request_disconnect(0.3)
        deadline = time.monotonic() + 5
        while os.path.lexists(link) and time.monotonic() < deadline:  # the cable is pulled
            time.sleep(0.01)
        assert not os.path.lexists(link)
        link.symlink_to("/dev/null")  # someone else's now
        time.sleep(0.6)  # the emulator reopens its pty
        assert os.readlink(link) == "/dev/null"
    finally:
        dev.stop()
    assert os.readlink(link) == "/dev/null"  # and it is not removed on exit either


# ---------------------------------------------------------------------------------- protocol points


def test_p1_info_names_the_task_and_the_host_configs_its_policys_period(host):
    """The control period is the policy's (its bundle's manifest): 40 ms for the pendulum."""
    from robot_rl.policies import load

    info = host.message(P.Hello())
    assert info.device_name == f"robot_rl emulator: {TASK}"
    period_us = round(load("zoo:InvertedPendulum-v5_ppo").spec.control_period * 1e6)
    assert period_us == 40_000 and period_us % (10 ** 6 // info.firmware_rate_hz) == 0
    assert isinstance(host.message(dataclass_replace(CONFIG_40MS, control_period_us=period_us)), P.Ack)


def dataclass_replace(msg, **changes):
    import dataclasses

    return dataclasses.replace(msg, **changes)


def test_p2_an_answer_to_an_earlier_try_counts(device):
    """Answers arrive 150 ms late, after the 100 ms timeout: the first try's answer ends the wait."""
    with SerialLink(device.link, request_timeout=0.1, retries=3) as link:
        link.request(P.Inject(P.InjectKind.DELAY, 0.15))
        try:
            status = link.status()
            assert isinstance(status, P.Status) and link.counters["timeouts"] >= 1
        finally:
            link.request(P.Inject(P.InjectKind.CLEAR), timeout=0.5)


def test_p3_one_setpoint_per_period_on_the_hosts_clock_when_states_are_lost(device):
    """With half the device's frames lost, the reference host still sends one SETPOINT per control
    period (from the latest state it has, or the safe command): the watchdog never trips."""
    from robot_rl.hardware.control_loop import ControlLoop
    from robot_rl.hardware.serial_robot import SerialRobot
    from robot_rl.policies import load

    policy = load("zoo:InvertedPendulum-v5_ppo")
    robot = SerialRobot(policy.spec, device.link)
    robot.link.open()
    robot.link.request(P.Reset())
    loop = ControlLoop(robot, policy)
    robot.configure()
    robot.link.request(P.Inject(P.InjectKind.DROP, 0.5, 1500))
    try:
        stats = loop.run(steps=30, close=False)
        status = robot.link.status()
    finally:
        try:  # the DROP fault outlives the test otherwise (1.5 s): the next test's host would lose frames
            robot.link.request(P.Inject(P.InjectKind.CLEAR), timeout=0.5)
        finally:
            robot.close()
    assert stats.stop_reason == "steps"
    assert status.counters["watchdog_trips"] == 0
    assert status.counters["setpoints"] >= stats.steps  # the safe one at the end too


def test_p4_a_setpoint_of_the_wrong_length_is_a_bad_setpoint_fault_with_its_count(host):
    host.message(CONFIG_40MS)
    host.message(P.Enable())
    before = host.status().counters
    host.write(P.MsgType.SETPOINT, _setpoint([0.5], count=2))  # says 2 values, carries 1
    host.write(P.MsgType.SETPOINT, _setpoint([0.5, 0.5]))  # 2 values, the device has 1 joint
    got = [f for f in faults(host.read(0.2)) if f.code == P.Fault.BAD_SETPOINT]
    assert [f.value for f in got] == [2.0, 2.0]
    after = host.status().counters
    assert after["setpoints_rejected"] - before["setpoints_rejected"] == 2
    assert after["setpoints"] - before["setpoints"] == 2


def test_p5_a_setpoint_of_another_version_is_only_counted(host):
    host.message(CONFIG_40MS)
    host.message(P.Enable())
    before = host.status().counters
    host.write(P.MsgType.SETPOINT, _setpoint([0.5]), version=2)
    packets = host.read(0.2)
    assert [p for p in packets if p.type == P.MsgType.NACK] == []
    assert [f for f in faults(packets) if f.code == P.Fault.BAD_SETPOINT] == []
    after = host.status().counters
    assert after["setpoints_rejected"] - before["setpoints_rejected"] == 1


def test_p6_flags_in_estop_watchdog_and_disable(host):
    host.message(CONFIG_40MS)
    host.message(P.Enable())
    host.read(0.4)  # no setpoint: the 200 ms watchdog trips
    flags = host.status().flags
    assert flags == P.Flags.CONFIGURED | P.Flags.ENABLED | P.Flags.SAFE | P.Flags.WATCHDOG | (
        flags & P.Flags.LIMIT)
    host.message(P.Disable())
    flags = host.status().flags
    assert not flags & (P.Flags.ENABLED | P.Flags.SAFE) and flags & P.Flags.WATCHDOG
    host.message(P.Enable())
    host.message(P.Estop())
    flags = host.status().flags
    assert flags & P.Flags.ESTOPPED and flags & P.Flags.SAFE and not flags & P.Flags.ENABLED
    host.backlog.clear()  # STATEs from before the e-stop
    later = states(host.read(0.2))
    assert later and all(s.flags & P.Flags.SAFE for s in later)
    host.message(P.Disable())  # acknowledged, changes nothing: still e-stopped, still safe
    assert host.status().flags & (P.Flags.ESTOPPED | P.Flags.SAFE) == P.Flags.ESTOPPED | P.Flags.SAFE


def test_p7_setpoint_gap_is_a_fault_only_while_enabled(host):
    host.message(P.Hello())
    before = host.status().counters["seq_gaps"]
    seq = host.write(P.MsgType.GET_STATUS, seq=(host.seq + 5) & 0xFFFF)  # 5 host packets "lost"
    assert host.answer(seq) is not None
    assert faults(host.read(0.1)) == []
    assert host.status().counters["seq_gaps"] - before == 5
    host.message(CONFIG_40MS)
    host.message(P.Enable())
    host.write(P.MsgType.SETPOINT, _setpoint([0.0]), seq=(host.seq + 3) & 0xFFFF)
    got = [f for f in faults(host.read(0.1)) if f.code == P.Fault.SETPOINT_GAP]
    assert [f.value for f in got] == [3.0]


def test_p8_counters_survive_reset_hello_and_config_latency_restarts_at_config(host):
    host.message(CONFIG_40MS)
    host.message(P.Enable())
    for _ in range(5):
        last = states(host.read(0.045))
        if last:
            host.write(P.MsgType.SETPOINT, _setpoint([0.0]))
    counters = host.status().counters
    assert counters["setpoints"] > 0
    host.message(P.Reset())
    host.message(P.Hello())
    after = host.status().counters
    for key in ("frames_ok", "setpoints", "seq_gaps", "watchdog_trips"):
        assert after[key] >= counters[key], key
    host.message(CONFIG_40MS)
    assert host.status().counters["latency_count"] == 0


def test_p9_config_value_limits(host):
    for config, reason in ((dataclass_replace(CONFIG_40MS, watchdog_us=0), P.Nack.BAD_PAYLOAD),
                           (dataclass_replace(CONFIG_40MS, control_period_us=0), P.Nack.BAD_PAYLOAD),
                           (dataclass_replace(CONFIG_40MS, control_period_us=1500), P.Nack.BAD_PAYLOAD)):
        reply = host.message(config)
        assert isinstance(reply, P.NackMsg) and reply.reason == reason
    # command kind 3, safe mode 2: kinds the device does not have
    for safe_mode, kind in ((0, 3), (2, 0)):
        raw = struct.pack("<IIBBI", 40_000, 200_000, safe_mode, kind, 0)
        reply = P.decode_message(host.request(P.MsgType.CONFIG, raw))
        assert isinstance(reply, P.NackMsg) and reply.reason == P.Nack.UNSUPPORTED


def test_p10_an_over_long_packet_is_dropped_as_bad_length(host):
    before = host.status().counters["bad_framing"]
    body = P.HEADER.pack(1, P.MsgType.GET_STATUS, 500, 0) + bytes(2049 - 12)
    packet = body + P.CRC.pack(P.crc32c(body))
    assert len(packet) == 2049
    host.write_bytes(b"\x00" + P.cobs_encode(packet) + b"\x00")
    assert [p for p in host.read(0.2) if p.type != P.MsgType.STATE] == []  # no NACK
    assert host.status().counters["bad_framing"] - before == 1


def test_p11_the_tick_is_a_whole_number_of_microseconds():
    plant = MujocoPlant(TASK, seed=0, physics_dt=0.002)
    with pytest.raises(ConfigError, match="not a whole number of microseconds"):
        Emulator(plant, rate_hz=3000)
    for rate in (0.5, 1000.5, math.nan, 0):
        with pytest.raises(ConfigError, match="not a whole number in"):
            Emulator(plant, rate_hz=rate)
    assert Emulator(plant, rate_hz=500).tick_us == 2000


def test_p12_plant_frozen_until_the_first_enable_and_running_after_disable(host):
    host.message(P.Inject(P.InjectKind.RESET_PLANT, 1.0))
    host.message(CONFIG_40MS)
    frozen = [s.values for s in states(host.read(0.3))]
    assert len(frozen) >= 3 and all(np.array_equal(v, frozen[0]) for v in frozen)
    host.message(P.Enable())
    host.message(P.Disable())
    moving = [s.values for s in states(host.read(0.5))]
    assert len(moving) >= 3 and not np.array_equal(moving[0], moving[-1])  # the pole falls


def test_p13_inject_unknown_kind_and_duration_of_one_shot_kinds(host):
    reply = P.decode_message(host.request(P.MsgType.INJECT, struct.pack("<BfI", 42, 0.0, 0)))
    assert isinstance(reply, P.NackMsg) and reply.reason == P.Nack.UNSUPPORTED
    assert isinstance(host.message(P.Inject(P.InjectKind.RESET_PLANT, 2.0, 50)), P.Ack)  # duration ignored
    host.message(CONFIG_40MS)
    time.sleep(0.1)
    values = [s.values for s in states(host.read(0.2))]
    assert len(values) >= 2 and np.array_equal(values[0], values[-1])  # still reset and frozen
    assert isinstance(host.message(P.Inject(P.InjectKind.DROP, 1.0, 100)), P.Ack)
    time.sleep(0.2)  # expired
    assert host.status() is not None


def test_p14_host_refuses_an_invalid_info_and_ignores_other_versions(tmp_path):
    """The test is the device here: a raw pty that answers HELLO with an INFO whose joint map points
    outside its only field, after a STATE of another version."""
    import threading
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    joint = P.JointInfo("slider", 5, 0, 0, 0, (-1.0, 1.0), (-3.0, 3.0))  # field 5 does not exist
    stop = threading.Event()

    def device() -> None:
        decoder = P.FrameDecoder()
        while not stop.is_set():
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            for packet in decoder.feed(data):
                if packet.type == P.MsgType.HELLO:
                    os.write(master, P.encode_frame(P.MsgType.STATE, 1, 0, bytes(7), version=2))
                    info = P.Info(packet.seq, 1, 1000, (P.CommandKind.TORQUE,), "bad", (joint,),
                                  (("qpos", 1),))
                    os.write(master, P.encode_frame(P.MsgType.INFO, 2, 0, info.pack()))

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    try:
        with SerialLink(path, request_timeout=0.2, retries=1) as link:
            with pytest.raises(HardwareError, match="invalid INFO"):
                link.hello()
            assert link.counters["bad_version"] == 1 and link.counters["timeouts"] == 0
    finally:
        stop.set()
        os.close(slave)
        os.close(master)
