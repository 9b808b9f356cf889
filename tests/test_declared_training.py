"""A task declared in a launch file, on a tiny URDF written here: PPO trains on it through the launch
file, the run exports, and the bundle builds the engine's observation from the same world state."""

import csv
from pathlib import Path

import numpy as np
import pytest
from test_declared_task import URDF

from robot_rl import policies
from robot_rl.cli import main
from robot_rl.errors import ConfigError
from robot_rl.export import export_run
from robot_rl.launch import load_train_config
from robot_rl.sim import make
from robot_rl.trainer import Trainer

LAUNCH = """
task:
  model: robots/arm.urdf
  control: {kind: position, kp: 20.0, kd: 0.5, period: 0.02}
  default_pose: {shoulder: 0.3, elbow: -0.5}
  observations: [joint_pos, joint_vel, last_action]
  rewards: {alive: 1.0, joint_pos_deviation: -1.0, action_rate: -0.01}
  terminations: [timeout]
  episode_seconds: 2
algo: ppo
seed: 3
total_steps: 8192
num_envs: 4
vectorization: batched
env_threads: 1
ppo: {num_steps: 256, epochs: 5, minibatch_size: 256, learning_rate: 1.0e-3}
eval: {episodes: 2}
log: {progress_bar: false, tensorboard: false, plot: false}
"""


@pytest.fixture
def launch_file(tmp_path: Path) -> Path:
    (tmp_path / "robots").mkdir()
    (tmp_path / "robots" / "arm.urdf").write_text(URDF)
    path = tmp_path / "arm_ppo.yaml"
    path.write_text(LAUNCH)
    return path


def test_declared_task_trains_exports_and_the_bundle_observes_as_the_engine(launch_file: Path,
                                                                           tmp_path: Path) -> None:
    config = load_train_config(launch_file)
    assert config.task == f"declared:{launch_file.resolve()}"
    Trainer(config, tmp_path / "run").train()
    with open(tmp_path / "run" / "progress.csv", newline="") as f:
        returns = [float(row["episode_return"]) for row in csv.DictReader(f)]
    assert len(returns) == 8 and returns[-1] > returns[0] + 50  # seed 3: about -99 -> -12 (max +100)
    bundle = export_run(tmp_path / "run", tmp_path / "bundle", episodes=2)
    policy = policies.load(bundle.path)
    assert policy.spec.joint_names == ("shoulder", "elbow")
    assert policy.spec.action.kind == "position"

    env = make(config.task, num_envs=2, seed=11, vectorization="batched", threads=1)
    obs, _ = env.reset(seed=11)
    for _ in range(7):
        actions = np.stack([policy.act_normalized(o) for o in obs])
        obs, *_ = env.step(actions)
    for i in range(2):
        state = env.engine.world_state(i)
        np.testing.assert_allclose(policy.observation(state), obs[i], rtol=0, atol=0)
    env.close()


def test_the_bundle_deploys_on_the_mujoco_backend(launch_file: Path, tmp_path: Path, capsys) -> None:
    config = load_train_config(launch_file, ["total_steps=1024", "eval.episodes=1"])
    Trainer(config, tmp_path / "run").train()
    bundle = export_run(tmp_path / "run", tmp_path / "bundle", episodes=0)
    code = main(["deploy", str(bundle.path), "--backend", "mujoco", "--fast", "--duration", "1"])
    out = capsys.readouterr().out
    assert code in (0, None), out
    assert "50 steps" in out and "safety interventions: none" in out  # 1 s at 0.02 s per step


def test_a_bad_term_in_the_launch_file_is_named_before_training(launch_file: Path) -> None:
    launch_file.write_text(LAUNCH.replace("action_rate: -0.01", "action_rat: -0.01"))
    with pytest.raises(ConfigError,
                       match=r"arm_ppo.yaml: task.rewards: unknown term 'action_rat'; valid: alive"):
        load_train_config(launch_file)


def test_set_overrides_of_a_declared_task_are_refused(launch_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"--set task\.\* is not supported"):
        load_train_config(launch_file, ["task.episode_seconds=5"])


def test_task_check_prints_the_layout_and_names_a_bad_term(launch_file: Path, capsys) -> None:
    assert main(["task", "check", str(launch_file)]) == 0
    out = capsys.readouterr().out
    assert "policy joints (2, action position)" in out
    assert "[  0:  2] joint_pos" in out and "[  4:  6] last_action" in out
    assert "-0.01 x action_rate" in out
    launch_file.write_text(LAUNCH.replace("joints: ", "").replace("[joint_pos,", "[joint_angle,"))
    assert main(["task", "check", str(launch_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("robot-rl: error: task.observations: unknown term 'joint_angle'; valid: joint_pos, "
                   "joint_vel, last_action, projected_gravity, base_lin_vel, base_ang_vel, command, body_pos")


@pytest.mark.hil
def test_a_declared_task_is_emulated_over_serial(launch_file: Path, tmp_path: Path) -> None:
    """`robot-rl emulate --task declared:FILE`: a SerialRobot of the declared spec configures against the
    device by joint name and receives every state field the observation reads (the default pose too)."""
    from test_emulator_engine import Still, start_emulator, stop_emulator

    from robot_rl.hardware.control_loop import ControlLoop
    from robot_rl.hardware.safety import SafetyFilter
    from robot_rl.hardware.serial_robot import SerialRobot
    from robot_rl.sim import get_spec

    task = load_train_config(launch_file).task
    spec = get_spec(task)
    link = tmp_path / "tty"
    process = start_emulator(str(launch_file), link)  # `emulate --task FILE`
    try:
        policy = Still(spec)
        robot = SerialRobot(spec, str(link), watchdog=0.5)
        stats = ControlLoop(robot, policy, SafetyFilter(spec)).run(steps=30)
    finally:
        stop_emulator(process)
    assert stats.steps == 30
    assert {k: v.size for k, v in policy.last.items() if k in spec.state_fields} == {
        "qpos": 2, "qvel": 2, "ctrl": 2}
