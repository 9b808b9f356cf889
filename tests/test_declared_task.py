"""A declared task from a tiny URDF written here: bad input refused, the built task on the engine."""

import math
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.sim.declared.builder import build_task
from robot_rl.sim.declared.config import parse_task
from robot_rl.sim.engine.batched import BatchedEngine
from robot_rl.spec import build_observation

URDF = """<robot name="arm">
  <link name="base"><inertial><mass value="1"/>
    <inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="upper"><inertial><origin xyz="0 0 0.1"/><mass value="0.5"/>
    <inertia ixx="0.002" iyy="0.002" izz="0.0005" ixy="0" ixz="0" iyz="0"/></inertial>
    <collision><origin xyz="0 0 0.1"/><geometry><cylinder radius="0.02" length="0.2"/></geometry></collision>
  </link>
  <link name="lower"><inertial><origin xyz="0 0 0.1"/><mass value="0.3"/>
    <inertia ixx="0.001" iyy="0.001" izz="0.0003" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="upper"/><axis xyz="0 1 0"/>
    <limit lower="-1.5" upper="1.5" effort="5" velocity="10"/></joint>
  <joint name="elbow" type="revolute"><parent link="upper"/><child link="lower"/><origin xyz="0 0 0.2"/>
    <axis xyz="0 1 0"/><limit lower="-2.0" upper="2.0" effort="5" velocity="10"/></joint>
</robot>
"""


def declaration(**changes):
    task = {"model": "robots/arm.urdf",
            "control": {"kind": "position", "kp": 20.0, "kd": 0.5, "period": 0.02},
            "joints": ["elbow", "shoulder"], "default_pose": {"shoulder": 0.3, "elbow": -0.5},
            "observations": ["joint_pos", "joint_vel", "last_action"],
            "rewards": {"alive": 1.0, "joint_pos_deviation": -0.5, "action_rate": -0.01, "torque": -0.001},
            "terminations": ["timeout"], "episode_seconds": 1.0}
    task.update(changes)
    return task


@pytest.fixture
def launch_dir(tmp_path: Path) -> Path:
    (tmp_path / "robots").mkdir()
    (tmp_path / "robots" / "arm.urdf").write_text(URDF)
    return tmp_path


def test_built_task_has_the_declared_layout(launch_dir: Path) -> None:
    task = build_task(parse_task(declaration(), str(launch_dir)))
    engine = BatchedEngine(task, 2, seed=0, threads=1)
    spec = engine.spec
    assert spec.joint_names == ("elbow", "shoulder")  # the declared policy order, not the model's
    assert spec.action.kind == "position"
    np.testing.assert_allclose(spec.action.low, [-2.0, -1.5])
    assert task.frame_skip == 10 and task.max_episode_steps == 50  # 0.02 s / 0.002 s; 1 s / 0.02 s
    assert list(spec.observation_slices()) == ["joint_pos", "joint_vel", "last_action"]
    obs, _ = engine.reset(seed=0)
    np.testing.assert_allclose(obs, 0.0, atol=1e-12)  # starts at the default pose, at rest


def test_reward_is_the_weighted_sum_of_the_terms(launch_dir: Path) -> None:
    engine = BatchedEngine(build_task(parse_task(declaration(), str(launch_dir))), 2, seed=0, threads=1)
    engine.reset(seed=0)
    targets = np.array([[0.0, 0.3], [-1.0, 1.0]])  # world 0: hold the shoulder, move the elbow
    _, reward, terminated, _, _ = engine.step_controls(targets)
    data = [w.data for w in engine.worlds]
    q = np.array([[d.qpos[1], d.qpos[0]] for d in data])  # (elbow, shoulder): qpos is in model order
    deviation = np.sum(np.square(q - [-0.5, 0.3]), axis=1)
    rate = np.sum(np.square(targets), axis=1)  # the previous command is mj_resetData's zeros
    torque = np.array([np.sum(np.square(d.qfrc_actuator)) for d in data])
    np.testing.assert_allclose(reward, 1.0 - 0.5 * deviation - 0.01 * rate - 0.001 * torque, rtol=1e-12)
    assert not terminated.any()


def test_the_engine_observation_is_the_one_built_from_a_world_state(launch_dir: Path) -> None:
    engine = BatchedEngine(build_task(parse_task(declaration(), str(launch_dir))), 3, seed=1, threads=1)
    engine.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, *_ = engine.step(rng.uniform(-1, 1, size=(3, 2)))
    for i in range(3):
        np.testing.assert_allclose(obs[i], build_observation(engine.spec, engine.world_state(i)), rtol=1e-12)


def test_timeout_truncates(launch_dir: Path) -> None:
    engine = BatchedEngine(build_task(parse_task(declaration(episode_seconds=0.1), str(launch_dir))), 1,
                           seed=0, threads=1)
    engine.reset(seed=0)
    ends = [engine.step(np.zeros((1, 2)))[2:4] for _ in range(5)]
    assert [bool(t[0]) for _, t in ends] == [False] * 4 + [True]
    assert not any(bool(te[0]) for te, _ in ends)


