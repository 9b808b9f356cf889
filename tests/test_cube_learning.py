"""A short PPO run on cube:rotate-z improves its reward (launch/cube_rotate_z_ppo.yaml, 24 576 steps:
three generations of the 32 worlds' 200-step episodes, ~25 s on a loaded 2-core machine)."""

from __future__ import annotations

from pathlib import Path

from progress_log import progress

from robot_rl.launch import load_train_config, trainer_class

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["log.progress_bar=false", "log.tensorboard=false", "log.plot=false", "eval.episodes=2",
         "eval.every_steps=0", "log.checkpoint_every_steps=0"]


def test_a_short_ppo_run_on_cube_rotate_z_improves_its_training_return(tmp_path: Path) -> None:
    config = load_train_config(ROOT / "launch" / "cube_rotate_z_ppo.yaml", [*QUIET, "total_steps=24576"])
    result = trainer_class(config.algo)(config, tmp_path / "run").train()
    rows, returns = progress(tmp_path / "run")
    first, last = returns[0], returns[-1]  # the first generation of episodes (untrained) and the third
    assert last >= first + 10.0, (first, last)
    assert 0.0 <= result["success_rate"] <= 1.0 and "consecutive_successes" in result
    assert "success_rate" in rows[-1] and rows[-1]["success_rate"] != ""
