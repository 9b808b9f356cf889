"""Every registered task passes the same conformance tests (as dm_control's suite test does).

Spec validity and round trip, spaces, timing, seeding, reset randomisation, and the contract that
matters for deployment: the observation built through the spec from `robot_state()` equals the
simulator's own (Gymnasium's `_get_obs`, dm_control's flattened observation dict). Then the episode
ends, physics failures, the vector env's SAME_STEP autoreset with the real final observation, and
the registry's errors.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import dm_env
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robot_rl import sim
from robot_rl.errors import ConfigError
from robot_rl.sim.atari import ale_available
from robot_rl.sim.classic_control import TASKS as CLASSIC_TASKS
from robot_rl.sim.classic_control import box2d_available
from robot_rl.sim.locomotion import OBSERVATIONS as LOCOMOTION_TASKS
from robot_rl.sim.shadow_hand import TASK_IDS as SHADOW_TASKS
from robot_rl.sim.shadow_hand import robotics_available
from robot_rl.spec import TaskSpec, action_to_robot, build_observation

get_spec, make, make_env = sim.get_spec, sim.make, sim.make_env
_NEEDS_BOX2D = pytest.mark.skipif(not box2d_available(), reason='needs Box2D: pip install "gymnasium[box2d]"')
_NEEDS_ALE = pytest.mark.skipif(not ale_available(), reason="needs ale-py: pip install ale-py")
_NEEDS_ROBOTICS = pytest.mark.skipif(not robotics_available(),
                                     reason="needs gymnasium-robotics: pip install 'robot-rl[robotics]'")


def _optional(task: str):
    """LunarLander, the Atari games and the Shadow Hand run only where their optional package is installed."""
    if task == "LunarLander-v3":
        return pytest.param(task, marks=_NEEDS_BOX2D)
    if task in SHADOW_TASKS:
        return pytest.param(task, marks=_NEEDS_ROBOTICS)
    if task.startswith("atari:"):
        return pytest.param(task, marks=_NEEDS_ALE)
    return task


ALL = [_optional(t) for t in sim.task_names()]
LOCOMOTION = [t for t in sim.task_names() if t in LOCOMOTION_TASKS]
DM_CONTROL = [t for t in sim.task_names() if t.startswith("dmc:")]
CONTINUOUS = LOCOMOTION + DM_CONTROL
CLASSIC = [p for p in ALL if getattr(p, "values", (p,))[0] in CLASSIC_TASKS]
GRIDS = [t for t in sim.task_names() if t.startswith("grid:")]
ATARI = [_optional(t) for t in sim.task_names() if t.startswith("atari:")]
DISCRETE = CLASSIC + GRIDS + ATARI

# Gymnasium's documented observation sizes of the v5 tasks with default arguments.
GYMNASIUM_OBS_DIM = {"InvertedPendulum-v5": 4, "InvertedDoublePendulum-v5": 9, "Hopper-v5": 11,
                     "HalfCheetah-v5": 17, "Walker2d-v5": 17, "Ant-v5": 105, "Humanoid-v5": 348,
                     "Reacher-v5": 10, "Swimmer-v5": 8, "Pusher-v5": 23}


@pytest.fixture(scope="module")
def envs():
    """One env per task, made on first use and shared by the module's tests."""
    cache = {}

    def get(task):
        if task not in cache:
            cache[task] = make_env(task, seed=0)
        return cache[task]

    yield get
    for env in cache.values():
        env.close()


def _actions(task: str, n: int, seed: int = 0) -> np.ndarray:
    """n random actions: `(n, act_dim)` in [-1, 1], or `(n,)` indices for a discrete task."""
    spec, rng = get_spec(task), np.random.default_rng(seed)
    if spec.action.is_discrete:
        return rng.integers(spec.action.num_actions, size=n)
    return rng.uniform(-1.0, 1.0, size=(n, spec.act_dim))


