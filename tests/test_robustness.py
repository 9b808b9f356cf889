"""`robot-rl robustness` and the model scaling under it, on real MuJoCo models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.errors import ConfigError
from robot_rl.robustness import GridAxis, parse_grid, robustness_grid
from robot_rl.sim.model_scaling import ModelScaler

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
    assert printed["axes"] == {"mass": [0.8, 1.2], "friction": [0.5, 1.5]}
    assert np.isfinite(printed["mean"]).all() and np.shape(printed["mean"]) == (2, 2)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "grid.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["mass", "friction", "mean_return", "std_return", "episodes"]
    assert [(r["mass"], r["friction"]) for r in rows] == [("0.8", "0.5"), ("0.8", "1.5"), ("1.2", "0.5"),
                                                          ("1.2", "1.5")]
    assert all(np.isfinite(float(r["mean_return"])) for r in rows)
    np.testing.assert_allclose([float(r["mean_return"]) for r in rows], np.ravel(printed["mean"]), rtol=1e-5)


def test_one_term_gives_a_line_and_weak_actuators_lose_the_pendulum(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "line.png"
    assert main(["robustness", "zoo:InvertedPendulum-v5_ppo", "--grid", "gain=0.02,1", "--episodes", "2",
                 "--max-steps", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "gain" in text and out.is_file()
    with open(tmp_path / "line.csv", newline="") as f:
        weak, nominal = (float(r["mean_return"]) for r in csv.DictReader(f))
    assert nominal == 200.0  # the zoo policy balances for all 200 steps on the nominal model
    assert weak < 100.0  # 2% of the motor's torque cannot hold the pole up


def test_the_nominal_grid_point_reproduces_plain_evaluation() -> None:
    from robot_rl.evaluation import evaluate
    from robot_rl.policies import load

    policy = load("zoo:Hopper-v5_ppo")
    grid = robustness_grid("Hopper-v5", policy.act_normalized, [GridAxis("damping", (1.0,))], 2, 7,
                           max_steps=150)
    plain = evaluate("Hopper-v5", policy.act_normalized, 2, 7, max_steps=150)
    assert grid.mean[0] == pytest.approx(plain["mean_return"], abs=1e-9)


def test_model_scaler_applies_from_nominal_values_without_compounding() -> None:
    model = mujoco.MjModel.from_xml_string(SERVO)
    mass, inertia = model.body_mass.copy(), model.body_inertia.copy()
    scaler = ModelScaler(model)
    scaler.apply({"mass": 2.0, "friction": 0.5, "damping": 3.0, "gain": 0.25})
    scaler.apply({"mass": 2.0, "friction": 0.5, "damping": 3.0, "gain": 0.25})  # twice: still x2, not x4
    np.testing.assert_allclose(model.body_mass, mass * 2.0)
    np.testing.assert_allclose(model.body_inertia, inertia * 2.0)
    np.testing.assert_allclose(model.geom_friction[0], [0.4, 0.005, 0.0005])
    np.testing.assert_allclose(model.dof_damping, [1.5])
    np.testing.assert_allclose(model.actuator_gainprm[:, 0], [10.0, 0.25])  # kp 40 -> 10, motor 1 -> 0.25
    np.testing.assert_allclose(model.actuator_biasprm[0, :3], [0.0, -10.0, 0.0])  # still a servo: bias = -kp
    np.testing.assert_allclose(model.actuator_biasprm[1, :3], [0.0, 0.0, 0.0])  # a motor has no bias
    scaler.apply({})
    np.testing.assert_allclose(model.body_mass, mass)
    np.testing.assert_allclose(model.actuator_gainprm[:, 0], [40.0, 1.0])
    np.testing.assert_allclose(model.actuator_biasprm[0, 1], -40.0)


def test_bad_grids_are_one_error_naming_the_term_and_the_choices() -> None:
    assert parse_grid("mass=0.5:1.5:3").values == (0.5, 1.0, 1.5)
    assert parse_grid("friction=0.9,1.1").values == (0.9, 1.1)
    with pytest.raises(ConfigError, match="valid terms: mass, friction, damping, gain"):
        parse_grid("inertia=0.5:1.5:3")
    with pytest.raises(ConfigError, match="LOW:HIGH:N"):
        parse_grid("mass=0.5:1.5")
    with pytest.raises(ConfigError, match="positive"):
        parse_grid("mass=-1,1")
    with pytest.raises(ConfigError, match="positive"):
        ModelScaler(mujoco.MjModel.from_xml_string(SERVO)).apply({"mass": float("nan")})
    with pytest.raises(ConfigError, match="given twice"):
        robustness_grid("Hopper-v5", lambda o: np.zeros(3), [GridAxis("mass", (1.0,))] * 2, 1, 0)


def test_robustness_refuses_a_task_without_a_mujoco_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no MuJoCo model to scale"):
        robustness_grid("CartPole-v1", lambda o: np.zeros(1, dtype=np.int64), [GridAxis("mass", (1.0,))],
                        1, 0)