@pytest.mark.parametrize(("changes", "message"), [
    ({"observations": ["joint_position"]},
     "task.observations: unknown term 'joint_position'; valid: joint_pos"),
    ({"rewards": {"alive": math.inf}}, "task.rewards.alive.weight: must be finite"),
    ({"rewards": {"alive": float("nan")}}, "task.rewards.alive.weight: must be finite"),
    ({"rewards": {"base_height": {"weight": -1.0, "hieght": 0.3}}},
     "task.rewards.base_height: unknown key 'hieght'; valid: target, weight"),
    ({"terminations": [{"base_height_below": {}}]},
     "task.terminations.base_height_below: missing option 'height'"),
    ({"joints": ["shoulder", "wrist"]}, "task.joints: the model has no hinge or slide joint 'wrist'; "
                                        "valid: shoulder, elbow"),
    ({"default_pose": {"knee": 0.1}}, "task.default_pose: 'knee' is not a policy joint"),
    ({"control": {"kind": "velocity", "period": 0.02}}, "task.control.kind: 'velocity' is not valid; "
                                                        "choose one of: position, torque"),
    ({"control": {"kind": "position", "kp": 20.0, "period": 0.015}},
     "task.control.period: 0.015 s is not a whole multiple of the model's timestep 0.002 s"),
    ({"control": {"kind": "position", "kp": {"shoulder": 20.0}, "period": 0.02}},
     "task.control.kp: no value for joint 'elbow'"),
    ({"control": {"kind": "torque", "period": 0.02}}, "task.control: torque control needs 'torque_limit'"),
    ({"episode": 10}, "task: unknown key 'episode'; valid: model, floating_base"),
    ({"terminations": [{"base_height_below": {"height": 0.2}}]},
     "task: term 'base_height_below' reads the floating base, but"),
    ({"model": "robots/missing.urdf"}, "task.model: file"),
])
def test_bad_input_is_one_error_naming_the_key(launch_dir: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_task(parse_task(declaration(**changes), str(launch_dir)))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_model_that_does_not_compile_is_named(launch_dir: Path) -> None:
    (launch_dir / "robots" / "mesh.urdf").write_text(URDF.replace(
        '<cylinder radius="0.02" length="0.2"/>', '<mesh filename="meshes/upper.stl"/>'))
    with pytest.raises(ConfigError, match=r"task.model: .*mesh.urdf' does not compile: .*upper.stl"):
        build_task(parse_task(declaration(model="robots/mesh.urdf"), str(launch_dir)))


def test_floating_base_terms_on_a_floating_urdf(launch_dir: Path) -> None:
    task = build_task(parse_task(declaration(
        floating_base=True, observations=["base_ang_vel", "joint_pos"],
        rewards={"alive": 1.0, "base_height": {"weight": -2.0, "target": 0.5}},
        terminations=["timeout", {"base_height_below": {"height": -1.0}}]), str(launch_dir)))
    engine = BatchedEngine(task, 1, seed=0, threads=1)
    engine.reset(seed=0)
    _, reward, terminated, _, _ = engine.step(np.zeros((1, 2)))
    z = engine.world_state(0)["qpos"][2]  # the free joint comes first: x y z of the root body
    np.testing.assert_allclose(reward, [1.0 - 2.0 * (z - 0.5) ** 2], rtol=1e-12)
    assert z < 0.0 and not terminated[0]  # it falls under gravity (no floor), above -1 m after 0.02 s


def test_base_frame_terms_of_the_engine_are_the_ones_built_from_a_world_state(launch_dir: Path) -> None:
    # A floating arm falls and tumbles under random torques: gravity and velocity in a moving base frame.
    task = build_task(parse_task(declaration(
        floating_base=True, observations=["projected_gravity", "base_lin_vel", "base_ang_vel", "joint_pos"],
        control={"kind": "torque", "torque_limit": 5.0, "period": 0.02}), str(launch_dir)))
    engine = BatchedEngine(task, 2, seed=3, threads=1)
    engine.reset(seed=3)
    rng = np.random.default_rng(1)
    for _ in range(10):
        obs, *_ = engine.step(rng.uniform(-1, 1, size=(2, 2)))
    assert engine.spec.goal_fields == ()  # the default pose is the joint_pos term's offset, not a goal
    for i in range(2):
        state = engine.world_state(i)
        np.testing.assert_allclose(obs[i], build_observation(engine.spec, state), rtol=1e-12)
        quat = state["qpos"][3:7]
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, quat)
        rot = mat.reshape(3, 3)
        np.testing.assert_allclose(obs[i][:3], rot.T @ [0, 0, -1], atol=1e-12)
        np.testing.assert_allclose(obs[i][3:6], rot.T @ state["qvel"][:3], atol=1e-12)
    assert np.abs(obs[:, :2]).max() > 1e-3  # it did tilt: the rotation was exercised