def test_registry_lists_the_briefed_tasks():
    assert set(sim.task_names()) == {
        "InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5",
        "Ant-v5", "Humanoid-v5", "Reacher-v5", "Swimmer-v5", "Pusher-v5", "dmc:cheetah-run",
        "dmc:walker-walk", "dmc:cartpole-swingup",
        "CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3", "grid:book", "grid:bridge",
        "grid:cliff", "grid:cliff2", "grid:discount", "grid:maze", "atari:pong", "atari:breakout",
        "cube:rotate-z", "cube:reorient", "quadruped-walk", *SHADOW_TASKS}


# ---------------------------------------------------------------------------------------- every task


@pytest.mark.parametrize("task", ALL)
def test_spec_validates_and_round_trips(task, envs):
    spec = get_spec(task)
    assert isinstance(spec, TaskSpec) and spec.name == task
    text = json.dumps(spec.to_dict(), allow_nan=False)
    assert TaskSpec.from_dict(json.loads(text)) == spec
    assert envs(task).unwrapped.task_spec == spec  # a fresh env declares the same spec


@pytest.mark.parametrize("task", CONTINUOUS)
def test_dims_match_the_spaces(task, envs):
    env, spec = envs(task), get_spec(task)
    assert env.observation_space.shape == (spec.obs_dim,)
    assert env.action_space.shape == (spec.act_dim,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    assert len(spec.joint_names) == len(spec.joint_limits) == spec.act_dim
    obs, _ = env.reset()
    assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float64
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.shape == (spec.obs_dim,) and isinstance(reward, float)
    assert isinstance(terminated, bool) and isinstance(truncated, bool)


@pytest.mark.parametrize("task", ALL)
def test_control_period_is_a_whole_number_of_physics_steps(task, envs):
    spec, env = get_spec(task), envs(task).unwrapped
    steps = spec.control_period / spec.physics_dt
    assert round(steps) >= 1 and abs(steps - round(steps)) < 1e-9
    assert spec.physics_steps == round(steps)
    if task in LOCOMOTION:
        assert spec.control_period == pytest.approx(env.simulator.dt, rel=1e-12)
        assert spec.physics_dt == env.simulator.model.opt.timestep
    elif task in DM_CONTROL:
        assert spec.control_period == pytest.approx(env.dm_env.control_timestep(), rel=1e-12)
        assert spec.physics_dt == env.dm_env.physics.timestep()
    else:  # Gymnasium's own step lengths (MountainCar and the grids have no clock: 1 s)
        period = {"CartPole-v1": 0.02, "Acrobot-v1": 0.2, "LunarLander-v3": 1 / 50}.get(task, 1.0)
        physics_dt = 1 / 60 if task.startswith("atari:") else period  # the console's 60 Hz frames
        if task.startswith("cube:"):  # the hand's servos at 20 Hz over 5 ms physics steps
            period, physics_dt = 0.05, 0.005
        if task in SHADOW_TASKS:  # gymnasium-robotics' hand: 20 substeps of 2 ms
            assert (env.simulator.dt, env.simulator.model.opt.timestep) == pytest.approx((0.04, 0.002))
            period, physics_dt = 0.04, 0.002
        if task == "quadruped-walk":  # 50 Hz over 4 ms physics steps (sim/assets/quadruped_walk.yaml)
            period, physics_dt = 0.02, 0.004
        period = 4 * physics_dt if task.startswith("atari:") else period  # 4 frames per step
        assert spec.control_period == pytest.approx(period, rel=1e-12)
        assert spec.physics_dt == pytest.approx(physics_dt, rel=1e-12)


@pytest.mark.parametrize("task", ALL)
def test_same_seed_same_trajectory_other_seed_differs(task):
    a, b = make_env(task, seed=7), make_env(task, seed=7)
    first_a, _ = a.reset()
    first_b, _ = b.reset()
    np.testing.assert_array_equal(first_a, first_b)
    for action in _actions(task, 15):
        step_a, step_b = a.step(action), b.step(action)
        np.testing.assert_array_equal(step_a[0], step_b[0])
        assert step_a[1:4] == step_b[1:4]
        if step_a[2] or step_a[3]:
            break
    np.testing.assert_array_equal(a.reset(seed=7)[0], first_a)  # reset(seed=...) reseeds
    if not task.startswith(("grid:", "atari:")):  # fixed first frame; the seed drives what follows
        assert not np.array_equal(a.reset(seed=8)[0], first_a)  # reset is randomised
    a.close()
    b.close()


@pytest.mark.parametrize("task", ALL)
def test_gymnasium_env_checker_passes(task, envs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite Box bounds and no EnvSpec: Gymnasium only warns
        check_env(envs(task).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("task", CONTINUOUS)
def test_action_reaches_the_actuators_through_the_spec(task, envs):
    env, spec = envs(task), get_spec(task)
    env.reset(seed=1)
    action = _actions(task, 1, seed=3)[0]
    env.step(action)
    u = env.unwrapped
    data = u.simulator.data if task in LOCOMOTION else u.dm_env.physics.data
    np.testing.assert_allclose(data.ctrl, action_to_robot(spec, action), rtol=1e-12)
    env.step(np.ones(spec.act_dim))
    np.testing.assert_allclose(data.ctrl, spec.action.high, rtol=1e-12)


# ---------------------------------------------------------------------------------------- observations


@pytest.mark.parametrize("task", LOCOMOTION)
def test_observation_equals_gymnasium(task, envs):
    env = envs(task)
    sim = env.unwrapped.simulator
    spec = get_spec(task)
    assert GYMNASIUM_OBS_DIM[task] == spec.obs_dim == sim.observation_space.shape[0]
    obs, _ = env.reset(seed=11)
    np.testing.assert_allclose(obs, sim._get_obs(), rtol=1e-12, atol=1e-12)
    steps = 150 if task == "Humanoid-v5" else 300
    resets = 0
    for action in _actions(task, steps, seed=5):
        obs, _, terminated, truncated, _ = env.step(action)
        np.testing.assert_allclose(obs, sim._get_obs(), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(obs, build_observation(spec, env.unwrapped.robot_state()))
        if terminated or truncated:
            obs, _ = env.reset()
            np.testing.assert_allclose(obs, sim._get_obs(), rtol=1e-12, atol=1e-12)
            resets += 1
    if task in ("Hopper-v5", "Walker2d-v5"):
        assert resets > 0  # random actions make them fall: the reset observation was checked too


@pytest.mark.parametrize("task", DM_CONTROL)
def test_observation_equals_flattened_dm_control_observation(task, envs):
    from dm_control.rl.control import flatten_observation

    env = envs(task)
    u = env.unwrapped
    assert [t.source for t in u.task_spec.observation] == list(u.dm_env.observation_spec())
    env.reset(seed=2)
    for action in _actions(task, 100, seed=4):
        obs, *_ = env.step(action)
        expected = flatten_observation(u.timestep.observation)["observations"]
        np.testing.assert_allclose(obs, expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(obs, build_observation(u.task_spec, u.robot_state()))


@pytest.mark.parametrize("task", CLASSIC)
def test_discrete_observation_and_dynamics_equal_gymnasium(task):
    """Step for step under the same seed and actions: Gymnasium's obs (float32), reward, episode end."""
    import gymnasium

    ours, ref = make_env(task, seed=3), gymnasium.make(task)
    spec = get_spec(task)
    assert ours.observation_space.shape == ref.observation_space.shape == (spec.obs_dim,)
    assert ours.action_space == ref.action_space == gymnasium.spaces.Discrete(spec.action.num_actions)
    obs, _ = ours.reset()
    expected, _ = ref.reset(seed=3)
    np.testing.assert_allclose(obs, expected, rtol=1e-6, atol=1e-7)
    ends = 0
    for action in _actions(task, 600, seed=4):
        obs, reward, terminated, truncated, _ = ours.step(float(action))  # as `evaluate` passes it
        expected, r, term, trunc, _ = ref.step(int(action))
        assert obs.dtype == np.float64 and isinstance(reward, float)
        np.testing.assert_allclose(obs, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(obs, build_observation(spec, ours.unwrapped.robot_state()))
        assert (reward, terminated, truncated) == pytest.approx((r, term, trunc), rel=1e-12)
        if terminated or truncated:
            ends += 1
            obs, _ = ours.reset()
            np.testing.assert_allclose(obs, ref.reset()[0], rtol=1e-6, atol=1e-7)
    assert ends > 0  # random actions end episodes (or reach the time limit): the resets were checked
    ours.close()
    ref.close()


@pytest.mark.parametrize("task", GRIDS)
def test_grid_observation_is_the_one_hot_state_of_the_grid_env(task):
    from robot_rl.sim.gridworld import make_grid_env

    ours, ref = make_env(task, seed=5), make_grid_env(task.removeprefix("grid:"))
    spec = get_spec(task)
    num_states = ref.unwrapped.mdp.num_states
    assert spec.obs_dim == num_states and spec.action.num_actions == 4
    assert ours.action_space.n == ref.action_space.n == 4
    obs, _ = ours.reset()
    index, _ = ref.reset(seed=5)
    np.testing.assert_array_equal(obs, np.eye(num_states)[index])
    for action in _actions(task, 300, seed=6):
        obs, reward, terminated, truncated, _ = ours.step(action)
        index, r, term, trunc, _ = ref.step(int(action))
        np.testing.assert_array_equal(obs, np.eye(num_states)[index])
        assert (reward, terminated, truncated) == (r, term, trunc)
        if terminated or truncated:
            obs, _ = ours.reset()
            np.testing.assert_array_equal(obs, np.eye(num_states)[ref.reset()[0]])
    ours.close()


@pytest.mark.parametrize("task", DISCRETE)
def test_discrete_action_spec_is_an_index(task, envs):
    spec = get_spec(task)
    n = spec.action.num_actions
    assert spec.action.kind == "discrete" and spec.act_dim == 1 and spec.joint_names == ("action",)
    np.testing.assert_array_equal(action_to_robot(spec, np.arange(n, dtype=np.float32)), np.arange(n))
    env = envs(task)
    env.reset(seed=0)
    for bad in (n, -1, 0.5, np.nan):
        with pytest.raises(ValueError, match="index"):
            env.step(bad)


def test_vector_discrete_task_takes_index_actions():
    vec = make("CartPole-v1", num_envs=3, seed=0)
    try:
        obs, _ = vec.reset()
        assert obs.shape == (3, 4) and obs.dtype == np.float64
        obs, reward, terminated, truncated, _ = vec.step(np.array([0, 1, 1]))
        assert obs.shape == (3, 4) and reward.shape == terminated.shape == truncated.shape == (3,)
    finally:
        vec.close()


# ---------------------------------------------------------------------------------------- specs


def test_locomotion_spec_reads_the_model(envs):
    for task in LOCOMOTION:
        spec, model = get_spec(task), envs(task).unwrapped.simulator.model
        joints = [model.joint(int(j)).name for j in model.actuator_trnid[:, 0]]
        assert list(spec.joint_names) == joints
        for (lo, hi), j in zip(spec.joint_limits, model.actuator_trnid[:, 0], strict=True):
            expected = tuple(model.jnt_range[j]) if model.jnt_limited[j] else (-math.inf, math.inf)
            assert (lo, hi) == expected
        np.testing.assert_array_equal(spec.action.low, model.actuator_ctrlrange[:, 0])
        np.testing.assert_array_equal(spec.action.high, model.actuator_ctrlrange[:, 1])
        assert spec.action.kind == "torque"
    hopper = get_spec("Hopper-v5")  # hand values from hopper.xml (degrees there)
    assert hopper.joint_names == ("thigh_joint", "leg_joint", "foot_joint")
    assert hopper.joint_limits[0] == pytest.approx((-150 * math.pi / 180, 0.0))
    assert hopper.joint_limits[2] == pytest.approx((-math.pi / 4, math.pi / 4))
    assert hopper.control_period == pytest.approx(0.008)
    pendulum = get_spec("InvertedPendulum-v5")
    assert pendulum.joint_names == ("slider",) and pendulum.joint_limits == ((-1.0, 1.0),)
    for action, force in ((-1.0, -3.0), (0.0, 0.0), (1.0, 3.0)):  # ctrlrange -3..3
        np.testing.assert_array_equal(action_to_robot(pendulum, [action]), [force])
    assert get_spec("Humanoid-v5").action.high == (0.4,) * 17


def test_other_suite_task_resolves_and_maps_onto_action_spec_bounds():
    spec = get_spec("dmc:pendulum-swingup")
    assert spec.obs_dim == 3 and spec.act_dim == 1 and spec.joint_names == ("hinge",)
    env = make_env("dmc:quadruped-walk", seed=0)  # position servos, bounds not [-1, 1]
    u = env.unwrapped
    assert u.task_spec.action.kind == "position"
    bounds = u.dm_env.action_spec()
    env.reset()
    middle = (bounds.minimum + bounds.maximum) / 2
    for a, expected in ((-1.0, bounds.minimum), (1.0, bounds.maximum), (0.0, middle)):
        env.step(np.full(u.task_spec.act_dim, a))
        np.testing.assert_allclose(u.dm_env.physics.data.ctrl, expected, rtol=1e-12)
    env.close()


# ---------------------------------------------------------------------------------------- episode ends


def test_dm_control_discount_maps_to_terminated_or_truncated():
    from robot_rl.sim.dm_control_tasks import episode_end

    assert episode_end(dm_env.termination(reward=1.0, observation={})) == (True, False)
    assert episode_end(dm_env.truncation(reward=1.0, observation={})) == (False, True)
    assert episode_end(dm_env.transition(reward=1.0, observation={})) == (False, False)


def test_dm_control_time_limit_is_a_truncation():
    env = make_env("dmc:cartpole-swingup", seed=0)  # dm_control's own limit: 1000 steps of 0.01 s
    env.reset()
    zero = np.zeros(1)
    for i in range(1, 1001):
        _, _, terminated, truncated, info = env.step(zero)
        assert not terminated
        assert truncated == (i == 1000)
    assert info["discount"] == 1.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(zero)
    env.close()


def test_locomotion_physics_failure_ends_the_episode(envs):
    env = envs("Hopper-v5")
    sim = env.unwrapped.simulator
    env.reset(seed=0)
    sim.set_state(sim.data.qpos, np.full(sim.model.nv, 1e30))  # MuJoCo will find the state unstable
    obs, reward, terminated, truncated, info = env.step(np.zeros(3))
    assert terminated and not truncated and info["physics_failure"]
    assert np.isfinite(obs).all() and reward == 0.0
    env.reset()
    _, reward, terminated, _, info = env.step(np.full(3, np.nan))  # a NaN command is a failure too
    assert terminated and info["physics_failure"] and reward == 0.0
    obs, _ = env.reset()
    assert "physics_failure" not in env.step(np.zeros(3))[4]


def test_dm_control_physics_failure_ends_the_episode(envs):
    env = envs("dmc:cartpole-swingup")
    u = env.unwrapped
    before, _ = env.reset(seed=0)
    u.dm_env.physics.data.qvel[:] = 1e30
    obs, reward, terminated, truncated, info = env.step(np.zeros(1))
    assert terminated and not truncated and info["physics_failure"] and reward == 0.0
    np.testing.assert_array_equal(obs, before)  # the last good observation
    env.reset()
    assert not env.step(np.zeros(1))[2]


# ---------------------------------------------------------------------------------------- vector env


@pytest.mark.parametrize("vectorization", ["sync", "async", "batched"])
def test_vector_truncation_hands_over_the_real_final_observation(vectorization):
    task, n, limit = "InvertedPendulum-v5", 3, 4
    vec = make(task, num_envs=n, seed=10, vectorization=vectorization, max_episode_steps=limit)
    refs = [make_env(task, seed=10 + i, max_episode_steps=limit) for i in range(n)]
    try:
        obs, _ = vec.reset()
        assert obs.shape == (n, 4) and obs.dtype == np.float64
        np.testing.assert_array_equal(obs, np.stack([r.reset()[0] for r in refs]))
        zero = np.zeros((n, 1), dtype=np.float32)
        for step in range(1, limit + 1):
            obs, reward, terminated, truncated, info = vec.step(zero)
            ref = [r.step(zero[0]) for r in refs]
            assert reward.shape == terminated.shape == truncated.shape == (n,)
            assert not terminated.any()
            if step < limit:
                assert not truncated.any() and "final_obs" not in info
                np.testing.assert_array_equal(obs, np.stack([r[0] for r in ref]))
        assert truncated.all() and info["_final_obs"].all()
        for i in range(n):
            np.testing.assert_array_equal(info["final_obs"][i], ref[i][0])  # the real last observation
            np.testing.assert_array_equal(obs[i], refs[i].reset()[0])  # SAME_STEP: already reset
            assert not np.array_equal(obs[i], info["final_obs"][i])
    finally:
        vec.close()
        for r in refs:
            r.close()


def test_vector_dm_control_shapes_and_spec():
    vec = make("dmc:cartpole-swingup", num_envs=2, seed=0)
    try:
        assert vec.task_spec == get_spec("dmc:cartpole-swingup")
        obs, _ = vec.reset()
        assert obs.shape == (2, 5)
        obs, reward, terminated, _, _ = vec.step(vec.action_space.sample())
        assert obs.shape == (2, 5) and reward.shape == (2,) and terminated.dtype == np.bool_
        assert not np.array_equal(obs[0], obs[1])  # sub-envs seeded differently
    finally:
        vec.close()


# ---------------------------------------------------------------------------------------- registry


def test_unknown_task_lists_valid_ids():
    with pytest.raises(ConfigError) as err:
        make_env("Hoper-v5")
    for task in sim.task_names():
        assert task in str(err.value)
    with pytest.raises(ConfigError, match="dmc:cheetah-run"):
        get_spec("dmc:cheetah-fly")
    with pytest.raises(ConfigError, match="dmc:cartpole-swingup"):
        make("dmc:cartpole", num_envs=2)


def test_vector_arguments_are_checked():
    with pytest.raises(ConfigError, match="num_envs"):
        make("Hopper-v5", num_envs=0)
    with pytest.raises(ConfigError, match="sync, async, batched"):
        make("Hopper-v5", vectorization="threads")
    with pytest.raises(ConfigError, match="max_episode_steps"):
        make_env("Hopper-v5", max_episode_steps=0)


def test_importing_sim_is_light():
    code = ("import sys, robot_rl.sim, robot_rl.sim.registry; "
            "heavy = [m for m in ('mujoco', 'gymnasium', 'dm_control', 'torch') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_explicitly_seeded_first_reset_does_not_replay_on_the_next() -> None:
    """make_env(seed=s) seeds the first reset only; after reset(seed=x) the next episode is new."""
    from robot_rl.sim import make_env

    env = make_env("Hopper-v5", seed=3)
    first, _ = env.reset(seed=3)
    second, _ = env.reset()
    assert not np.array_equal(first, second)
    env.close()
