"""Run directories: nothing lost, nothing mixed (issue 15, "Lost or mixed work").

A run directory belongs to one writer at a time; a new run never appends to a killed run's rows; a
resume survives a damaged config.yaml, a garbage progress row and a checkpoint of another network;
`export --force` replaces only a bundle.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_rl.checkpoint import checkpoint_path, list_checkpoints
from robot_rl.cli import main
from robot_rl.policies import read_bundle
from robot_rl.policies.bundle import BundleError, write_bundle
from robot_rl.run_dir import RUN_LOCK, RunDirBusy, RunLock

ROOT = Path(__file__).resolve().parents[1]
PENDULUM_PPO = ROOT / "launch" / "invertedpendulum_ppo.yaml"
QUIET = ["log.progress_bar=false", "log.tensorboard=false", "log.plot=false", "eval.episodes=1"]
SMALL = [*QUIET, "total_steps=4096", "log.checkpoint_every_steps=2048"]


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _steps(run: Path) -> list[int]:
    with open(run / "progress.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4096-step PPO run with checkpoints at 2048 and 4096 (copied by each test that changes it)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", str(PENDULUM_PPO), "--out", str(run), *_sets(SMALL)]) == 0
    assert [s for s, _ in list_checkpoints(run)] == [2048, 4096]
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "copy"))


# ---------------------------------------------------------------------------------------------- export


def _zoo_bundle_parts() -> dict:
    b = read_bundle(ROOT / "policies" / "zoo" / "InvertedPendulum-v5_ppo")
    m = b.manifest
    return dict(spec=m.spec, kind=m.kind, layers=b.layers, activation=m.activation, head=dict(m.head),
                normalizer=m.normalizer, provenance=dict(m.provenance), onnx=False)


def test_export_force_never_deletes_a_run_directory(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = _copy(finished_run, tmp_path)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert main(["export", str(run), "--out", str(run), "--force", "--episodes", "0", "--no-onnx"]) == 2
    err = capsys.readouterr().err
    assert "replaces only a policy bundle" in err and err.count("\n") == 1
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_export_force_refuses_a_folder_holding_a_document_and_replaces_a_bundle(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    with pytest.raises(BundleError, match=r"holds 'thesis\.txt'"):
        write_bundle(folder, force=True, **_zoo_bundle_parts())
    assert (folder / "thesis.txt").read_text() == "years of work"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    with pytest.raises(BundleError, match="not a policy bundle"):
        write_bundle(a_file, force=True, **_zoo_bundle_parts())
    assert a_file.read_text() == "keep"
    bundle = tmp_path / "bundle"
    write_bundle(bundle, **_zoo_bundle_parts())
    assert write_bundle(bundle, force=True, **_zoo_bundle_parts()).path == bundle  # a bundle: replaced


# ------------------------------------------------------------------------------------------ the lock


def test_two_trainings_on_one_folder_the_second_is_refused_by_the_lock(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    args = [sys.executable, "-m", "robot_rl.cli", "train", str(PENDULUM_PPO), "--out", str(run),
            *_sets([*QUIET, "total_steps=400000", "log.checkpoint_every_steps=0"])]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / "config.yaml").exists():
            assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
            time.sleep(0.05)
        code = main(["train", str(PENDULUM_PPO), "--out", str(run), "--set", "seed=7",
                     *_sets([*QUIET, "total_steps=2048"])])
        err = capsys.readouterr().err
        assert code == 2
        assert f"being written by process {first.pid}" in err
    finally:
        first.kill()
        first.wait()
    assert not (run / "eval.json").exists()  # the second run wrote nothing


def test_a_stale_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_LOCK).write_text(f"{dead.pid} somehost\n")
    lock = RunLock(run)
    lock.acquire()
    assert lock.stale_pid == dead.pid
    assert (run / RUN_LOCK).read_text().split()[0] == str(os.getpid())
    with pytest.raises(RunDirBusy, match=f"process {os.getpid()}"):  # a live holder: refused
        subprocess_lock = RunLock(run)
        # flock is per open file: a second open in this process is a second writer, as another process
        subprocess_lock.acquire()
    lock.release()
    assert not (run / RUN_LOCK).exists()


# -------------------------------------------------------------------------- new run in an old folder


def test_a_new_run_in_a_folder_of_a_run_killed_before_its_first_checkpoint_starts_clean(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "progress.csv").write_text("step,update,time_s\n1024,1,0.5\n2048,2,1.0\n99999,3,2.0\n")
    assert main(["train", str(PENDULUM_PPO), "--out", str(run), *_sets([*QUIET, "total_steps=2048"])]) == 0
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 2048 and 99999 not in steps


def test_train_with_a_launch_file_and_resume_is_refused(finished_run: Path, capsys) -> None:
    assert main(["train", str(PENDULUM_PPO), "--resume", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert "give one or the other" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------------- damaged resume


def test_resume_after_a_damaged_config_yaml_uses_the_checkpoints_config(finished_run: Path,
                                                                        tmp_path: Path, capsys) -> None:
    run = _copy(finished_run, tmp_path)
    checkpoint_path(run, 4096).unlink()  # killed after the first checkpoint
    (run / "config.yaml").write_text("task: [InvertedPendulum-v5\n  algo: {{{\n")
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "resuming with the config saved in" in out
    assert main(["eval", str(run), "--episodes", "1"]) == 0  # config.yaml is whole again
    assert [s for s, _ in list_checkpoints(run)][-1] == 4096


def test_resume_drops_a_garbage_row_appended_to_progress_csv(finished_run: Path, tmp_path: Path) -> None:
    run = _copy(finished_run, tmp_path)
    checkpoint_path(run, 4096).unlink()
    with open(run / "progress.csv", "a") as f:
        f.write("garbage,\x00,not a row\n")
    assert main(["train", "--resume", str(run)]) == 0
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 4096


def test_resume_skips_a_newest_checkpoint_of_another_network(finished_run: Path, tmp_path: Path,
                                                            capsys) -> None:
    run = _copy(finished_run, tmp_path)
    other = tmp_path / "other"
    assert main(["train", str(PENDULUM_PPO), "--out", str(other),
                 *_sets([*QUIET, "total_steps=2048", "policy.hidden=[32, 32]"])]) == 0
    checkpoint_path(run, 4096).unlink()
    foreign = checkpoint_path(run, 3072)
    shutil.copy(checkpoint_path(other, 2048), foreign)
    assert main(["eval", str(run), "--checkpoint", str(foreign), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "does not fit the run" in err and "size mismatch" in err and err.count("\n") == 1
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "does not fit this run's network" in out and "from step_000000002048.pt" in out
    assert [s for s, _ in list_checkpoints(run)][-1] == 4096


def test_divergence_without_a_checkpoint_does_not_claim_one_is_intact(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    code = main(["train", str(PENDULUM_PPO), "--out", str(run),
                 *_sets([*QUIET, "total_steps=4096", "log.checkpoint_every_steps=0",
                         "ppo.learning_rate=1e308"])])
    err = capsys.readouterr().err
    assert code == 2 and "diverged" in err
    assert "intact" not in err and "no checkpoint was written" in err
