"""Domain randomization: every term changes exactly its model fields, from the nominal values, drawn per
world per episode from the world's seeded generator; bad ranges and impossible terms are ConfigErrors."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.sim import make, make_env, task_names
from robot_rl.sim.randomization import TERMS, RandomizationConfig, Randomizer
from robot_rl.spec import action_to_robot

ROOT = Path(__file__).resolve().parents[1]
EVERY_TERM = RandomizationConfig(
    body_mass_scale=(0.8, 1.2), geom_friction_scale=(0.5, 1.5), joint_damping_scale=(0.5, 2.0),
    actuator_gain_scale=(0.8, 1.2), actuation_delay=(0.0, 0.004), observation_noise=0.01, action_noise=0.05,
    gravity_tilt=(0.0, 0.1), initial_state_noise=0.01)
SERVO_XML = """<mujoco><worldbody><geom type="plane" size="5 5 .1"/>
  <body pos="0 0 1"><joint name="hinge" type="hinge" axis="0 1 0" damping="0.3"/>
    <geom type="capsule" fromto="0 0 0 0 0 -.5" size=".05"/></body></worldbody>
  <actuator><position joint="hinge" kp="10" kv="2"/></actuator></mujoco>"""


def _arrays(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    """Every numeric array of a model (and its options' gravity), copied."""
    out = {name: np.array(value) for name in dir(model) if not name.startswith("_")
           and isinstance(value := getattr(model, name), np.ndarray) and value.dtype != object}
    out["opt.gravity"] = model.opt.gravity.copy()
    return out


def _changed(before: dict[str, np.ndarray], model: mujoco.MjModel) -> set[str]:
    after = _arrays(model)
    return {k for k in before if not np.array_equal(before[k], after[k])}


def _hopper_raw() -> mujoco.MjModel:
    """Hopper's model straight from Gymnasium's XML: the nominal values, independent of our code."""
    return mujoco.MjModel.from_xml_path(make_env("Hopper-v5").unwrapped.simulator.fullpath)


@pytest.mark.parametrize(("term", "fields"), [
    ("body_mass_scale", {"body_mass", "body_inertia"}),
    ("geom_friction_scale", {"geom_friction"}),
    ("joint_damping_scale", {"dof_damping"}),
    ("actuator_gain_scale", {"actuator_gainprm"}),  # the Hopper's motors have no bias
    ("gravity_tilt", {"opt.gravity"}),
])
def test_each_model_term_writes_exactly_its_fields_from_the_nominal_values(term: str,
                                                                          fields: set[str]) -> None:
    raw = _hopper_raw()
    bounds = (0.1, 0.1) if term == "gravity_tilt" else (1.2, 1.2)
    env = make_env("Hopper-v5", seed=0, randomize=RandomizationConfig(**{term: bounds}))
    model = env.unwrapped.model
    nominal = _arrays(raw)
    for _episode in range(3):  # the second and third episodes do not compound the first's factors
        _, info = env.reset()
        assert _changed(nominal, model) == fields
    if term == "body_mass_scale":
        np.testing.assert_allclose(model.body_mass, 1.2 * raw.body_mass, rtol=1e-15)
        np.testing.assert_allclose(model.body_inertia, 1.2 * raw.body_inertia, rtol=1e-15)
    elif term == "geom_friction_scale":
        np.testing.assert_allclose(model.geom_friction[:, 0], 1.2 * raw.geom_friction[:, 0], rtol=1e-15)
        np.testing.assert_array_equal(model.geom_friction[:, 1:], raw.geom_friction[:, 1:])
    elif term == "joint_damping_scale":
        np.testing.assert_allclose(model.dof_damping, 1.2 * raw.dof_damping, rtol=1e-15)
    elif term == "actuator_gain_scale":
        np.testing.assert_allclose(model.actuator_gainprm[:, 0], 1.2 * raw.actuator_gainprm[:, 0], rtol=1e-15)
    else:
        g, g0 = model.opt.gravity, raw.opt.gravity
        assert np.linalg.norm(g) == pytest.approx(np.linalg.norm(g0), rel=1e-12)
        assert math.acos(g @ g0 / (np.linalg.norm(g) * np.linalg.norm(g0))) == pytest.approx(0.1, abs=1e-9)
        angle, azimuth = info["randomization"]["gravity_tilt"]
        assert angle == 0.1 and 0 <= azimuth < 2 * math.pi
    np.testing.assert_array_equal(np.ravel(info["randomization"][term]),
                                  np.full(np.size(info["randomization"][term]), bounds[0])
                                  if term != "gravity_tilt" else info["randomization"][term])


def test_random_scales_are_drawn_per_element_and_applied_to_the_nominal() -> None:
    raw = _hopper_raw()
    env = make_env("Hopper-v5", seed=4, randomize=RandomizationConfig(body_mass_scale=(0.5, 1.5)))
    draws = []
    for _ in range(3):
        _, info = env.reset()
        factors = info["randomization"]["body_mass_scale"]
        np.testing.assert_allclose(env.unwrapped.model.body_mass, raw.body_mass * factors, rtol=1e-15)
        draws.append(factors)
    assert len({f.tobytes() for f in draws}) == 3 and len(set(draws[0].tolist())) == raw.nbody


def test_scales_per_world_share_one_factor_across_the_worlds_elements() -> None:
    raw = _hopper_raw()
    config = RandomizationConfig(body_mass_scale=(0.5, 1.5), actuator_gain_scale=(0.7, 1.2),
                                 scale_per="world")
    env = make_env("Hopper-v5", seed=4, randomize=config)
    factors = set()
    for _ in range(3):
        _, info = env.reset()
        mass, gain = info["randomization"]["body_mass_scale"], info["randomization"]["actuator_gain_scale"]
        assert mass.shape == (raw.nbody,) and len(set(mass.tolist())) == 1 and len(set(gain.tolist())) == 1
        np.testing.assert_allclose(env.unwrapped.model.body_mass, raw.body_mass * mass[0], rtol=1e-15)
        factors.add(float(mass[0]))
    assert len(factors) == 3
    assert config.describe().endswith("scales per world")
    with pytest.raises(ConfigError, match=r"randomize.scale_per: 'body' is not valid; choose one"):
        RandomizationConfig(scale_per="body")


def test_a_position_servos_gain_and_bias_scale_together() -> None:
    nominal = mujoco.MjModel.from_xml_string(SERVO_XML)
    model, data = copy.copy(nominal), mujoco.MjData(nominal)
    randomizer = Randomizer(RandomizationConfig(actuator_gain_scale=(1.5, 1.5)), nominal, 0.002, 1)
    before = _arrays(nominal)
    randomizer.reset_world(model, data, np.random.default_rng(0))
    assert _changed(before, model) == {"actuator_gainprm", "actuator_biasprm"}
    assert model.actuator_gainprm[0, 0] == 15.0
    np.testing.assert_array_equal(model.actuator_biasprm[0, :3], [0.0, -15.0, -3.0])  # kp and kv
    assert nominal.actuator_gainprm[0, 0] == 10.0  # the nominal model is never written


def test_initial_state_noise_perturbs_the_tasks_reset_state_and_nothing_else() -> None:
    noisy = make_env("Hopper-v5", seed=9, randomize=RandomizationConfig(initial_state_noise=0.05))
    plain = make_env("Hopper-v5", seed=9)
    before = _arrays(noisy.unwrapped.model)
    obs, info = noisy.reset()
    plain.reset()  # the same reset state: the task's own noise is drawn first, from the same generator
    dq, dv = info["randomization"]["initial_state_noise"]
    assert np.abs(dq).max() <= 0.05 and np.abs(dv).max() <= 0.05 and np.abs(dq).max() > 0.01
    data, reference = noisy.unwrapped.data, plain.unwrapped.data
    np.testing.assert_allclose(data.qpos, reference.qpos + dq, atol=1e-15)  # all hinges and slides
    np.testing.assert_allclose(data.qvel, reference.qvel + dv, atol=1e-15)
    np.testing.assert_array_equal(obs[:5], data.qpos[1:])  # the first observation sees the noisy state
    assert not _changed(before, noisy.unwrapped.model)


def test_initial_state_noise_keeps_a_free_joints_quaternion_unit() -> None:
    env = make_env("Ant-v5", seed=1, randomize=RandomizationConfig(initial_state_noise=0.3))
    env.reset()
    assert np.linalg.norm(env.unwrapped.data.qpos[3:7]) == pytest.approx(1.0, abs=1e-12)


def test_observation_and_action_noise_are_gaussian_per_step_and_seeded() -> None:
    def rollout(config: RandomizationConfig | None, seed: int = 3) -> np.ndarray:
        env = make_env("Hopper-v5", seed=seed, randomize=config)
        first, _ = env.reset()
        actions = np.random.default_rng(1).uniform(-1, 1, (30, 3))
        return np.array([first] + [env.step(a)[0] for a in actions])

    nominal = rollout(None)
    np.testing.assert_array_equal(rollout(RandomizationConfig()), nominal)
    obs_noise = RandomizationConfig(observation_noise=0.1)
    noisy = rollout(obs_noise)
    assert abs(float(np.std(noisy[0] - nominal[0])) - 0.1) < 0.06  # the reset observation too
    np.testing.assert_array_equal(rollout(obs_noise), noisy)
    assert not np.array_equal(rollout(obs_noise, seed=4)[1:], rollout(None, seed=4)[1:])
    assert not np.allclose(rollout(RandomizationConfig(action_noise=0.2))[1:], nominal[1:])

    randomizer = Randomizer(obs_noise, _hopper_raw(), 0.002, 4)
    x = np.zeros((2000, 11))
    noise = randomizer.perturb_observations(x, np.random.default_rng(0))
    assert abs(noise.std() - 0.1) < 0.005 and abs(noise.mean()) < 0.005
    rows = randomizer.perturb_observations(x[:2], [np.random.default_rng(5), np.random.default_rng(6)])
    np.testing.assert_array_equal(rows[1], np.random.default_rng(6).normal(0, 0.1, 11))  # row i, world i
    assert randomizer.perturb_actions(x, np.random.default_rng(0)) is x  # action noise is off


def test_everything_off_draws_nothing_and_changes_nothing() -> None:
    raw = _hopper_raw()
    model, data = copy.copy(raw), mujoco.MjData(raw)
    rng = np.random.default_rng(0)
    state = copy.deepcopy(rng.bit_generator.state)
    randomizer = Randomizer(RandomizationConfig(), raw, 0.002, 4)
    assert randomizer.reset_world(model, data, rng) == {"actuation_delay_steps": 0}
    assert rng.bit_generator.state == state and not _changed(_arrays(raw), model)
    obs = np.ones((3, 11))
    assert randomizer.perturb_observations(obs, rng) is obs and rng.bit_generator.state == state


def test_every_mujoco_task_takes_every_term_with_no_code_of_its_own() -> None:
    """Driven by the registry: a MuJoCo task (its env exposes an MjModel) takes all nine terms and
    reports every episode draw; any other task refuses randomization by name."""
    mujoco_tasks = 0
    for task in task_names():
        try:
            plain = make_env(task).unwrapped
        except ImportError:  # an optional simulator (Atari's ale-py) that is not installed
            continue
        if not isinstance(getattr(plain, "model", None), mujoco.MjModel):
            with pytest.raises(ConfigError, match=rf"randomize.body_mass_scale: task '{task}' does not"):
                make_env(task, randomize=EVERY_TERM)
            continue
        mujoco_tasks += 1
        every_term = EVERY_TERM
        if not plain.model.opt.gravity.any():  # Pusher floats in zero gravity: nothing to tilt
            with pytest.raises(ConfigError, match=rf"randomize.gravity_tilt: task '{task}' cannot take it"):
                make_env(task, randomize=EVERY_TERM)
            every_term = dataclasses.replace(EVERY_TERM, gravity_tilt=RandomizationConfig().gravity_tilt)
        env = make_env(task, seed=2, randomize=every_term)
        nominal_mass = plain.model.body_mass.copy()
        obs, info = env.reset()
        drawn = info["randomization"]
        episode_terms = {name for name, term in TERMS.items() if term.episode
                         and (name != "gravity_tilt" or every_term is EVERY_TERM)}
        assert set(drawn) == episode_terms | {"actuation_delay_steps"}
        np.testing.assert_allclose(env.unwrapped.model.body_mass, nominal_mass * drawn["body_mass_scale"])
        for _ in range(20):
            obs, *_ = env.step(env.action_space.sample())
        assert np.isfinite(obs).all(), task
    assert mujoco_tasks >= 10  # 7 Gymnasium v5 tasks, 3 dm_control ones


def test_a_one_step_delay_holds_the_previous_command_for_one_physics_step() -> None:
    delayed = make_env("Hopper-v5", seed=5, randomize=RandomizationConfig(actuation_delay=(0.002, 0.002)))
    reference = make_env("Hopper-v5", seed=5)
    _, info = delayed.reset()
    reference.reset()
    sim = reference.unwrapped.simulator
    spec = reference.unwrapped.task_spec
    assert info["randomization"]["actuation_delay_steps"] == 1 and spec.physics_dt == 0.002
    rng = np.random.default_rng(0)
    held = np.zeros(sim.model.nu)  # actuators start unpowered
    for _ in range(20):
        action = rng.uniform(-1, 1, spec.act_dim)
        delayed.step(action)
        ctrl = action_to_robot(spec, action)
        sim.data.ctrl[:] = held
        mujoco.mj_step(sim.model, sim.data, 1)
        sim.data.ctrl[:] = ctrl
        mujoco.mj_step(sim.model, sim.data, sim.frame_skip - 1)
        held = ctrl
        got = delayed.unwrapped.data
        np.testing.assert_array_equal(got.qpos, sim.data.qpos)
        np.testing.assert_array_equal(got.qvel, sim.data.qvel)


def test_a_dm_control_delay_holds_the_previous_command_too() -> None:
    config = RandomizationConfig(actuation_delay=(0.0025, 0.0025))  # walker: 10 steps of 2.5 ms per action
    delayed = make_env("dmc:walker-walk", seed=1, randomize=config)
    plain = make_env("dmc:walker-walk", seed=1)
    delayed.reset(seed=1)
    plain.reset(seed=1)
    assert delayed.unwrapped.randomization["actuation_delay_steps"] == 1
    physics = plain.unwrapped.dm_env.physics
    held = np.zeros(physics.model.nu)
    for action in np.random.default_rng(0).uniform(-1, 1, (10, 6)):
        delayed.step(action)
        ctrl = action_to_robot(plain.unwrapped.task_spec, action)
        physics.set_control(held)
        physics.step(1)
        physics.set_control(ctrl)
        physics.step(9)
        held = ctrl
        np.testing.assert_array_equal(delayed.unwrapped.data.qpos, physics.data.qpos)


def test_each_episode_draws_its_delay_reproducibly_from_the_range() -> None:
    def draws(seed: int) -> list[int]:
        env = make_env("Hopper-v5", seed=seed, randomize=RandomizationConfig(actuation_delay=(0.0, 0.004)))
        return [env.reset()[1]["randomization"]["actuation_delay_steps"] for _ in range(40)]

    first = draws(7)
    assert set(first) == {0, 1, 2}
    assert draws(7) == first
    assert draws(8) != first


def test_each_world_draws_from_its_own_generator_and_reports_it_on_autoreset() -> None:
    config = RandomizationConfig(body_mass_scale=(0.5, 1.5))
    env = make("Hopper-v5", num_envs=3, seed=10, randomize=config)
    _, info = env.reset(seed=10)
    scales = info["randomization"]["body_mass_scale"]
    assert scales.shape == (3, 5) and len({row.tobytes() for row in scales}) == 3
    alone = make_env("Hopper-v5", seed=11, randomize=config)  # = world 1 (seed + 1)
    np.testing.assert_array_equal(alone.reset()[1]["randomization"]["body_mass_scale"], scales[1])
    for _ in range(200):  # random actions fall within ~20 steps: autoresets report their new draws
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated | truncated
        if done.any():
            i = int(np.flatnonzero(done)[0])
            assert info["_randomization"][i]
            assert not np.array_equal(info["randomization"]["body_mass_scale"][i], scales[i])
            return
    pytest.fail("no episode ended in 200 random steps")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"body_mass_scale": (1.2, 0.8)}, r"randomize.body_mass_scale: .*0 < low <= high"),
    ({"geom_friction_scale": (-0.5, 1.0)}, r"randomize.geom_friction_scale: .*negative scale"),
    ({"body_mass_scale": (0.0, 1.0)}, r"randomize.body_mass_scale"),
    ({"joint_damping_scale": (float("nan"), 1.0)}, r"randomize.joint_damping_scale: .*finite"),
    ({"actuator_gain_scale": (1.1, 0.9)}, r"randomize.actuator_gain_scale"),
    ({"actuation_delay": (0.004, 0.002)}, r"randomize.actuation_delay: .*0 <= low <= high"),
    ({"gravity_tilt": (0.0, 2.0)}, r"randomize.gravity_tilt: .*pi/2"),
    ({"observation_noise": -0.1}, r"randomize.observation_noise: .*>= 0"),
    ({"action_noise": float("inf")}, r"randomize.action_noise"),
    ({"initial_state_noise": -1.0}, r"randomize.initial_state_noise"),
])
def test_a_bad_range_is_one_config_error_naming_the_term(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RandomizationConfig(**kwargs)


def test_launch_file_errors_name_the_term_before_anything_starts(tmp_path: Path) -> None:
    from robot_rl.cli import main
    from robot_rl.launch import load_train_config

    hopper = ROOT / "launch" / "hopper_ppo.yaml"
    with pytest.raises(ConfigError, match=r"unknown key 'randomize.mass_scale'.*body_mass_scale"):
        load_train_config(hopper, ["randomize.mass_scale=[0.9, 1.1]"])
    with pytest.raises(ConfigError, match=r"randomize.body_mass_scale: .*got \[1.2, 0.8\]"):
        load_train_config(hopper, ["randomize.body_mass_scale=[1.2, 0.8]"])
    run = tmp_path / "run"
    for task, term, value in [("CartPole-v1", "geom_friction_scale", "[0.5, 1.5]"),
                              ("Hopper-v5", "actuation_delay", "[0.0, 0.1]")]:
        algo = "dqn" if task == "CartPole-v1" else "ppo"
        launch = ROOT / "launch" / ("cartpole_dqn.yaml" if algo == "dqn" else "hopper_ppo.yaml")
        code = main(["train", str(launch), "--out", str(run), "--set", f"task={task}",
                     "--set", f"randomize.{term}={value}"])
        assert code == 2 and not run.exists()  # nothing started, no run directory


def test_a_term_a_task_cannot_take_is_a_config_error() -> None:
    affine = '<general joint="hinge" gaintype="affine" gainprm="1 0 -1"/>'  # gain depends on the length
    servo = '<position joint="hinge" kp="10" kv="2"/>'
    affine_gain = mujoco.MjModel.from_xml_string(SERVO_XML.replace(servo, affine))
    with pytest.raises(ConfigError, match=r"randomize.actuator_gain_scale: task 'arm' cannot take it: "
                                          r"actuators \[0\] have no fixed gain"):
        Randomizer(RandomizationConfig(actuator_gain_scale=(0.9, 1.1)), affine_gain, 0.002, 1, task_id="arm")
    with pytest.raises(ConfigError, match=r"randomize.actuation_delay: task 'Hopper-v5' cannot take it: "
                                          r".*\[0, 4\] \(one control period\)"):
        make_env("Hopper-v5", randomize=RandomizationConfig(actuation_delay=(0.0, 0.1)))
    with pytest.raises(ConfigError, match=r"randomize.actuation_delay: task 'CartPole-v1' does not support"):
        make("CartPole-v1", num_envs=2, vectorization="async", randomize=RandomizationConfig(
            actuation_delay=(0.0, 0.01)))


def test_a_training_run_randomizes_and_logs_the_ranges(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from robot_rl.cli import main
    from robot_rl.launch import load_train_config, read_run_config
    from robot_rl.trainer import Trainer

    quiet = ["total_steps=2048", "randomize.actuation_delay=[0.0, 0.004]",
             "randomize.body_mass_scale=[0.9, 1.1]", "eval.episodes=1", "log.progress_bar=false",
             "log.plot=false", "log.tensorboard=false",
             "vectorization=sync"]  # reads the sync sub-envs (the launch file trains batched)
    trainer = Trainer(load_train_config(ROOT / "launch" / "hopper_ppo.yaml", quiet), tmp_path / "direct")
    assert all(env.unwrapped.randomizer is not None for env in trainer.envs.envs)
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "launch" / "hopper_ppo.yaml"), "--out", str(run),
                 *[arg for item in quiet for arg in ("--set", item)]]) == 0
    line = "randomize: body_mass_scale [0.9, 1.1], actuation_delay [0, 0.004]"
    assert capsys.readouterr().err.splitlines()[0] == line
    recorded = read_run_config(run).randomize
    assert recorded.actuation_delay == (0.0, 0.004) and recorded.body_mass_scale == (0.9, 1.1)
    assert recorded.describe() == line


