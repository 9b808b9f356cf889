"""The batched engine's own behaviour: the VectorEnv surface, worlds as separate models, thread-count
independence, a task with its own MJCF and a goal, the Randomizer seam of the DR contract (with a
stand-in Randomizer), and bad input (errors that name the problem, nothing left running).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import gymnasium
import mujoco
import numpy as np
import pytest

from robot_rl import sim
from robot_rl.errors import ConfigError
from robot_rl.sim.engine.batched import BatchedEngine
from robot_rl.sim.engine.gymnasium_tasks import TASKS
from robot_rl.sim.engine.task import EngineTask, StepBatch
from robot_rl.spec import ObsTerm

POINT_XML = """<mujoco>
  <option timestep="0.01"/>
  <worldbody>
    <body name="point" pos="0 0 0.1">
      <joint name="x" type="slide" axis="1 0 0" range="-1 1" limited="true" damping="1"/>
      <joint name="y" type="slide" axis="0 1 0" range="-1 1" limited="true" damping="1"/>
      <geom type="sphere" size="0.05" mass="1"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="x" ctrlrange="-1 1"/>
    <motor joint="y" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


def _point_outcome(batch: StepBatch) -> tuple[np.ndarray, np.ndarray]:
    reward = -np.linalg.norm(batch.now["qpos"], axis=1)
    return reward, np.zeros(len(reward), dtype=bool)


def _point_reset(rng: np.random.Generator, qpos0: np.ndarray, qvel0: np.ndarray):
    return qpos0 + rng.uniform(-0.5, 0.5, qpos0.size), qvel0.copy()


def _goal_draw(model, data) -> np.ndarray:
    """A goal 0.3 m from where the point starts, along x (drawn per episode: it follows the reset)."""
    return data.qpos[:2] + np.array([0.3, 0.0])


def _point_task(path, observation=None, **kwargs) -> EngineTask:
    terms = observation or (lambda m: [ObsTerm("qpos", "qpos"), ObsTerm("qvel", "qvel"),
                                       ObsTerm("to_goal", "qpos", relative="position", goal="goal")])
    fields = dict(name="point", mjcf=str(path), frame_skip=2, observation=terms, outcome=_point_outcome,
                  reset=_point_reset, max_episode_steps=20, goals={"goal": _goal_draw})
    fields.update(kwargs)
    return EngineTask(**fields)


@pytest.fixture
def point_xml(tmp_path):
    path = tmp_path / "point.xml"
    path.write_text(POINT_XML)
    return path


# ---------------------------------------------------------------------------------------- the surface


def test_batched_is_a_gymnasium_vector_env_with_the_contract():
    env = sim.make("Hopper-v5", 4, seed=0, vectorization="batched", threads=2)
    try:
        assert isinstance(env, gymnasium.vector.VectorEnv)
        assert env.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
        assert env.observation_space.shape == (4, 11) and env.action_space.shape == (4, 3)
        assert env.task_spec == sim.get_spec("Hopper-v5")
        obs, _ = env.reset()
        assert obs.shape == (4, 11) and obs.dtype == np.float64
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert reward.shape == terminated.shape == truncated.shape == (4,)
        assert reward.dtype == np.float64 and terminated.dtype == bool and truncated.dtype == bool
        world = env.worlds[2]  # the declared interface: one world's model and data
        assert isinstance(world.model, mujoco.MjModel) and isinstance(world.data, mujoco.MjData)
        np.testing.assert_array_equal(obs[2, :5], world.data.qpos[1:])
        assert env.engine.physics_dt == env.task_spec.physics_dt == world.model.opt.timestep
    finally:
        env.close()


def test_every_world_has_its_own_model():
    engine = BatchedEngine(TASKS["Hopper-v5"], 3, seed=0, threads=1)
    try:
        models = [w.model for w in engine.worlds]
        assert len({id(m) for m in models}) == 3 and engine.nominal not in models
        models[1].body_mass[2] *= 2.0
        assert models[0].body_mass[2] == models[2].body_mass[2] == engine.nominal.body_mass[2]
    finally:
        engine.close()