def commanded(launch_dir: Path, **changes) -> BatchedEngine:
    task = build_task(parse_task(declaration(**{
        "floating_base": True, "observations": ["command", "base_lin_vel", {"body_pos": {"body": "lower"}}],
        "rewards": {"track_lin_vel_xy": 2.0, "track_ang_vel_z": {"weight": 0.5, "sigma": 0.5},
                    "body_distance": {"weight": -0.1, "body": "lower", "target": [0.0, 0.0, 1.0]}},
        "terminations": ["timeout", {"base_contact": {"body": "upper", "force": 1.0}}],
        "commands": {"lin_vel_x": [-1.0, 1.0], "lin_vel_y": [-0.5, 0.5], "resample_seconds": 0.04},
        **changes}), str(launch_dir)))
    return BatchedEngine(task, 2, seed=11, threads=1)


def test_commands_are_redrawn_from_each_worlds_generator(launch_dir: Path) -> None:
    from gymnasium.utils import seeding

    engine = commanded(launch_dir)
    obs, _ = engine.reset(seed=11)
    ranges = np.array([[-1.0, 1.0], [-0.5, 0.5], [0.0, 0.0]])
    rngs = [seeding.np_random(11 + i)[0] for i in range(2)]
    expected = np.array([rng.uniform(ranges[:, 0], ranges[:, 1]) for rng in rngs])
    np.testing.assert_array_equal(obs[:, :3], expected)
    obs, *_ = engine.step(np.zeros((2, 2)))
    np.testing.assert_array_equal(obs[:, :3], expected)  # 1 of the 2 periods of resample_seconds
    obs, *_ = engine.step(np.zeros((2, 2)))
    redrawn = np.array([rng.uniform(ranges[:, 0], ranges[:, 1]) for rng in rngs])
    np.testing.assert_array_equal(obs[:, :3], redrawn)
    assert not np.array_equal(redrawn, expected)
    assert engine.spec.goal_fields == ("command",)


def test_commanded_reward_and_episode_info_from_the_world_state(launch_dir: Path) -> None:
    engine = commanded(launch_dir, commands={"lin_vel_x": [0.5, 0.5], "ang_vel_z": [0.2, 0.2]})
    engine.reset(seed=2)
    _, reward, terminated, _, _ = engine.step(np.zeros((2, 2)))
    errors = []
    for i in range(2):
        s = engine.world_state(i)
        quat, lin, ang = s["qpos"][3:7], s["qvel"][:3], s["qvel"][3:6]
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, quat)
        v = mat.reshape(3, 3).T @ lin
        lower = engine.worlds[i].data.xpos[3]  # bodies: world, base, upper, lower
        expected = (2.0 * math.exp(-((0.5 - v[0]) ** 2 + v[1] ** 2) / 0.25)
                    + 0.5 * math.exp(-(0.2 - ang[2]) ** 2 / 0.5)
                    - 0.1 * np.linalg.norm(lower - [0.0, 0.0, 1.0]))
        np.testing.assert_allclose(reward[i], expected, rtol=1e-10)
        errors.append(math.hypot(0.5 - v[0], v[1]))
    assert not terminated.any()  # falling freely: nothing touches the arm
    info = engine.task_state.episode_info(0)
    assert info["fell"] is False
    np.testing.assert_allclose(info["velocity_tracking_error"], errors[0], rtol=1e-10)


@pytest.mark.parametrize("changes, message", [
    ({"commands": None}, "task.observations.command: reads the velocity command, but the task has no "
                         "'commands' section"),
    ({"observations": [{"body_pos": {"body": "hand"}}]},
     "task.observations.body_pos.body: the model has no body 'hand'; valid: base, upper, lower"),
    ({"rewards": {"feet_air_time": {"weight": 1.0, "feet": ["foot"]}}},
     "task.rewards.feet_air_time.feet: the model has no body 'foot'"),
    ({"rewards": {"feet_air_time": {"weight": 1.0}}}, "task.rewards.feet_air_time: missing option 'feet' "
                                                      "(list of body names)"),
    ({"rewards": {"body_distance": {"weight": -1.0, "body": "lower", "target": [0, 1]}}},
     "task.rewards.body_distance.target: must be a point [x, y, z] (m)"),
    ({"commands": {"lin_vel_x": [1.0, -1.0]}}, "task.commands.lin_vel_x: low 1.0 is above high -1.0"),
    ({"commands": {"yaw": [0, 1]}}, "task.commands: unknown key 'yaw'; valid: lin_vel_x, lin_vel_y, "
                                    "ang_vel_z, resample_seconds"),
])
def test_bad_command_and_body_terms_are_named(launch_dir: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        commanded(launch_dir, **changes)
    assert message in str(err.value)