def test_evaluation_under_randomization_is_reproducible_and_differs_from_nominal(tmp_path: Path) -> None:
    """eval.randomize: the trainer's evaluations (periodic, final, best.pt) run under the training
    perturbations, drawn per episode from the episode's seed; without it, the nominal model."""
    from robot_rl.evaluation import evaluate
    from robot_rl.launch import load_train_config
    from robot_rl.trainer import Trainer

    quiet = ["total_steps=2048", "eval.episodes=2", "log.progress_bar=false", "log.plot=false",
             "log.tensorboard=false", "randomize.actuation_delay=[0.008, 0.008]",
             "randomize.body_mass_scale=[0.7, 1.3]", "vectorization=sync"]
    config = load_train_config(ROOT / "launch" / "hopper_ppo.yaml", [*quiet, "eval.randomize=true"])
    trainer = Trainer(config, tmp_path / "run")
    policy, seed = trainer.policy_fn(), config.eval.seed
    delayed = evaluate("Hopper-v5", policy, 2, seed, randomize=config.randomize)
    nominal = evaluate("Hopper-v5", policy, 2, seed)
    assert trainer.evaluate(2)["returns"] == delayed["returns"]  # the trainer's own evaluation
    assert delayed["returns"] != nominal["returns"]  # 8 ms late and other masses: another plant
    assert evaluate("Hopper-v5", policy, 2, seed, randomize=config.randomize)["returns"] == delayed["returns"]
    nominal_config = load_train_config(ROOT / "launch" / "hopper_ppo.yaml", quiet)
    assert Trainer(nominal_config, tmp_path / "nominal").evaluate(2)["returns"] != delayed["returns"]


def test_eval_randomize_without_randomization_is_a_config_error() -> None:
    from robot_rl.launch import load_train_config

    with pytest.raises(ConfigError, match=r"eval.randomize: .*randomizes nothing"):
        load_train_config(ROOT / "launch" / "hopper_ppo.yaml", ["eval.randomize=true"])
