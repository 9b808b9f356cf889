"""The pyserial host driver against the firmware emulator on a real pseudo-terminal (no mocks).

The emulator runs in a thread of this process (the HIL tests run it as its own process): handshake,
acknowledged requests and their refusals, the STATE stream at the configured period, retries after
lost answers, counters under injected corruption, and reconnection after the port vanishes.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import numpy as np
import pytest

from robot_rl.hardware import protocol as P
from robot_rl.hardware.emulator import Emulator, FaultConfig, MujocoPlant, parse_faults
from robot_rl.hardware.robot import HardwareError
from robot_rl.hardware.serial_link import SerialLink

TASK = "InvertedPendulum-v5"


class Device:
    """An emulator serving in a background thread."""

    def __init__(self, link: str, **kwargs) -> None:
        self.emulator = Emulator(MujocoPlant(TASK, seed=0, physics_dt=0.002), link=link, **kwargs)
        self.thread = threading.Thread(target=self.emulator.serve, daemon=True)
        self.thread.start()
        assert self.emulator.wait_ready(10)
        self.link = link

    def stop(self) -> None:
        self.emulator.stop()
        self.thread.join(5)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    dev = Device(str(tmp_path_factory.mktemp("tty") / "device"))
    yield dev
    dev.stop()


@pytest.fixture
def link(device):
    with SerialLink(device.link, request_timeout=0.1, retries=3) as lk:
        lk.request(P.Inject(P.InjectKind.CLEAR))
        lk.request(P.Reset())
        yield lk


def _config(period_us: int = 10_000, mask: int = 0, kind=P.CommandKind.TORQUE) -> P.Config:
    return P.Config(period_us, 30_000, P.SafeMode.DAMPING, kind, mask)


def test_emulator_link_never_replaces_a_file_and_names_a_missing_folder(tmp_path):
    from robot_rl.errors import ConfigError

    plant = MujocoPlant(TASK, seed=0, physics_dt=0.002)
    mine = tmp_path / "notes.txt"
    mine.write_text("keep")
    with pytest.raises(ConfigError, match="exists and is not a symlink; refusing to replace it"):
        Emulator(plant, link=str(mine))
    assert mine.read_text() == "keep"
    with pytest.raises(ConfigError, match=r"the folder .*nowhere does not exist"):
        Emulator(plant, link=str(tmp_path / "nowhere" / "device"))
    old = tmp_path / "device"
    old.symlink_to("/dev/pts/nonexistent")  # a link that is not this emulator's: refused, unless forced
    with pytest.raises(ConfigError, match=r"already exists .*--force to take it over"):
        Emulator(plant, link=str(old))
    Emulator(plant, link=str(old), force=True)
    assert os.readlink(old) == "/dev/pts/nonexistent"  # nothing is touched before serve()


def test_nonexistent_port_is_a_clear_error(tmp_path):
    with pytest.raises(HardwareError, match="does not exist"):
        SerialLink(str(tmp_path / "no_such_tty")).open()


def test_hello_describes_the_device(link):
    info = link.hello()
    assert info.protocol_version == P.PROTOCOL_VERSION and info.firmware_rate_hz == 1000
    assert info.joint_names == ("slider",)
    assert dict(info.fields) == {"qpos": 2, "qvel": 2}
    joint = info.joints[0]
    assert (joint.position_field, joint.position_index) == (0, 0)
    assert (joint.velocity_field, joint.velocity_index) == (1, 0)
    assert joint.position_limits == (-1.0, 1.0) and joint.command_limits == (-3.0, 3.0)
    assert info.names_hash == P.joint_names_hash(["slider"])


def test_requests_are_refused_with_their_reason(link):
    with pytest.raises(HardwareError, match="refused ENABLE: NOT_CONFIGURED"):
        link.request(P.Enable())
    with pytest.raises(HardwareError, match="refused CONFIG: BAD_PAYLOAD"):
        link.request(_config(period_us=1500))  # not a whole number of 1 ms ticks
    with pytest.raises(HardwareError, match="refused CONFIG: UNSUPPORTED"):
        link.request(_config(mask=1 << 5))  # the device has 2 fields
    link.request(_config())
    link.request(P.Enable())
    with pytest.raises(HardwareError, match="refused CONFIG: BUSY"):
        link.request(_config())
    link.request(P.Estop())
    with pytest.raises(HardwareError, match="refused ENABLE: ESTOPPED"):
        link.request(P.Enable())
    link.request(P.Reset())
    assert link.status().flags == P.Flags(0)


def test_state_streams_at_the_configured_period(link):
    link.hello()
    link.request(_config(period_us=10_000))
    states = []
    last = None
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        s = link.wait_state(last, 0.1)
        if s is not None:
            states.append(s)
            last = s.seq
    assert len(states) >= 20
    seqs = np.array([s.seq for s in states])
    times = np.array([s.device_time for s in states])
    # every state the link returned in turn is one period after the one before, unless one was skipped
    steps = np.round(np.diff(times) / 0.01, 6)
    np.testing.assert_array_equal(steps, np.diff(seqs))
    assert all(s.flags == P.Flags.CONFIGURED for s in states)
    assert link.counters["seq_gaps"] == 0 and link.counters["bad_crc"] == 0
    assert all(s.values.shape == (4,) for s in states)  # qpos (2) and qvel (2)


def test_a_lost_answer_is_retried(link):
    link.request(P.Inject(P.InjectKind.DROP, 1.0, 250))  # the device's next 250 ms of output is lost
    before = link.counters["timeouts"]
    status = link.status()  # 100 ms timeout, up to 3 retries
    assert link.counters["timeouts"] - before >= 2
    assert status.counters["frames_ok"] > 0


def test_no_answer_at_all_is_a_clear_error(link):
    link.request(P.Inject(P.InjectKind.MUTE, 1.0, 1000))
    with pytest.raises(HardwareError, match=r"did not answer GET_STATUS within 50 ms \(2 tries\)"):
        link.request(P.GetStatus(), timeout=0.05, retries=1)
    time.sleep(0.9)


def test_corrupted_stream_is_counted_and_never_accepted(link):
    link.hello()
    link.request(_config(period_us=2_000))
    for kind, p in ((P.InjectKind.CORRUPT, 0.3), (P.InjectKind.TRUNCATE, 0.2), (P.InjectKind.GARBAGE, 0.3)):
        link.send(P.Inject(kind, p, 600))  # not waiting for ACKs that the faults may eat
    states, last = [], None
    deadline = time.monotonic() + 0.7
    while time.monotonic() < deadline:
        s = link.wait_state(last, 0.05)
        if s is not None:
            states.append(s)
            last = s.seq
    c = link.counters
    assert c["bad_crc"] + c["bad_cobs"] + c["bad_length"] > 20
    assert c["seq_gaps"] > 10
    # what was accepted is what the device sent: states on the 2 ms grid, in order, finite
    grid = (np.array([s.device_time for s in states]) - states[0].device_time) / 0.002
    grid = np.round(grid, 6)
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-6)
    assert (np.diff(grid) >= 1).all() and (np.diff([s.seq for s in states]) >= 1).all()
    assert all(np.isfinite(s.values).all() and s.flags == P.Flags.CONFIGURED for s in states)
    link.request(P.Inject(P.InjectKind.CLEAR), retries=10)


def test_delay_shows_in_the_state_age(link):
    link.hello()
    link.request(_config(period_us=10_000))

    def offset() -> float:  # smallest host-minus-device time over 0.25 s (robust to a loaded machine)
        # from the states sent after the one held now: that one may predate the fault (when no
        # delayed state has been read yet), and its undelayed age would be the minimum
        samples, last = [], link.wait_state(None, 0.1).seq
        for _ in range(25):
            s = link.wait_state(last, 0.1)
            last = s.seq
            samples.append(s.host_time - s.device_time)
        return min(samples)

    base = offset()
    # the fault delays the ACKs too: wait longer than the delay rather than resend the requests
    link.request(P.Inject(P.InjectKind.DELAY, 0.2, 0), timeout=1.0, retries=0)
    time.sleep(0.21)
    delayed = offset()
    link.request(P.Inject(P.InjectKind.CLEAR), timeout=1.0, retries=0)
    assert 0.17 < delayed - base < 0.26  # 0.2 s, give or take this shared machine's scheduling


def test_port_disappears_and_comes_back(link):
    info = link.hello()
    link.request(_config(period_us=10_000))
    link.request(P.Inject(P.InjectKind.DISCONNECT, 0.3))
    deadline = time.monotonic() + 1.0
    while link.connected and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not link.connected and link.counters["disconnects"] == 1
    with pytest.raises(HardwareError, match="is down: device disconnected"):
        link.send(P.Hello())
    assert link.wait_connected(3.0)
    assert link.counters["reconnects"] == 1
    assert dataclasses.replace(link.hello(), req_seq=0) == dataclasses.replace(info, req_seq=0)
    assert link.status().flags & P.Flags.CONFIGURED  # the device kept its configuration


def test_device_with_another_protocol_version_is_refused_before_anything_else(tmp_path):
    dev = Device(str(tmp_path / "v2"), protocol_version=2)
    try:
        with SerialLink(dev.link) as lk, pytest.raises(HardwareError, match="protocol version 2; this host "
                                                                           "speaks version 1"):
            lk.hello()
        emulator = dev.emulator
        assert emulator._decoder.counters["frames_ok"] == 1  # the HELLO, nothing else
        device = emulator.device
        assert not device.configured and not device.enabled and device.counters["setpoints"] == 0
    finally:
        dev.stop()


def test_fault_flags_parse():
    assert parse_faults(["drop=0.1", "delay=0.002", "mute", "disconnect=5:2"]) == FaultConfig(
        drop=0.1, delay=0.002, mute=True, disconnect_at=5.0, disconnect_for=2.0)
    with pytest.raises(Exception, match="unknown fault"):
        parse_faults(["flood=1"])
    with pytest.raises(Exception, match=r"probability in \[0, 1\]"):
        parse_faults(["drop=2"])
