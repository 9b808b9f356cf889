"""The zoo cube over serial, as a user runs it: `robot-rl emulate --task cube:rotate-z` (the hand on a real
pty, the cube's pose in STATE as a motion-capture sensor) and `robot-rl deploy zoo:cube-rotate-z_ppo
--backend serial` for a few seconds, in real time, no mocks: the policy reaches at least one goal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_rl.policies import zoo_names

CUBE = "cube-rotate-z_ppo"
CLI = [sys.executable, "-m", "robot_rl.cli"]


def _start_emulator(link: Path) -> subprocess.Popen:
    process = subprocess.Popen([*CLI, "emulate", "--task", "cube:rotate-z", "--link", str(link)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not link.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"emulator did not start: {process.stdout.read().decode()}")
        time.sleep(0.02)
    return process


@pytest.mark.hil
@pytest.mark.skipif(CUBE not in zoo_names(), reason="the zoo has no cube bundle")
def test_the_zoo_cube_deploys_over_serial_to_the_emulator_with_at_least_one_success(tmp_path):
    link = tmp_path / "hand_tty"
    emulator = _start_emulator(link)
    try:
        done = subprocess.run([*CLI, "deploy", f"zoo:{CUBE}", "--backend", "serial", "--port", str(link),
                               "--duration", "8", "--seed", "0", "--json"], capture_output=True, text=True,
                              timeout=120)
    finally:
        emulator.send_signal(signal.SIGTERM)
        log, _ = emulator.communicate(timeout=10)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["task"] == "cube:rotate-z" and report["stop_reason"] == "duration"
    assert report["steps"] >= 100  # 8 s at 20 Hz, less any deadline skipped under load
    goals = report["goals"]
    assert goals["goal_source"] == "drawn" and not goals["dropped"]
    assert goals["successes"] >= 1, goals  # hold-and-advance on the cube pose the device measured
    device = report["device"]["device"]
    assert device["setpoints"] >= report["steps"] and device["setpoints_rejected"] == 0
    assert "ENABLE: motors on" in log.decode() and "DISABLE: motors off" in log.decode()


@pytest.mark.skipif(CUBE not in zoo_names(), reason="the zoo has no cube bundle")
def test_the_zoo_cube_on_the_mujoco_backend_reaches_a_fixed_goal_given_as_a_parameter():
    done = subprocess.run([*CLI, "deploy", f"zoo:{CUBE}", "--backend", "mujoco", "--fast", "--goal", "yaw:90",
                           "--seed", "1", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    goals = json.loads(done.stdout)["goals"]
    assert goals["goal_source"] == "fixed" and goals["goal"] == pytest.approx([0.7071068, 0, 0, 0.7071068])
    assert goals["successes"] >= 1  # reached; a fixed goal stays the goal
    bad = subprocess.run([*CLI, "deploy", f"zoo:{CUBE}", "--backend", "mujoco", "--fast", "--goal", "up"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--goal" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
