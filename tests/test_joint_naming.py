"""Every MuJoCo task's spec names the joints a driver must publish (`state_joints`) exactly as the sim
bridge publishes them (sim/joint_naming.py), so a freshly exported bundle reads a robot's JointState by
name. Without ROS: the decoder the policy node and the ros2 backend share does the reading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.hardware.ros2_robot import JointStateDecoder
from robot_rl.policies import load
from robot_rl.sim.engine.gymnasium_tasks import TASKS as ENGINE_TASKS
from robot_rl.sim.engine.task import build_spec, load_model
from robot_rl.sim.joint_naming import joint_layout, spec_state_joints
from robot_rl.sim.locomotion import OBSERVATIONS, LocomotionEnv

ROOT = Path(__file__).resolve().parents[1]


def _bridge_message(model, data, rng: np.random.Generator):
    """The sim bridge's JointState for `data` (names, positions, velocities), shuffled, with an extra
    joint a whole robot would also publish."""
    layout = joint_layout(model)
    pos = data.qpos[layout.qpos]
    vel = np.where(layout.qvel >= 0, data.qvel[np.maximum(layout.qvel, 0)], 0.0)
    names = [*layout.names, "gripper"]
    pos, vel = np.append(pos, 0.7), np.append(vel, -0.3)
    order = rng.permutation(len(names))
    return [names[i] for i in order], pos[order], vel[order]


def _decoded_state_matches(spec, model, data, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data.qpos[:] = rng.uniform(-0.5, 0.5, model.nq)
    data.qvel[:] = rng.uniform(-2.0, 2.0, model.nv)
    names, pos, vel = _bridge_message(model, data, rng)
    state = JointStateDecoder(spec.joint_names, spec.state_fields, spec.state_joints).decode(
        names, pos, vel, 0.0, 1)
    assert state is not None
    np.testing.assert_array_equal(state.fields["qpos"], data.qpos)  # by name, whatever the order
    np.testing.assert_array_equal(state.fields["qvel"], data.qvel)


@pytest.mark.parametrize("task_id", sorted(OBSERVATIONS))
def test_gymnasium_task_specs_name_the_joints_the_bridge_publishes(task_id):
    env = LocomotionEnv(task_id)
    try:
        spec, model = env.task_spec, env.model
        assert list(spec.state_joints) == joint_layout(model).names
        assert set(spec.joint_names) <= set(spec.state_joints)  # the commanded joints are among them
        _decoded_state_matches(spec, model, env.data, seed=len(task_id))
    finally:
        env.close()


@pytest.mark.parametrize("task_id", sorted(ENGINE_TASKS))
def test_engine_task_specs_name_the_joints_the_bridge_publishes(task_id):
    import mujoco

    task = ENGINE_TASKS[task_id]
    model = load_model(task)
    spec = build_spec(task, model)
    assert list(spec.state_joints) == joint_layout(model).names
    _decoded_state_matches(spec, model, mujoco.MjData(model), seed=len(task_id))


def test_free_and_ball_joints_are_spelled_by_their_parts_and_a_spec_without_qpos_names_none():
    import mujoco

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><freejoint name='base'/><geom size='.1'/>"
        "<body><joint name='neck' type='ball'/><geom size='.1'/>"
        "<body><joint name='elbow'/><geom size='.1'/></body></body></body></worldbody></mujoco>")
    layout = joint_layout(model)
    assert layout.names == ["base:x", "base:y", "base:z", "base:qw", "base:qx", "base:qy", "base:qz",
                            "neck:qw", "neck:qx", "neck:qy", "neck:qz", "elbow"]
    assert layout.qpos.tolist() == list(range(12)) and layout.free == (0, 0)
    assert layout.qvel.tolist() == [0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, 9]
    assert spec_state_joints(model, {"qvel": 10}) == tuple(layout.names)
    assert spec_state_joints(model, {"xpos": 12}) == ()  # a spec reading neither qpos nor qvel


@pytest.mark.parametrize("vectorization", ["batched", "sync"])
def test_a_freshly_trained_and_exported_bundle_names_the_bridge_joints(tmp_path, capsys, vectorization):
    """`robot-rl train` (2048 steps) then `robot-rl export`: the manifest's state_joints are the sim
    bridge's names (engine tasks through build_spec, the others through locomotion_spec), and the
    bundle's policy answers a shuffled JointState with an extra joint as it answers the true state."""
    import mujoco

    run, out = tmp_path / "run", tmp_path / "bundle"
    assert main(["train", str(ROOT / "launch" / "hopper_ppo.yaml"), "--set", "total_steps=2048",
                 "--set", f"vectorization={vectorization}", "--set", "log.progress_bar=false",
                 "--set", "log.plot=false", "--set", "log.tensorboard=false", "--set", "eval.episodes=1",
                 "--out", str(run), "--json"]) == 0
    assert main(["export", str(run), "--out", str(out), "--episodes", "0", "--no-onnx"]) == 0
    capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())
    model = LocomotionEnv("Hopper-v5").model
    assert manifest["task_spec"]["state_joints"] == joint_layout(model).names == [
        "rootx", "rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint"]
    policy = load(str(out))
    spec = policy.spec
    data = mujoco.MjData(model)
    _decoded_state_matches(spec, model, data, seed=3)
    names, pos, vel = _bridge_message(model, data, np.random.default_rng(4))
    state = JointStateDecoder(spec.joint_names, spec.state_fields, spec.state_joints).decode(
        names, pos, vel, 0.0, 1)
    truth = {"qpos": data.qpos.copy(), "qvel": data.qvel.copy()}
    np.testing.assert_array_equal(policy.act(state.observation_fields()), policy.act(truth))
