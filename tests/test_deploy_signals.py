"""Signals against `robot-rl deploy --backend serial` and `robot-rl launch`, from outside, as a user's
shell or a process manager sends them: real processes, the real emulator behind a real pty.

- SIGTERM/SIGINT to a serial deploy: the loop stops, the safe command and DISABLE are sent, the report
  printed, the exit code 128 + signal; the next deploy works.
- kill -9 of a deploy: the device's watchdog puts the motors in the safe state; the next deploy says in
  one line that an earlier host left the device enabled, sends nothing, and `--recover` (or `robot-rl
  device reset --port`) clears it only when asked.
- A loop that faults (its device went to the safe state) e-stops the device; the next deploy says so.
- SIGTERM to `robot-rl launch` (hil, ros2): no child process and no temporary folder survive.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from process_tree import alive, descendants

from robot_rl.hardware import protocol as P
from robot_rl.hardware.serial_link import SerialLink

pytestmark = pytest.mark.hil

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = "zoo:InvertedPendulum-v5_ppo"
CLI = [sys.executable, "-m", "robot_rl.cli"]
EMULATOR_LOG: queue.Queue[str] = queue.Queue()
"""The emulator's lines (one per CONFIG, ENABLE, DISABLE, ESTOP, RESET, watchdog trip)."""


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """A pendulum emulator process; yields its link path; its log lines go to EMULATOR_LOG."""
    link = tmp_path_factory.mktemp("sig") / "tty"
    process = subprocess.Popen([*CLI, "emulate", "--task", "InvertedPendulum-v5", "--link", str(link)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=lambda: [EMULATOR_LOG.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + 60
    while not link.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the emulator did not start"
        time.sleep(0.02)
    yield link
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


@pytest.fixture(autouse=True)
def reset_device(request):
    """Each test starts from a device just reset, whatever the one before left (e-stopped, enabled)."""
    if "device" in request.fixturenames:
        link = request.getfixturevalue("device")
        with SerialLink(str(link)) as lk:
            lk.hello()
            lk.request(P.Reset())


def wait_log(text: str, process: subprocess.Popen, timeout: float = 60.0) -> str:
    """The next emulator line containing `text` (AssertionError after `timeout` s, or at once with the
    deploy's output if it exited)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = EMULATOR_LOG.get(timeout=0.1)
        except queue.Empty:
            if process.poll() is not None:
                raise AssertionError(f"the deploy exited ({process.returncode}) before the emulator logged "
                                     f"{text!r}: {process.communicate()}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"the emulator never logged {text!r}") from None
            continue
        if text in line:
            return line


def device_status(link: Path) -> P.Status:
    with SerialLink(str(link)) as lk:
        lk.hello()
        return lk.status()


def start_deploy(link: Path, *args: str) -> subprocess.Popen:
    """A deploy for 30 s, returned once its control loop has run for about a second."""
    while not EMULATOR_LOG.empty():  # what earlier tests left
        EMULATOR_LOG.get_nowait()
    process = subprocess.Popen([*CLI, "deploy", BUNDLE, "--backend", "serial", "--port", str(link),
                                "--duration", "30", "--json", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_log("ENABLE: motors on", process)
    time.sleep(1.0)  # some 25 control periods
    assert process.poll() is None, process.communicate()
    return process


def deploy(link: Path, *args: str, duration: float = 1.0) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "deploy", BUNDLE, "--backend", "serial", "--port", str(link),
                           "--duration", f"{duration:g}", "--json", *args],
                          capture_output=True, text=True, timeout=120)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_serial_deploy_cleanly_and_the_next_deploy_works(device, sig):
    process = start_deploy(device)
    process.send_signal(sig)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 128 + sig, err
    report = json.loads(out)
    assert report["stop_reason"] == sig.name and report["steps"] > 10
    link = report["device"]["link"]
    assert link["setpoints_sent"] == report["steps"] + 1  # the policy's, then the safe command
    flags = report["device"]["device"]["flags"]
    assert "ENABLED" not in flags and "ESTOPPED" not in flags and "CONFIGURED" in flags  # DISABLE
    assert f"stopped by {sig.name}: safe command sent and motors disabled" in err
    status = device_status(device)
    assert not status.flags & (P.Flags.ENABLED | P.Flags.ESTOPPED | P.Flags.SAFE)
    again = deploy(device)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["stop_reason"] == "duration"


def test_kill_9_leaves_the_watchdog_to_stop_the_motors_and_reset_only_on_request(device):
    before = device_status(device).counters["watchdog_trips"]
    process = start_deploy(device)
    process.kill()
    process.communicate(timeout=10)
    time.sleep(0.5)  # > the 200 ms watchdog (5 periods of 40 ms)
    status = device_status(device)
    assert status.flags & P.Flags.SAFE and status.flags & P.Flags.WATCHDOG
    assert status.flags & P.Flags.ENABLED  # latched: the earlier host's session, motors in safe mode
    assert status.counters["watchdog_trips"] == before + 1
    refused = deploy(device)
    assert refused.returncode == 2 and refused.stdout == ""
    lines = errors(refused.stderr)
    assert len(lines) == 1 and "is ENABLED" in lines[0] and "earlier host" in lines[0]
    assert "--recover" in lines[0] and "robot-rl device reset --port" in lines[0]
    assert device_status(device).flags == status.flags  # nothing was done to it: no ESTOP, no RESET
    reset = subprocess.run([*CLI, "device", "reset", "--port", str(device)], capture_output=True, text=True,
                           timeout=60)
    assert reset.returncode == 0, reset.stderr
    assert "CONFIGURED|ENABLED|SAFE" in reset.stdout and "-> RESET -> -" in reset.stdout
    assert deploy(device).returncode == 0


def test_a_faulted_loop_estops_and_the_next_deploy_needs_recover(device):
    process = start_deploy(device)
    process.send_signal(signal.SIGSTOP)  # the host hangs: the device's watchdog trips ...
    time.sleep(0.6)
    process.send_signal(signal.SIGCONT)  # ... and the host, back, finds its device in the safe state
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2, err
    # the fault the loop sees first depends on where SIGSTOP caught it: the device's safe state in
    # the next STATE, or (stopped mid-write) pyserial's write timeout; either way it e-stops
    assert "went to its safe state" in err or "write failed (Write timeout)" in err, err
    assert device_status(device).flags & P.Flags.ESTOPPED
    refused = deploy(device)
    lines = errors(refused.stderr)
    assert refused.returncode == 2 and len(lines) == 1 and "is ESTOPPED" in lines[0]
    recovered = deploy(device, "--recover")
    assert recovered.returncode == 0, recovered.stderr
    report = json.loads(recovered.stdout)
    assert report["stop_reason"] == "duration" and report["device"]["device"]["watchdog_trips"] >= 1


# ------------------------------------------------------------------------------------------ launch




def kill_launch_and_check(cmd: list[str], tmp_path: Path, expect_children: int, ready: float) -> str:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 90
    while len(descendants(launcher.pid)) < expect_children:
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.stdout.read()
        time.sleep(0.1)
    time.sleep(ready)
    children = descendants(launcher.pid)
    launcher.send_signal(signal.SIGTERM)
    out, _ = launcher.communicate(timeout=60)
    assert launcher.returncode == 128 + signal.SIGTERM, out
    survivors = [pid for pid in children if alive(pid)]
    assert survivors == [], out
    assert list(tmp_path.iterdir()) == [], out  # no temporary folder left
    return out


def test_sigterm_to_a_hil_launch_leaves_no_process_and_no_folder(tmp_path):
    out = kill_launch_and_check([*CLI, "launch", str(ROOT / "launch" / "hil_serial.yaml"), "--set",
                                 "deploy.duration=60"], tmp_path, expect_children=2, ready=3.0)
    assert "stopped by SIGTERM" in out  # the deployment's report: it stopped cleanly ...
    assert "robot-rl emulate: stopped" in out
    assert out.index("DISABLE: motors off") < out.index("robot-rl emulate: stopped")  # ... first


@pytest.mark.ros2
def test_sigterm_to_a_ros2_launch_leaves_no_process(tmp_path):
    pytest.importorskip("rclpy")
    kill_launch_and_check([*CLI, "launch", str(ROOT / "launch" / "ros2_sim.yaml"), "--set", "duration=0",
                           "--set", "bridge.max_steps=0"], tmp_path, expect_children=2, ready=4.0)


def test_a_hil_launch_never_takes_an_existing_link_for_its_emulators(tmp_path):
    link = tmp_path / "tty"
    link.symlink_to("/dev/null")  # someone else's
    result = subprocess.run([*CLI, "launch", str(ROOT / "launch" / "hil_serial.yaml"), "--set",
                             f"emulator.link={link}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "emulator.link" in result.stderr and "already exists" in result.stderr
    assert os.readlink(link) == "/dev/null"


def test_a_stop_requested_while_configuring_never_enables_the_motors(tmp_path):
    """A signal that arrives before activation (deploy: during HELLO/CONFIG) ends the run there."""
    from emulator_host import EmulatorThread

    from robot_rl.hardware.control_loop import ControlLoop
    from robot_rl.hardware.serial_robot import SerialRobot
    from robot_rl.policies import load

    lines: list[str] = []
    dev = EmulatorThread(str(tmp_path / "tty"), log=lines.append)
    try:
        policy = load(BUNDLE)
        robot = SerialRobot(policy.spec, dev.link)
        loop = ControlLoop(robot, policy)
        loop.request_stop("SIGTERM")
        stats = loop.run(duration=5.0, close=False)
        assert stats.stop_reason == "SIGTERM" and stats.steps == 0
        assert any(line.startswith("CONFIG") for line in lines)
        assert not any(line.startswith("ENABLE") for line in lines)
        again = loop.run(steps=3)  # the request ended that run only
        assert again.stop_reason == "steps" and any(line.startswith("ENABLE") for line in lines)
    finally:
        dev.stop()
