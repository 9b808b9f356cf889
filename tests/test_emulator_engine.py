"""The emulator's plant is an engine world: every task on the MuJoCo engine is a plant, with no
task-specific code in hardware/, and a task the hardware layer never named deploys over serial.

The first tests are plain (no pty, no real time): for every task the registry puts on the engine, the
plant stepped one physics step at a time follows the engine world stepped one control period at a
time, bit for bit, and offers the spec's state fields (goals included). The last ones are
hardware-in-the-loop: `robot-rl emulate --task Reacher-v5` (a goal field, target_pos, that only the
engine reads) and `--task Swimmer-v5` as their own processes, a bundle deployed to each over a real
pseudo-terminal.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.hardware import protocol as P
from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.emulator import MujocoPlant
from robot_rl.hardware.goal_tracker import goal_tracker, host_fields
from robot_rl.hardware.safety import SafetyConfig, SafetyFilter
from robot_rl.hardware.serial_robot import SerialRobot
from robot_rl.policies import load
from robot_rl.policies.bundle import write_bundle
from robot_rl.sim import get_spec
from robot_rl.sim.engine.batched import BatchedEngine
from robot_rl.sim.registry import engine_task, engine_task_names

CLI = [sys.executable, "-m", "robot_rl.cli"]
PERIODS = 25


def _emulated() -> list[str]:
    """Every engine task (the cube's targets, last action and goal come from the host's control loop)."""
    return list(engine_task_names())


@pytest.mark.parametrize("task", _emulated())
def test_plant_follows_the_engine_world_step_for_step(task):
    """Reset from the same seed, the same held controls: after each control period of physics steps the
    plant's state fields equal the engine world's (the task's own reset draw, goals, stepping)."""
    seed = 7
    plant = MujocoPlant(task, seed=seed)
    engine = BatchedEngine(engine_task(task), 1, seed=seed, threads=1, autoreset=False)
    engine.reset(seed=seed)
    spec = engine.spec
    assert plant.spec == spec and plant.dt == spec.physics_dt
    names = [n for n, _ in plant.fields]
    assert set(spec.state_fields) - set(host_fields(spec)) <= set(names) and {"qpos", "qvel"} <= set(names)
    assert [j.name for j in plant.joints] == list(spec.joint_names)
    frame_skip = round(spec.control_period / spec.physics_dt)
    rng = np.random.default_rng(0)
    low, high = plant.command_low, plant.command_high
    for _ in range(PERIODS):
        ctrl = rng.uniform(low, high)
        engine.step_controls(ctrl[None])
        for _ in range(frame_skip):
            plant.step(ctrl)
        expected = engine.world_state(0)
        sample = plant.sample(names)
        offset = 0
        for name, size in plant.fields:
            if name in expected:
                np.testing.assert_array_equal(sample[offset:offset + size], expected[name].astype(np.float32),
                                              err_msg=f"{task}: {name}")
            offset += size
        assert offset == sample.size
    start = MujocoPlant(task, seed=seed)
    assert not np.array_equal(start.sample(["qpos", "qvel"]), plant.sample(["qpos", "qvel"])), \
        f"{task}: {PERIODS} periods of random torques left the plant where it started"


def test_reset_plant_redraws_the_tasks_start_and_goal():
    """RESET_PLANT's seed: the same seed gives the same start (and Reacher's target), another another."""
    plant = MujocoPlant("Reacher-v5", seed=1)
    first = plant.sample(["qpos", "target_pos"])
    for _ in range(10):
        plant.step(plant.command_high)
    plant.reset(1)
    np.testing.assert_array_equal(plant.sample(["qpos", "target_pos"]), first)
    plant.reset(2)
    assert not np.array_equal(plant.sample(["target_pos"]), first[-2:])
    assert np.abs(plant.sample(["target_pos"])).max() <= 0.2  # Reacher-v5's goal disc


def test_a_task_off_the_engine_is_refused_naming_the_engine_tasks():
    with pytest.raises(ConfigError, match="Reacher-v5"):
        MujocoPlant("dmc:cartpole-swingup")


# ------------------------------------------------------------------------------- over serial, real time


def start_emulator(task: str, link: Path) -> subprocess.Popen:
    process = subprocess.Popen([*CLI, "emulate", "--task", task, "--link", str(link)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not link.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"emulator did not start: {process.communicate()[0]}")
        time.sleep(0.02)
    return process


def stop_emulator(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0, out
    return out


def linear_bundle(path: Path, task: str, seed: int) -> Path:
    """A small linear Gaussian policy on `task`'s spec (a bundle as `robot-rl export` writes one)."""
    spec = get_spec(task)
    weights = np.random.default_rng(seed).normal(0.0, 0.3, (spec.act_dim, spec.obs_dim)).astype(np.float32)
    write_bundle(path, spec=spec, kind="gaussian", layers=[(weights, np.zeros(spec.act_dim, np.float32))],
                 activation="tanh", head={"squash": "none", "log_std": None}, normalizer=None, onnx=False,
                 provenance={"task": task, "algorithm": "linear", "steps": None, "seed": seed,
                             "evaluation": None, "versions": {}, "created": None})
    return path


@pytest.mark.hil
def test_reacher_deploys_over_serial_to_the_emulator(tmp_path):
    """`robot-rl emulate --task Reacher-v5` and `robot-rl deploy --backend serial` for 3 s: the deploy
    ends on its duration, every step's setpoint reached the device, no frame was lost or refused."""
    link = tmp_path / "reacher_tty"
    bundle = linear_bundle(tmp_path / "reacher", "Reacher-v5", seed=0)
    process = start_emulator("Reacher-v5", link)
    try:
        result = subprocess.run([*CLI, "deploy", str(bundle), "--backend", "serial", "--port", str(link),
                                 "--duration", "3", "--json"], capture_output=True, text=True, timeout=120)
    finally:
        out = stop_emulator(process)
    assert "serving Reacher-v5" in out
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["stop_reason"] == "duration" and report["steps"] > 10
    counters = report["device"]["link"]
    assert counters["setpoints_sent"] == report["steps"] + 1  # the policy's, then the safe command
    assert counters["bad_crc"] == counters["bad_cobs"] == 0
    assert report["device"]["device"]["setpoints_rejected"] == 0


class Recorder:
    """A policy wrapper that keeps the state fields it was given."""

    def __init__(self, policy) -> None:
        self.policy, self.spec, self.states = policy, policy.spec, []

    def reset(self) -> None:
        self.policy.reset()

    def act(self, fields):
        self.states.append({k: np.array(v) for k, v in fields.items()})
        return self.policy.act(fields)


@pytest.mark.hil
@pytest.mark.parametrize("task", ["Reacher-v5", "Swimmer-v5"])
def test_engine_task_state_reaches_the_host_and_follows_the_commands(tmp_path, task):
    """In-process host (SerialRobot under the ControlLoop) for 100 control periods: the host receives
    the spec's state fields by name (Reacher's target_pos too, fixed for the episode), and the joints
    the policy commands move."""
    link = tmp_path / "tty"
    policy = load(str(linear_bundle(tmp_path / "bundle", task, seed=1)))
    process = start_emulator(task, link)
    try:
        robot = SerialRobot(policy.spec, str(link), watchdog=0.5)
        robot.link.open()
        robot.link.request(P.Inject(P.InjectKind.RESET_PLANT, 3))
        recorder = Recorder(policy)
        stats = ControlLoop(robot, recorder, SafetyFilter(policy.spec, SafetyConfig(max_delta=float("inf")))
                            ).run(steps=100)
    finally:
        stop_emulator(process)
    assert stats.steps == 100 and len(recorder.states) == 100
    assert set(policy.spec.state_fields) <= set(recorder.states[0])
    qpos = np.array([s["qpos"] for s in recorder.states])
    assert np.ptp(qpos, axis=0).max() > 0.01  # the plant moved under the policy's commands
    if "target_pos" in policy.spec.state_fields:
        targets = np.array([s["target_pos"] for s in recorder.states])
        assert (targets == targets[0]).all() and np.abs(targets[0]).max() <= 0.2


class Still:
    """A policy that commands zero and keeps the last state fields it was given."""

    def __init__(self, spec) -> None:
        self.spec, self.last = spec, None

    def reset(self) -> None:
        pass

    def act(self, fields):
        self.last = {k: np.array(v) for k, v in fields.items()}
        return np.zeros(self.spec.act_dim)

    def act_normalized(self, fields):  # a relative action (the cube): zero, the targets held
        return self.act(fields)


@pytest.mark.hil
@pytest.mark.parametrize("task", _emulated())
def test_every_engine_task_is_emulated_over_serial(tmp_path, task):
    """`robot-rl emulate --task T` for every task the registry puts on the engine: a SerialRobot built
    from T's spec configures against the device's INFO (joints and fields by name) and runs 30 control
    periods, receiving every state field of the spec at its size."""
    link = tmp_path / "tty"
    spec = get_spec(task)
    process = start_emulator(task, link)
    try:
        policy = Still(spec)
        robot = SerialRobot(spec, str(link), watchdog=0.5)
        stats = ControlLoop(robot, policy, SafetyFilter(spec), goals=goal_tracker(spec)).run(steps=30)
    finally:
        stop_emulator(process)
    assert stats.steps == 30
    assert {k: v.size for k, v in policy.last.items() if k in spec.state_fields} == dict(spec.state_fields)


def test_the_cube_plant_offers_the_measured_state_and_takes_servo_targets():
    """The cube hand's device: joints and the cube's pose (qpos entries cube:x .. cube:qz, the motion-capture
    sensor) and velocities; the host's fields (targets, last action, the goal) are not offered; its
    position servos take POSITION commands only, as the actuators' own targets."""
    spec = get_spec("cube:rotate-z")
    assert {"joint_targets", "last_action", "cube_goal"} == set(host_fields(spec))
    plant = MujocoPlant("cube:rotate-z", seed=2)
    assert dict(plant.fields) == {"qpos": 16, "qvel": 15}
    assert spec.state_joints[9:16] == tuple(f"cube:{a}" for a in ("x", "y", "z", "qw", "qx", "qy", "qz"))
    assert plant.servo.all() and plant.command_kinds == (P.CommandKind.POSITION,)
    quat = plant.sample(["qpos"])[12:16]
    assert abs(np.linalg.norm(quat) - 1) < 1e-6  # the cube's orientation, a unit quaternion
    hopper = MujocoPlant("Hopper-v5")
    assert not hopper.servo.any() and len(hopper.command_kinds) == 3
