"""The simulated backends (MuJoCo, PyBullet), `robot-rl deploy` and `robot-rl sim2sim`, and the serial
path's light imports."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.evaluation import evaluate
from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.mujoco_robot import make_robot as make_mujoco
from robot_rl.hardware.pybullet_robot import make_robot as make_pybullet
from robot_rl.hardware.robot import HardwareError, Lifecycle
from robot_rl.hardware.safety import SafetyConfig, SafetyFilter
from robot_rl.policies import load, zoo_names
from robot_rl.sim import get_spec, make_env

TASK = "InvertedPendulum-v5"


@pytest.fixture(scope="module")
def pendulum_bundle(tmp_path_factory) -> str:
    """The zoo's InvertedPendulum bundle, or (before the zoo lands) a linear balancing controller."""
    if f"{TASK}_ppo" in zoo_names():
        return f"zoo:{TASK}_ppo"
    from robot_rl.policies.bundle import write_bundle

    spec = get_spec(TASK)
    path = tmp_path_factory.mktemp("bundle") / "pendulum"
    gains = np.array([[0.1, 5.0, 1.0, 1.0]], dtype=np.float32)  # x, angle, x rate, angle rate
    write_bundle(path, spec=spec, kind="gaussian", layers=[(gains, np.zeros(1, np.float32))],
                 activation="tanh", head={"squash": "none", "log_std": None}, normalizer=None, onnx=False,
                 provenance={"task": TASK, "algorithm": "linear", "steps": None, "seed": None,
                             "evaluation": None, "versions": {}, "created": None})
    return str(path)


@pytest.fixture(scope="module")
def policy(pendulum_bundle):
    return load(pendulum_bundle)


def no_rate_limit(spec):
    return SafetyFilter(spec, SafetyConfig(max_delta=math.inf))


# ---------------------------------------------------------------------------------------------- MuJoCo


def test_mujoco_robot_state_clock_and_commands():
    spec = get_spec(TASK)
    robot = make_mujoco(spec, {"realtime": False, "seed": 4})
    with robot:
        robot.configure()
        assert robot.joint_names == ("slider",) and not robot.realtime
        state = robot.activate()
        assert set(state.fields) == set(spec.state_fields)
        assert state.joint_positions.tolist() == [state.fields["qpos"][0]]  # the slider's coordinate
        assert state.joint_velocities.tolist() == [state.fields["qvel"][0]]
        t0, seq0 = state.timestamp, state.sequence
        sent = robot.write_command(np.array([10.0]))  # beyond ctrlrange ±3: the actuator's own clamp
        assert sent.tolist() == [3.0]
        after = robot.read_state()
        assert after.timestamp == pytest.approx(t0 + spec.control_period)
        assert after.timestamp == robot.clock() and after.sequence == seq0 + 1
        assert robot.last_reward == 1.0 and not robot.episode_over


def test_each_activation_is_the_next_evaluation_episode():
    spec = get_spec(TASK)
    robot = make_mujoco(spec, {"realtime": False, "seed": 7})
    env = make_env(TASK, seed=7)
    try:
        robot.configure()
        for i in range(2):
            obs, _ = env.reset(seed=7 + i)
            state = robot.activate()
            np.testing.assert_array_equal(np.concatenate([state.fields["qpos"], state.fields["qvel"]]), obs)
            robot.deactivate()
    finally:
        env.close()
        robot.close()


def test_zoo_pendulum_keeps_the_pole_up_on_the_mujoco_backend(policy):
    robot = make_mujoco(policy.spec, {"realtime": False})
    stats = ControlLoop(robot, policy).run()  # the default safety filter, rate limit included
    assert stats.stop_reason == "episode_end"
    assert stats.steps == 1000 and stats.episode_return == 1000.0  # the time limit, not a fall
    assert robot.lifecycle is Lifecycle.CLOSED


def test_control_loop_return_equals_evaluate_for_the_same_seed(policy):
    robot = make_mujoco(policy.spec, {"realtime": False, "seed": 11})
    loop = ControlLoop(robot, policy, no_rate_limit(policy.spec))
    looped = [loop.run(close=False).episode_return for _ in range(3)]
    robot.close()
    assert looped == evaluate(TASK, policy.act_normalized, 3, 11)["returns"]


def test_real_time_paces_the_simulator_to_the_wall_clock(policy):
    robot = make_mujoco(policy.spec, {})  # real time by default
    stats = ControlLoop(robot, policy).run(duration=0.2)
    assert stats.realtime and stats.steps == 5  # 0.2 s at 0.04 s
    assert stats.wall_time >= 4 * policy.spec.control_period
    assert stats.period.p50 == pytest.approx(policy.spec.control_period, abs=0.005)


def test_backend_options_are_checked():
    spec = get_spec(TASK)
    with pytest.raises(HardwareError, match="unknown mujoco backend option"):
        make_mujoco(spec, {"baudrate": 9600})
    with pytest.raises(HardwareError, match="--port applies to the serial backend"):
        make_pybullet(spec, {"port": "/dev/ttyUSB0"})


