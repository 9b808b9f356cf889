"""Signals against a training run, from outside, as a process manager or a terminal sends them: SIGTERM
to `robot-rl launch <training file>` mid-run ends it after the current update with a final checkpoint
(the only one: periodic checkpoints are off), exit 128 + SIGTERM, no async vector-env worker left, and
`robot-rl train --resume DIR` finishes the run from that checkpoint."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_tree import alive, descendants

from robot_rl.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
PENDULUM_PPO = ROOT / "launch" / "invertedpendulum_ppo.yaml"
CLI = [sys.executable, "-m", "robot_rl.cli"]
TOTAL = 4096
SETS = ["log.progress_bar=false", "log.tensorboard=false", "log.plot=false", "eval.episodes=1",
        f"total_steps={TOTAL}", "log.checkpoint_every_steps=0", "num_envs=2", "ppo.num_steps=128",
        "ppo.epochs=1"]




def progress_rows(run: Path) -> int:
    path = run / "progress.csv"
    if not path.is_file():
        return 0
    with path.open() as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


@pytest.mark.parametrize("vectorization", ["async", "sync"])
def test_sigterm_mid_training_checkpoints_leaves_no_worker_and_resume_finishes(tmp_path, vectorization):
    run = tmp_path / "run"
    sets = [a for s in [*SETS, f"vectorization={vectorization}"] for a in ("--set", s)]
    launcher = subprocess.Popen([*CLI, "launch", str(PENDULUM_PPO), "--out", str(run), *sets], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while progress_rows(run) < 2 and launcher.poll() is None and time.monotonic() < deadline:
            workers |= descendants(launcher.pid)
            time.sleep(0.05)
        assert launcher.poll() is None and progress_rows(run) >= 2, launcher.communicate()
        workers |= descendants(launcher.pid)
        if vectorization == "async":
            assert len(workers) >= 2, workers  # one worker process per sub-environment
        assert not list_checkpoints(run)  # periodic checkpoints are off: any checkpoint is the signal's
        launcher.send_signal(signal.SIGTERM)
        out, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == 128 + signal.SIGTERM, (out, err)
    assert f"robot-rl train --resume {run}" in err and "stopped by SIGTERM" in err, err
    saved = list_checkpoints(run)
    assert len(saved) == 1 and 0 < saved[0][0] < TOTAL, saved
    time.sleep(0.5)
    assert not [w for w in workers if alive(w)], f"processes left behind: {workers}"
    assert not (run / "eval.json").exists()  # it stopped, it did not finish

    resumed = subprocess.run([*CLI, "train", "--resume", str(run), "--json"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from {saved[0][1].name} at step {saved[0][0]}" in resumed.stdout, resumed.stdout
    assert json.loads(resumed.stdout.splitlines()[-1])["step"] == TOTAL
    assert (run / "eval.json").is_file()
