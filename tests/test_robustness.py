"""`robot-rl robustness`: grids over the domain-randomization terms, each pinned to one value, on real
MuJoCo models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.errors import ConfigError
from robot_rl.robustness import GridAxis, grid_config, parse_grid, robustness_grid
from robot_rl.sim import make_env
from robot_rl.sim.randomization import TERMS, Randomizer

SERVO = """
<mujoco>
  <worldbody>
    <body name="arm"><joint name="j" type="hinge" damping="0.5"/>
      <geom type="capsule" size="0.05" fromto="0 0 0 0.3 0 0" mass="2" friction="0.8 0.01 0.001"/>
    </body>
  </worldbody>
  <actuator>
    <position name="servo" joint="j" kp="40"/>
    <motor name="motor" joint="j" gear="3"/>
  </actuator>
</mujoco>
"""


def test_robustness_on_a_2x2_grid_writes_a_table_of_finite_values_and_a_png(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grid.png"
    assert main(["robustness", "zoo:Hopper-v5_ppo", "--grid", "mass=0.8:1.2:2", "--grid", "friction=0.5,1.5",
                 "--episodes", "1", "--max-steps", "100", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["axes"] == {"body_mass_scale": [0.8, 1.2], "geom_friction_scale": [0.5, 1.5]}
    assert np.isfinite(printed["mean"]).all() and np.shape(printed["mean"]) == (2, 2)
    assert len({round(m, 6) for m in np.ravel(printed["mean"])}) == 4  # four different plants
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "grid.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    header = ["body_mass_scale", "geom_friction_scale", "mean_return", "std_return", "episodes"]
    assert list(rows[0]) == header
    assert [(r["body_mass_scale"], r["geom_friction_scale"]) for r in rows] == [
        ("0.8", "0.5"), ("0.8", "1.5"), ("1.2", "0.5"), ("1.2", "1.5")]
    assert all(np.isfinite(float(r["mean_return"])) for r in rows)
    np.testing.assert_allclose([float(r["mean_return"]) for r in rows], np.ravel(printed["mean"]), rtol=1e-5)


def test_one_term_gives_a_line_and_weak_actuators_lose_the_pendulum(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "line.png"
    assert main(["robustness", "zoo:InvertedPendulum-v5_ppo", "--grid", "gain=0.02,1", "--episodes", "2",
                 "--max-steps", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "actuator_gain_scale" in text and out.is_file()
    with open(tmp_path / "line.csv", newline="") as f:
        weak, nominal = (float(r["mean_return"]) for r in csv.DictReader(f))
    assert nominal == 200.0  # the zoo policy balances for all 200 steps on the nominal model
    assert weak < 100.0  # 2% of the motor's torque cannot hold the pole up


def test_the_nominal_grid_point_reproduces_plain_evaluation_and_the_others_do_not() -> None:
    from robot_rl.evaluation import evaluate
    from robot_rl.policies import load

    policy = load("zoo:Hopper-v5_ppo")
    axes = [GridAxis("joint_damping_scale", (0.3, 1.0)), GridAxis("gravity_tilt", (0.0, 0.2))]
    grid = robustness_grid("Hopper-v5", policy.act_normalized, axes, 2, 7, max_steps=150)
    plain = evaluate("Hopper-v5", policy.act_normalized, 2, 7, max_steps=150)
    assert grid.mean[1, 0] == pytest.approx(plain["mean_return"], abs=1e-9)  # damping x1, no tilt
    others = [grid.mean[0, 0], grid.mean[0, 1], grid.mean[1, 1]]
    assert all(abs(m - plain["mean_return"]) > 1e-6 for m in others)
    # each point is the evaluation under its pinned term, the same seeds 7, 8 at every point
    tilted = evaluate("Hopper-v5", policy.act_normalized, 2, 7, max_steps=150,
                      randomize=grid_config({"gravity_tilt": 0.2, "joint_damping_scale": 0.3}))
    assert grid.mean[0, 1] == pytest.approx(tilted["mean_return"], abs=1e-9)


def test_a_pinned_term_is_applied_from_nominal_values_at_every_reset() -> None:
    """Through the terms: a grid point [v, v] writes nominal x v at each episode start, never compounding;
    a servo's kp scales with its bias (still a servo), a motor has no bias."""
    env = make_env("Hopper-v5", seed=3, randomize=grid_config({"body_mass_scale": 2.0,
                                                                "joint_damping_scale": 3.0}))
    model = env.unwrapped.model
    plain = make_env("Hopper-v5").unwrapped.model
    for _ in range(3):
        env.reset()
        np.testing.assert_allclose(model.body_mass, plain.body_mass * 2.0)
        np.testing.assert_allclose(model.body_inertia, plain.body_inertia * 2.0)
        np.testing.assert_allclose(model.dof_damping, plain.dof_damping * 3.0)
        np.testing.assert_array_equal(model.geom_friction, plain.geom_friction)  # not on the grid

    nominal = mujoco.MjModel.from_xml_string(SERVO)
    world = mujoco.MjModel.from_xml_string(SERVO)
    config = grid_config({"body_mass_scale": 2.0, "geom_friction_scale": 0.5, "actuator_gain_scale": 0.25})
    randomizer = Randomizer(config, nominal, 0.002, 1)
    data, rng = mujoco.MjData(world), np.random.default_rng(0)
    for _ in range(2):  # twice: still x2, not x4
        randomizer.reset_world(world, data, rng)
    np.testing.assert_allclose(world.body_mass, nominal.body_mass * 2.0)
    np.testing.assert_allclose(world.geom_friction[0], [0.4, 0.01, 0.001])  # the sliding friction
    np.testing.assert_allclose(world.actuator_gainprm[:, 0], [10.0, 0.25])  # kp 40 -> 10, motor 1 -> 0.25
    np.testing.assert_allclose(world.actuator_biasprm[0, :3], [0.0, -10.0, 0.0])  # bias = -kp: a servo
    np.testing.assert_allclose(world.actuator_biasprm[1, :3], [0.0, 0.0, 0.0])
    Randomizer(grid_config({"body_mass_scale": 1.0}), nominal, 0.002, 1).reset_world(world, data, rng)
    np.testing.assert_allclose(world.body_mass, nominal.body_mass * 2.0)  # x1 is off: the model is left alone