def test_a_robot_with_other_joints_is_refused(policy):
    robot = make_mujoco(policy.spec, {"task": "Hopper-v5", "realtime": False})
    with pytest.raises(HardwareError, match=r"joint mismatch.*thigh_joint.*slider"):
        ControlLoop(robot, policy).run()
    assert robot.lifecycle is Lifecycle.CLOSED


# ---------------------------------------------------------------------------------------------- PyBullet


def test_pybullet_backend_runs_the_same_policy(policy):
    robot = make_pybullet(policy.spec, {"realtime": False, "seed": 2})
    with robot:
        robot.configure()
        state = robot.activate()
        # PyBullet starts from MuJoCo's reset state, noise included
        qpos, qvel = robot.twin.get_state()
        np.testing.assert_allclose(qpos, state.fields["qpos"], atol=1e-9)
        np.testing.assert_allclose(qvel, state.fields["qvel"], atol=1e-9)
        robot.deactivate()
    mj = ControlLoop(make_mujoco(policy.spec, {"realtime": False, "seed": 2}), policy).run()
    pb = ControlLoop(make_pybullet(policy.spec, {"realtime": False, "seed": 2}), policy).run()
    assert pb.episode_return >= 0.9 * mj.episode_return


# ---------------------------------------------------------------------------------------------- CLI


def one_line_error(capsys, argv, *words) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("robot-rl: error:")
    for word in words:
        assert word in err


def test_deploy_prints_loop_statistics_and_interventions(capsys, pendulum_bundle):
    assert main(["deploy", pendulum_bundle, "--backend", "mujoco", "--fast", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == TASK and report["backend"] == "mujoco"
    assert report["steps"] == 1000 and report["episode_return"] == 1000.0
    assert report["stop_reason"] == "episode_end" and not report["realtime"]
    for key in ("period", "latency", "jitter", "overrun"):
        assert set(report[key]) == {"p50", "p99", "max"}
    assert report["safety"]["steps"] == 1000 and "interventions" in report["safety"]
    assert main(["deploy", pendulum_bundle, "--backend", "mujoco", "--duration", "0.12"]) == 0
    text = capsys.readouterr().out
    assert "3 steps" in text and "latency" in text and "safety interventions" in text


def test_deploy_errors_are_one_line(capsys, pendulum_bundle, tmp_path):
    one_line_error(capsys, ["deploy", pendulum_bundle, "--backend", "ros9"], "ros9",
                   "mujoco, pybullet, serial")
    one_line_error(capsys, ["deploy", str(tmp_path / "nope"), "--backend", "mujoco"], "not a bundle")
    one_line_error(capsys, ["deploy", pendulum_bundle, "--backend", "mujoco", "--task", "Hopper-v5",
                            "--fast"], "joint mismatch", "slider")
    one_line_error(capsys, ["deploy", pendulum_bundle, "--backend", "serial"], "--port")
    one_line_error(capsys, ["deploy", pendulum_bundle, "--backend", "serial", "--port",
                            str(tmp_path / "no_such_tty")], "no_such_tty")


@pytest.mark.parametrize("argv", [
    ["deploy", "{bundle}", "--backend", "mujoco", "--fast", "--seed", "-1"],
    ["sim2sim", "{bundle}", "--seed", "-3"],
    ["eval", "{bundle}", "--seed", "-1"],
    ["emulate", "--task", "InvertedPendulum-v5", "--seed", "-1"],
    ["tabular", "q-learning", "--seed", "-1"],
])
def test_a_negative_seed_is_a_usage_error_not_a_traceback(capsys, pendulum_bundle, argv):
    with pytest.raises(SystemExit) as exited:  # Gymnasium and NumPy raise deep inside on these
        main([a.replace("{bundle}", pendulum_bundle) for a in argv])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("robot-rl: error: argument --seed: -1 is negative; a seed is a "
                                            "whole number >= 0").replace("-1", argv[-1])


def test_sim2sim_reports_both_returns_and_their_ratio(capsys, pendulum_bundle):
    assert main(["sim2sim", pendulum_bundle, "--episodes", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    mj, pb = report["mujoco"]["mean_return"], report["pybullet"]["mean_return"]
    assert report["ratio"] == pytest.approx(pb / mj)
    assert mj == 1000.0 and report["ratio"] >= 0.9


def test_the_serial_path_imports_without_mujoco_pybullet_or_torch():
    code = ("import sys\n"
            "import robot_rl.hardware as h\n"
            "import robot_rl.hardware.control_loop, robot_rl.hardware.safety\n"
            "import robot_rl.hardware.serial_robot\n"
            "from robot_rl.commands import deploy\n"
            "h.ControlLoop, h.SafetyFilter, h.SerialRobot\n"
            "deploy.backend_module('serial')\n"
            "print([m for m in ('mujoco', 'pybullet', 'torch', 'gymnasium') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)
    assert out.stdout.strip() == "[]"
