"""The trainer end to end: learning, the run directory, resume after a kill, divergence, eval."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robot_rl.checkpoint import list_checkpoints, load_checkpoint
from robot_rl.cli import main
from robot_rl.evaluation import evaluate
from robot_rl.launch import load_train_config
from robot_rl.run_base import TrainingDiverged
from robot_rl.trainer import Trainer, load_run_policy

ROOT = Path(__file__).resolve().parents[1]
PENDULUM_PPO = ROOT / "launch" / "invertedpendulum_ppo.yaml"
QUIET = ["log.progress_bar=false", "log.tensorboard=false", "log.plot=false"]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.learning
def test_ppo_learns_inverted_pendulum_within_50k_steps(tmp_path: Path) -> None:
    """Issue 3: PPO on InvertedPendulum-v5 reaches >= 500 mean return within 50k steps (its speed is
    bench/ppo_throughput.py's to measure)."""
    config = load_train_config(PENDULUM_PPO, ["log.progress_bar=false", "log.plot=true"])
    assert config.total_steps <= 50_000
    result = Trainer(config, tmp_path / "run").train()
    assert result["mean_return"] >= 500, result
    run = tmp_path / "run"
    for name in ("config.yaml", "progress.csv", "eval.json", "learning_curve.png"):
        assert (run / name).is_file(), name
    assert len(list(run.glob("events.out.tfevents.*"))) == 1, "one TensorBoard event file"
    assert json.loads((run / "eval.json").read_text())["mean_return"] == result["mean_return"]
    # `robot-rl eval RUN_DIR` reproduces the final evaluation with the same seed
    assert main(["eval", str(run), "--episodes", "10", "--seed", str(config.eval.seed), "--json"]) == 0


def test_eval_command_prints_the_documented_json(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    config = load_train_config(PENDULUM_PPO, [*QUIET, "total_steps=2048", "eval.episodes=2"])
    Trainer(config, run).train()
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"mean_return", "std_return", "episodes"} and out["episodes"] == 3


def test_the_best_periodic_evaluation_is_kept_and_exports(tmp_path: Path, capsys) -> None:
    """checkpoints/best.pt holds the state of the first best evaluation (periodic or final), survives the
    rotation of step checkpoints, reproduces its evaluation, and exports with --checkpoint best."""
    run = tmp_path / "run"
    config = load_train_config(PENDULUM_PPO, [*QUIET, "total_steps=10240", "eval.every_steps=2048",
                                              "eval.episodes=2", "log.checkpoint_every_steps=2048",
                                              "log.keep_checkpoints=1"])
    final = Trainer(config, run).train()
    evaluations = [(int(r["step"]), float(r["eval_return"])) for r in _rows(run) if r["eval_return"]]
    evaluations.append((final["step"], final["mean_return"]))
    assert len(evaluations) == 6 and len({v for _, v in evaluations}) > 1  # something to choose from
    best_step, best_return = max(evaluations, key=lambda e: e[1])  # the first of equal maxima
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["step"] == best_step and best["best_eval"] == best_return
    assert [s for s, _ in list_checkpoints(run)] == [10240]  # rotation leaves best.pt alone
    resumed = Trainer(config, tmp_path / "again")  # a resumed run knows the best so far
    resumed.load_state(load_checkpoint(list_checkpoints(run)[-1][1]))
    assert resumed.best_eval == max(v for _, v in evaluations[:-1])  # written before the final evaluation
    _, policy, state = load_run_policy(run, "best")
    assert state["step"] == best_step
    assert evaluate(config.task, policy, 2, config.eval.seed)["mean_return"] == best_return
    assert main(["export", str(run), "--out", str(tmp_path / "bundle"), "--checkpoint", "best",
                 "--episodes", "2", "--no-onnx", "--json"]) == 0
    exported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert exported["steps"] == best_step and exported["mean_return"] == best_return
    assert main(["eval", str(run), "--checkpoint", "nope.pt"]) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert main(["eval", str(run), "--randomize"]) == 2  # this run randomizes nothing
    assert "randomizes nothing" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "bundle"), "--checkpoint", "best"]) == 2
    assert "not to a bundle" in capsys.readouterr().err


