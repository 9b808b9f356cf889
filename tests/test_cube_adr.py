"""ADR wired into training on the batched engine: boundary worlds pin a parameter at its bound, the
trainer feeds episode performance back and a range widens (good performance) or narrows (bad), the
ranges and the entropy reach progress.csv and adr.png, and a bad `adr:` section is one ConfigError."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.launch import load_train_config, trainer_class
from robot_rl.sim.adr import ADR, ADRConfig
from robot_rl.sim.adr_randomizer import ADRRandomizer, adr_parameters
from robot_rl.sim.engine.batched import BatchedEngine
from robot_rl.sim.randomization import RandomizationConfig
from robot_rl.sim.registry import engine_task

QUIET = ["log.progress_bar=false", "log.tensorboard=false", "eval.episodes=1", "eval.every_steps=0",
         "log.checkpoint_every_steps=0"]
HOPPER_ADR = """task: Hopper-v5
algo: ppo
num_envs: 4
vectorization: batched
env_threads: 1
total_steps: 2048
ppo: {num_steps: 64, minibatch_size: 128, epochs: 1}
randomize: {body_mass_scale: [0.5, 1.5]}
adr: {enabled: true, window: 3, boundary_probability: 1.0, steps: {body_mass_scale: 0.05}}
"""


def _trainer(tmp_path: Path, overrides: list[str]):
    (tmp_path / "adr.yaml").write_text(HOPPER_ADR)
    config = load_train_config(tmp_path / "adr.yaml", [*QUIET, *overrides])
    return trainer_class(config.algo)(config, tmp_path / "run")


def test_a_boundary_world_pins_its_parameter_at_the_bound_for_every_element():
    randomize = RandomizationConfig(body_mass_scale=(0.5, 1.5), geom_friction_scale=(0.8, 1.2))
    config = ADRConfig(enabled=True, boundary_probability=1.0)
    adr = ADR(adr_parameters(randomize, config), config)
    adr.load_state_dict({"low": {"body_mass_scale": 0.8, "geom_friction_scale": 0.9},
                         "high": {"body_mass_scale": 1.3, "geom_friction_scale": 1.1}})
    engine = BatchedEngine(engine_task("cube:rotate-z"), 8, seed=0, threads=1)
    try:
        engine.randomizer = ADRRandomizer(adr, randomize, engine.nominal, engine.physics_dt, 10)
        engine.reset()
        nominal = engine.nominal
        massive = nominal.body_mass > 0
        for w in engine.worlds:
            name, _, side = w.randomization["adr_boundary"].partition(":")
            bound = dict(zip(("low", "high"), adr.ranges()[name], strict=True))[side]
            mass = w.model.body_mass[massive] / nominal.body_mass[massive]
            friction = w.model.geom_friction[:, 0] / nominal.geom_friction[:, 0]
            pinned, free = (mass, friction) if name == "body_mass_scale" else (friction, mass)
            other = "geom_friction_scale" if name == "body_mass_scale" else "body_mass_scale"
            free_range = adr.ranges()[other]
            np.testing.assert_allclose(pinned, bound, rtol=1e-12)
            assert (free >= free_range[0] - 1e-12).all() and (free <= free_range[1] + 1e-12).all()
            assert np.ptp(free) > 0  # drawn per element inside the current range
    finally:
        engine.close()


def test_good_performance_widens_the_range_through_the_trainer(tmp_path: Path):
    trainer = _trainer(tmp_path, ["adr.return_scale=1.0e-6"])  # any positive return is full performance
    assert trainer.adr.ranges() == {"body_mass_scale": (1.0, 1.0)}
    trainer.train()
    low, high = trainer.adr.ranges()["body_mass_scale"]
    assert 0.5 <= low < 1.0 < high <= 1.5 and trainer.adr.updates >= 4
    with open(tmp_path / "run" / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["adr_entropy"]) < float(rows[-1]["adr_entropy"])
    assert float(rows[-1]["adr_body_mass_scale_low"]) == pytest.approx(low)
    assert float(rows[-1]["adr_body_mass_scale_high"]) == pytest.approx(high)
    assert (tmp_path / "run" / "adr.png").stat().st_size > 1000
    resumed = trainer_class("ppo").resume(tmp_path / "run")  # the checkpoint keeps the ranges
    assert resumed.adr.ranges() == trainer.adr.ranges() and resumed.adr.updates == trainer.adr.updates
    resumed.envs.close()


def test_bad_performance_narrows_the_range_through_the_trainer(tmp_path: Path):
    trainer = _trainer(tmp_path, ["adr.return_scale=1.0e9"])  # every return is ~0 performance
    trainer.adr.load_state_dict({"low": {"body_mass_scale": 0.6}, "high": {"body_mass_scale": 1.4}})
    trainer.train()
    low, high = trainer.adr.ranges()["body_mass_scale"]
    assert low > 0.6 and high < 1.4 and trainer.adr.updates >= 4


@pytest.mark.parametrize(("overrides", "key"), [
    (["adr.low=1.5"], "adr.low"),
    (["adr.high=-0.1"], "adr.high"),
    (["adr.low=0.9", "adr.high=0.5"], "adr.low"),
    (["adr.window=0"], "adr.window"),
    (["vectorization=sync", "env_threads=null"], "adr.enabled"),
    (["randomize.body_mass_scale=[1.0, 1.0]", "randomize.observation_noise=0.1"], "adr.enabled"),
    (["adr.steps.joint_damping_scale=0.1"], "adr.steps.joint_damping_scale"),
    ([], "adr.return_scale"),  # Hopper counts no successes
])
def test_a_bad_adr_section_is_one_config_error_naming_the_key(tmp_path: Path, overrides, key):
    (tmp_path / "adr.yaml").write_text(HOPPER_ADR)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_train_config(tmp_path / "adr.yaml", [*QUIET, *overrides])


def test_adr_keeps_scale_per_world_one_factor_for_all_of_a_worlds_bodies():
    randomize = RandomizationConfig(body_mass_scale=(0.5, 1.5), scale_per="world")
    config = ADRConfig(enabled=True, boundary_probability=0.25)
    adr = ADR(adr_parameters(randomize, config), config)
    adr.load_state_dict({"low": {"body_mass_scale": 0.8}, "high": {"body_mass_scale": 1.3}})
    engine = BatchedEngine(engine_task("Hopper-v5"), 8, seed=1, threads=1)
    try:
        engine.randomizer = ADRRandomizer(adr, randomize, engine.nominal, engine.physics_dt, 4)
        engine.reset()
        massive = engine.nominal.body_mass > 0
        factors = [w.model.body_mass[massive] / engine.nominal.body_mass[massive] for w in engine.worlds]
        for f in factors:  # one factor per world, within ADR's range (not the randomize: bounds)
            np.testing.assert_allclose(f, f[0])
            assert 0.8 - 1e-12 <= f[0] <= 1.3 + 1e-12
        assert len({round(float(f[0]), 9) for f in factors}) > 1  # and the worlds differ
    finally:
        engine.close()