def test_thread_count_does_not_change_the_trajectories():
    runs = []
    for threads in (1, 2, 3):
        env = sim.make("Walker2d-v5", 5, seed=9, vectorization="batched", threads=threads)
        rng = np.random.default_rng(0)
        obs, _ = env.reset()
        trace = [obs]
        for _ in range(60):
            obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, (5, 6)))
            trace += [obs, reward, terminated, truncated]
        env.close()
        runs.append(trace)
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_step_before_reset_and_bad_action_shapes_are_refused():
    env = sim.make("Hopper-v5", 2, seed=0, vectorization="batched", threads=1)
    try:
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros((2, 3)))
        env.reset()
        with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
            env.step(np.zeros((3, 3)))
    finally:
        env.close()


# ---------------------------------------------------------------------------------------- own MJCF, goals


def test_a_task_with_its_own_mjcf_and_a_goal_drawn_per_episode(point_xml):
    engine = BatchedEngine(_point_task(point_xml), 4, seed=5, threads=2)
    try:
        assert engine.spec.goal_fields == ("goal",) and engine.spec.obs_dim == 6
        obs, _ = engine.reset()
        np.testing.assert_allclose(obs[:, 4], -0.3, atol=1e-12)  # start minus goal
        np.testing.assert_allclose(obs[:, 5], 0.0, atol=1e-12)
        goals = engine._goals["goal"].copy()
        for _ in range(5):
            obs, *_ = engine.step(np.ones((4, 2)))
        np.testing.assert_array_equal(engine._goals["goal"], goals)  # fixed within the episode
        qpos = np.stack([w.data.qpos for w in engine.worlds])
        np.testing.assert_allclose(obs[:, 4:], qpos - goals, atol=1e-12)  # measured minus goal
        for _ in range(15):  # the time limit: every world starts a new episode with a new goal
            obs, _, _, truncated, info = engine.step(np.ones((4, 2)))
        assert truncated.all() and info["_final_obs"].all()
        assert not np.allclose(engine._goals["goal"], goals)
    finally:
        engine.close()


# ---------------------------------------------------------------------------------------- randomization seam


@dataclasses.dataclass(frozen=True)
class StandInConfig:
    """What the engine needs of a RandomizationConfig: `.active` (and whatever the Randomizer reads)."""

    delay_steps: int = 0
    active: bool = True


class StandInRandomizer:
    """The contract's Randomizer, reduced to what proves the engine calls it right: a body-mass factor
    drawn per world per episode, a fixed actuation delay, recorded calls, a visible observation offset."""

    def __init__(self, config: StandInConfig, nominal: mujoco.MjModel, physics_dt: float) -> None:
        self.config, self.nominal, self.physics_dt = config, nominal, physics_dt
        self.resets: list[dict] = []
        self.action_calls: list[np.ndarray] = []
        self.obs_calls = 0
        self.pushes = None  # the contract's push term: none here
        self.holds = None  # and its hold term

    def reset_world(self, model, data, rng):
        scale = float(rng.uniform(0.5, 1.5))
        model.body_mass[:] = self.nominal.body_mass * scale  # from the nominal: never compounding
        self.resets.append({"model": model, "data": data, "rng": rng, "qpos": data.qpos.copy(),
                            "time": data.time, "xpos_zero": not data.xpos.any()})
        return {"actuation_delay_steps": self.config.delay_steps, "mass_scale": scale}

    def perturb_actions(self, actions, rng):
        self.action_calls.append(actions.copy())
        return actions

    def perturb_observations(self, obs, rng):
        self.obs_calls += 1
        return obs + 1000.0