def test_every_term_is_a_grid_axis_and_the_short_names_still_work() -> None:
    for term in TERMS:
        assert parse_grid(f"{term}=0.001,0.002").term == term
    assert parse_grid("mass=0.5:1.5:3") == GridAxis("body_mass_scale", (0.5, 1.0, 1.5))
    assert parse_grid("friction=0.9,1.1").term == "geom_friction_scale"
    assert parse_grid("damping=1").term == "joint_damping_scale"
    assert parse_grid("gain=1").term == "actuator_gain_scale"
    assert grid_config({"observation_noise": 0.1}).observation_noise == 0.1
    assert grid_config({"actuation_delay": 0.004}).actuation_delay == (0.004, 0.004)


def test_bad_grids_are_one_error_naming_the_term_and_the_choices() -> None:
    every = ", ".join([*TERMS, "push_x", "push_y", "push_yaw"])
    with pytest.raises(ConfigError, match=f"valid terms: {every} \\(aliases mass=body_mass_scale, "):
        parse_grid("inertia=0.5:1.5:3")
    with pytest.raises(ConfigError, match="LOW:HIGH:N"):
        parse_grid("mass=0.5:1.5")
    with pytest.raises(ConfigError, match=r"--grid 'mass=-1,1': randomize.body_mass_scale: .*negative"):
        parse_grid("mass=-1,1")
    with pytest.raises(ConfigError, match=r"randomize.gravity_tilt: .*pi/2"):
        parse_grid("gravity_tilt=0:2:3")
    with pytest.raises(ConfigError, match=r"randomize.joint_damping_scale: .*finite"):
        parse_grid("damping=nan")
    with pytest.raises(ConfigError, match=r"randomize.observation_noise: .*>= 0"):
        parse_grid("observation_noise=-0.1,0")
    with pytest.raises(ConfigError, match="given twice"):
        robustness_grid("Hopper-v5", lambda o: np.zeros(3),
                        [parse_grid("mass=1"), parse_grid("body_mass_scale=2")], 1, 0)


def test_a_term_the_task_cannot_take_fails_before_any_point_is_evaluated() -> None:
    calls = []

    def policy(obs: np.ndarray) -> np.ndarray:
        calls.append(1)
        return np.zeros(3)

    with pytest.raises(ConfigError, match=r"randomize.body_mass_scale: task 'CartPole-v1' does not support"):
        robustness_grid("CartPole-v1", lambda o: np.zeros(1, dtype=np.int64),
                        [GridAxis("body_mass_scale", (1.0, 1.5))], 1, 0)
    for simulator in ("gymnasium", "engine"):  # the engine would clamp it to one control period
        with pytest.raises(ConfigError, match=r"randomize.actuation_delay: task 'Hopper-v5' cannot take it: "
                                              r".*it must lie in \[0, 4\] \(one control period\)"):
            robustness_grid("Hopper-v5", policy, [GridAxis("actuation_delay", (0.0, 0.1))], 1, 0,
                            simulator=simulator)
    assert not calls  # not even the nominal first point ran


def test_a_grid_on_the_engine_it_trained_on_equals_the_gymnasium_one() -> None:
    """A run trained with vectorization: batched is stressed on the engine's worlds; the randomizer draws
    the same values there, so the map is the Gymnasium path's (to the conformance suite's 1e-6)."""
    from robot_rl.policies import load

    policy = load("zoo:Hopper-v5_ppo").act_normalized
    axes = [GridAxis("body_mass_scale", (0.8, 1.2)), GridAxis("actuation_delay", (0.0, 0.004))]
    engine = robustness_grid("Hopper-v5", policy, axes, 2, 5, max_steps=120, simulator="engine")
    gym = robustness_grid("Hopper-v5", policy, axes, 2, 5, max_steps=120, simulator="gymnasium")
    np.testing.assert_allclose(engine.mean, gym.mean, rtol=1e-6)
    assert len(np.unique(np.round(engine.mean, 6))) == 4
