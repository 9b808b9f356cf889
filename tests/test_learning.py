"""Short learning runs of the policy-gradient agents on InvertedPendulum-v5 (marked `learning`: each
takes tens of seconds; their speed is measured in bench/, not asserted here).

PPO's own ≥ 500-in-50k test lives in test_trainer.py. Here: REINFORCE, VPG and TRPO each improve
measurably on the untrained policy's deterministic return, with the same evaluation seed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from robot_rl.launch import load_train_config, trainer_class

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["log.progress_bar=false", "log.tensorboard=false", "log.plot=false", "eval.episodes=5"]


def _untrained_and_trained(tmp_path: Path, launch: str, overrides: list[str]) -> tuple[float, float]:
    config = load_train_config(ROOT / "launch" / launch, [*QUIET, *overrides])
    trainer = trainer_class(config.algo)(config, tmp_path / "run")
    before = trainer.evaluate(config.eval.episodes)["mean_return"]
    after = trainer.train()["mean_return"]
    return before, after


@pytest.mark.learning
@pytest.mark.parametrize(("launch", "steps", "floor"), [
    ("invertedpendulum_reinforce.yaml", 20_000, 100.0),
    ("invertedpendulum_vpg.yaml", 20_000, 100.0),
])
def test_monte_carlo_policy_gradients_improve_measurably(tmp_path: Path, launch: str, steps: int,
                                                         floor: float) -> None:
    before, after = _untrained_and_trained(tmp_path, launch, [f"total_steps={steps}"])
    assert before < 50, before  # the untrained policy drops the pole within a few dozen steps
    assert after >= floor and after >= 3 * before, (before, after)


@pytest.mark.learning
def test_trpo_improves_measurably(tmp_path: Path) -> None:
    (tmp_path / "trpo.yaml").write_text("task: InvertedPendulum-v5\nalgo: trpo\n")
    config = load_train_config(tmp_path / "trpo.yaml", [*QUIET, "total_steps=20480"])
    trainer = trainer_class(config.algo)(config, tmp_path / "run")
    before = trainer.evaluate(5)["mean_return"]
    after = trainer.train()["mean_return"]
    assert after >= 200 and after >= 3 * before, (before, after)