def test_the_randomizer_is_called_per_world_per_episode_with_that_worlds_generator():
    engine = BatchedEngine(TASKS["Hopper-v5"], 3, seed=0, threads=1, randomize=StandInConfig(),
                           randomizer_cls=StandInRandomizer)
    try:
        r = engine.randomizer
        assert r.nominal is engine.nominal and r.physics_dt == engine.physics_dt
        obs, info = engine.reset()
        assert len(r.resets) == 3
        for i, call in enumerate(r.resets):
            w = engine.worlds[i]
            assert call["model"] is w.model and call["data"] is w.data and call["rng"] is w.rng
            np.testing.assert_array_equal(call["qpos"], w.data.qpos)  # after the task set the reset state
            assert call["time"] == 0.0 and call["xpos_zero"]  # ... and before mj_forward
            assert info["randomization"]["_mass_scale"][i]  # batched as sync batches its sub-envs' infos
            scale = info["randomization"]["mass_scale"][i]
            np.testing.assert_allclose(w.model.body_mass, engine.nominal.body_mass * scale)
        assert obs.min() > 900.0 and r.obs_calls == 1  # observations go through perturb_observations
        first_scale_1 = info["randomization"]["mass_scale"][1]
        actions = np.full((3, 3), 0.5, dtype=np.float32)
        engine.step(actions)
        assert r.action_calls[-1].shape == (3, 3) and r.action_calls[-1].dtype == np.float64
        engine.worlds[1].data.qpos[1] = -5.0  # make world 1 fall: its next episode draws again
        *_, terminated, _, info = engine.step(actions)
        assert terminated[1] and len(r.resets) == 4 and r.resets[-1]["model"] is engine.worlds[1].model
        assert info["final_info"]["randomization"]["mass_scale"][1] == first_scale_1  # the ended episode's
        assert info["final_info"]["randomization"]["_mass_scale"].tolist() == [False, True, False]
        new_scale = engine.worlds[1].randomization["mass_scale"]
        assert info["randomization"]["mass_scale"][1] == new_scale  # the new episode's, at its start
        assert new_scale != first_scale_1
        np.testing.assert_allclose(engine.worlds[1].model.body_mass, engine.nominal.body_mass * new_scale)
    finally:
        engine.close()


def _manual_period(model, data, held, ctrl, delay, nstep):
    data.ctrl[:] = held
    if delay:
        mujoco.mj_step(model, data, delay)
    data.ctrl[:] = ctrl
    mujoco.mj_step(model, data, nstep - delay)


def test_the_actuation_delay_holds_the_previous_command_for_its_physics_steps():
    task = TASKS["Hopper-v5"]
    delayed = BatchedEngine(task, 2, seed=4, threads=1, randomize=StandInConfig(delay_steps=3),
                            randomizer_cls=StandInRandomizer)
    plain = BatchedEngine(task, 2, seed=4, threads=1, randomize=StandInConfig(delay_steps=0),
                          randomizer_cls=StandInRandomizer)
    try:
        delayed.reset()
        plain.reset()
        w = delayed.worlds[0]
        replica = mujoco.MjData(w.model)
        replica.qpos[:], replica.qvel[:] = w.data.qpos, w.data.qvel
        mujoco.mj_forward(w.model, replica)
        held = np.zeros(3)
        rng = np.random.default_rng(1)
        for _ in range(4):
            actions = rng.uniform(-1, 1, (2, 3))
            delayed.step(actions)
            plain.step(actions)
            ctrl = delayed._ctrl[0].copy()
            _manual_period(w.model, replica, held, ctrl, 3, task.frame_skip)
            held = ctrl
            np.testing.assert_allclose(w.data.qpos, replica.qpos, rtol=0, atol=1e-12)
        assert not np.allclose(w.data.qpos, plain.worlds[0].data.qpos)  # the delay changed the motion
    finally:
        delayed.close()
        plain.close()


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("num_envs", [0, -1, True, 2.5])
def test_num_envs_must_be_positive(num_envs):
    with pytest.raises(ConfigError, match="num_envs"):
        sim.make("Hopper-v5", num_envs, vectorization="batched")