def test_without_keep_best_no_best_checkpoint_is_written(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    config = load_train_config(PENDULUM_PPO, [*QUIET, "total_steps=4096", "eval.every_steps=2048",
                                              "eval.episodes=1", "eval.keep_best=false"])
    Trainer(config, run).train()
    assert not (run / "checkpoints" / "best.pt").exists()
    assert main(["export", str(run), "--out", str(tmp_path / "b"), "--checkpoint", "best"]) == 2
    assert "eval.keep_best" in capsys.readouterr().err


def test_fixed_seed_reproduces_a_run(tmp_path: Path) -> None:
    config = load_train_config(PENDULUM_PPO, [*QUIET, "total_steps=4096", "eval.episodes=1"])
    params = []
    for name in ("a", "b"):
        Trainer(config, tmp_path / name).train()
        state = load_checkpoint(list_checkpoints(tmp_path / name)[-1][1])
        params.append(state["agent"]["actor"])
    for key in params[0]:
        assert torch.equal(params[0][key], params[1][key]), key


def test_a_killed_run_resumes_to_the_same_step_count(tmp_path: Path) -> None:
    run = tmp_path / "run"
    total = 40_960
    args = [sys.executable, "-m", "robot_rl.cli", "train", str(PENDULUM_PPO), "--out", str(run),
            "--set", f"total_steps={total}", "--set", "log.checkpoint_every_steps=4096",
            *[a for q in QUIET for a in ("--set", q)]]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list_checkpoints(run)) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up: as a power cut
    proc.wait()
    killed_at = list_checkpoints(run)[-1][0]
    assert 0 < killed_at < total

    assert main(["train", "--resume", str(run), "--json"]) == 0
    final_step, _ = list_checkpoints(run)[-1]
    assert final_step == total
    steps = [int(r["step"]) for r in _rows(run)]
    assert steps == sorted(set(steps)) and steps[-1] == total  # no duplicated or missing rows
    config, policy, state = load_run_policy(run)
    assert state["step"] == total and config.total_steps == total
    assert all(torch.isfinite(v).all() for v in state["agent"]["actor"].values())
    obs = torch.zeros(4).numpy()
    assert policy(obs).shape == (1,)


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys) -> None:
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_non_finite_update_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    config = load_train_config(PENDULUM_PPO, [*QUIET, "total_steps=8192", "log.checkpoint_every_steps=1024"])
    trainer = Trainer(config, tmp_path / "run")
    real_update = trainer.agent.update

    def update_then_diverge(buffer, last_values):
        stats = real_update(buffer, last_values)
        if trainer.step >= 4096:
            with torch.no_grad():
                next(trainer.agent.actor.parameters()).fill_(float("nan"))
        return stats

    trainer.agent.update = update_then_diverge
    with pytest.raises(TrainingDiverged, match=r"step 4096") as err:
        trainer.train()
    assert "not finite" in str(err.value)
    step, path = list_checkpoints(tmp_path / "run")[-1]
    assert step < 4096
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    state = load_checkpoint(path)
    assert all(torch.isfinite(v).all() for v in state["agent"]["actor"].values())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_kl_penalty_variant_trains_through_the_trainer(tmp_path: Path) -> None:
    config = load_train_config(PENDULUM_PPO, [*QUIET, "total_steps=4096", "ppo.objective=kl_penalty",
                                              "eval.episodes=1"])
    assert dataclasses.asdict(config.algorithm)["objective"] == "kl_penalty"
    Trainer(config, tmp_path / "run").train()
    rows = _rows(tmp_path / "run")
    assert "kl_beta" in rows[-1] and float(rows[-1]["kl_beta"]) > 0


def test_a_discrete_task_is_refused_with_a_pointer_to_dqn(tmp_path: Path, capsys) -> None:
    assert main(["train", str(PENDULUM_PPO), "--set", "task=CartPole-v1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "discrete actions" in err and "dqn" in err
    assert not (tmp_path / "r").exists()