@pytest.mark.parametrize("threads", [0, -2, True, 1.5])
def test_threads_must_be_positive(threads):
    before = threading.active_count()
    with pytest.raises(ConfigError, match="threads"):
        sim.make("Hopper-v5", 4, vectorization="batched", threads=threads)
    assert threading.active_count() == before


def test_threads_is_refused_where_nothing_steps_on_threads():
    with pytest.raises(ConfigError, match="threads: only the batched"):
        sim.make("Hopper-v5", 2, vectorization="sync", threads=2)


def test_a_task_not_on_the_engine_is_refused_with_the_ones_that_are():
    with pytest.raises(ConfigError, match=r"'CartPole-v1' is not one of them.*Hopper-v5"):
        sim.make("CartPole-v1", 2, vectorization="batched")


def test_an_mjcf_that_does_not_load_names_the_file_and_quotes_mujoco(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body><geom type='sphere'/></body></worldbody><bogus/></mujoco>")
    before = threading.active_count()
    with pytest.raises(ConfigError, match=r"bad\.xml.*does not load.*(unrecognized|Schema)") as err:
        BatchedEngine(_point_task(bad), 4, threads=2)
    assert "bogus" in str(err.value)  # MuJoCo's own message names the element
    with pytest.raises(ConfigError, match=r"missing\.xml.*does not exist"):
        BatchedEngine(_point_task(tmp_path / "missing.xml"), 4, threads=2)
    assert threading.active_count() == before  # no pool was started


def test_a_spec_naming_a_field_the_model_lacks_is_refused_before_anything_starts(point_xml):
    before = threading.active_count()
    missing = _point_task(point_xml, observation=lambda m: [ObsTerm("force", "sensordata")])
    with pytest.raises(ConfigError, match=r"term 'force' reads 'sensordata'.*qpos"):
        BatchedEngine(missing, 4, threads=2)
    out_of_range = _point_task(point_xml, observation=lambda m: [ObsTerm("z", "qpos", (7,))])
    with pytest.raises(ConfigError, match=r"does not fit its model.*index 7 is out of range"):
        BatchedEngine(out_of_range, 4, threads=2)
    no_goal = _point_task(point_xml, goals={})
    with pytest.raises(ConfigError, match="relative to goal 'goal', which the task does not draw"):
        BatchedEngine(no_goal, 4, threads=2)
    assert threading.active_count() == before


def test_a_nan_action_ends_only_that_worlds_episode():
    env = sim.make("Hopper-v5", 3, seed=2, vectorization="batched", threads=2)
    ref = sim.make("Hopper-v5", 3, seed=2, vectorization="batched", threads=2)
    try:
        env.reset()
        ref.reset()
        actions = np.full((3, 3), 0.1)
        env.step(actions)
        ref.step(actions)
        bad = actions.copy()
        bad[1, 2] = np.nan
        obs, reward, terminated, truncated, info = env.step(bad)
        obs_ref, reward_ref, *_ = ref.step(actions)
        assert terminated.tolist() == [False, True, False] and not truncated.any()
        assert reward[1] == 0.0 and np.isfinite(obs).all()
        assert info["final_info"]["physics_failure"].tolist() == [False, True, False]
        assert np.isfinite(info["final_obs"][1]).all()
        np.testing.assert_array_equal(obs[[0, 2]], obs_ref[[0, 2]])  # the other worlds go on untouched
        np.testing.assert_array_equal(reward[[0, 2]], reward_ref[[0, 2]])
        obs, reward, terminated, *_ = env.step(actions)  # world 1 runs its new episode
        assert np.isfinite(obs).all() and not terminated[1]
    finally:
        env.close()
        ref.close()


def _os_threads() -> set[int]:
    """This process's thread ids, Python's and native ones (MuJoCo's batch runs its own)."""
    return {int(t) for t in os.listdir("/proc/self/task")}


@pytest.mark.parametrize("stepping", ["batch", "pool"])
def test_close_stops_the_stepping_threads(stepping, monkeypatch):
    if stepping == "pool":  # the per-world path on Python threads (a twin's physics, or no mujoco.batch)
        monkeypatch.setattr("robot_rl.sim.engine.batched.batch_available", lambda: False)
    before = _os_threads()
    env = sim.make("Hopper-v5", 4, seed=0, vectorization="batched", threads=2)
    env.reset()
    env.step(np.zeros((4, 3)))
    started = _os_threads() - before  # the engine's own (another test's thread may end meanwhile)
    assert started
    qpos = env.engine.worlds[1].data.qpos.copy()
    env.close()
    env.close()
    deadline = time.monotonic() + 5.0
    while started & _os_threads() and time.monotonic() < deadline:  # a thread ends just after its join
        time.sleep(0.01)
    assert not started & _os_threads()
    np.testing.assert_array_equal(env.engine.worlds[1].data.qpos, qpos)  # the world's data stays current


# ---------------------------------------------------------------------------------------- launch files


def test_a_launch_file_chooses_the_batched_engine_and_its_threads():
    from robot_rl.launch import parse_train_config

    config = parse_train_config({"task": "Hopper-v5", "algo": "ppo", "num_envs": 16,
                                 "vectorization": "batched", "env_threads": 2})
    assert config.vectorization == "batched" and config.env_threads == 2
    for bad, message in (({"vectorization": "batched", "env_threads": 0}, "env_threads: must be >= 1"),
                         ({"env_threads": 2}, "env_threads: sets the batched engine's threads, but "
                                              "vectorization is 'sync'")):
        with pytest.raises(ConfigError, match=message):
            parse_train_config({"task": "Hopper-v5", "algo": "ppo", **bad})


def test_a_batched_run_of_a_task_off_the_engine_fails_before_its_run_dir_exists(tmp_path):
    from robot_rl.cli import main

    launch = tmp_path / "grid.yaml"
    launch.write_text("task: grid:book\nalgo: dqn\nvectorization: batched\n")
    assert main(["train", str(launch), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------- hardware backend


def test_the_mujoco_backend_runs_an_engine_task_as_one_engine_world():
    from robot_rl.hardware.mujoco_robot import make_robot

    spec = sim.get_spec("Hopper-v5")
    robot = make_robot(spec, {"realtime": False, "seed": 3})
    reference = sim.make_env("Hopper-v5", seed=3)
    try:
        robot.configure()
        world = robot._engine.worlds[0]  # the declared interface, not an env's attributes
        assert robot._model is world.model and robot._data is world.data and robot.spec == spec
        state = robot.activate()
        obs, _ = reference.reset(seed=3)
        np.testing.assert_array_equal(np.concatenate([state.fields["qpos"][1:], state.fields["qvel"]]), obs)
        command = np.array([0.5, -0.5, 0.5])
        steps = 0
        while not robot.episode_over:
            robot.write_command(command)
            obs, reward, terminated, _, _ = reference.step(command)  # ctrlrange is [-1, 1]: the same units
            assert robot.last_reward == reward
            steps += 1
        assert terminated and steps < 1000  # it falls; the engine did not start a new episode
        final = robot.read_state()
        measured = np.concatenate([final.fields["qpos"][1:], np.clip(final.fields["qvel"], -10, 10)])
        np.testing.assert_allclose(measured, obs, atol=1e-12)  # the final state, not a new episode's
        with pytest.raises(Exception, match="episode has ended"):
            robot.write_command(command)
    finally:
        robot.close()
        reference.close()


def test_batched_refuses_a_delay_longer_than_one_control_period_as_sync_does() -> None:
    from robot_rl.sim.randomization import RandomizationConfig

    too_long = RandomizationConfig(actuation_delay=(0.0, 0.1))  # Hopper's period is 0.008 s
    for vectorization in ("batched", "sync"):
        with pytest.raises(ConfigError, match=r"randomize\.actuation_delay: task 'Hopper-v5' cannot take it"):
            sim.make("Hopper-v5", 2, seed=0, vectorization=vectorization, randomize=too_long)
