"""bench/returns.py: a short training run, and the same figures read back from its run directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "returns.py"), *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_from_runs_reports_what_training_reported(tmp_path: Path) -> None:
    trained = _bench("--pairs", "invertedpendulum_ppo", "--seeds", "3", "--steps", "2048",
                     "--out", str(tmp_path))
    assert trained.returncode == 0, trained.stderr
    live = json.loads(trained.stdout.splitlines()[-1])["results"]["invertedpendulum_ppo"]
    read = _bench("--from-runs", str(tmp_path / "invertedpendulum_ppo_s3"))
    assert read.returncode == 0, read.stderr
    again = json.loads(read.stdout.splitlines()[-1])["results"]["invertedpendulum_ppo"]
    assert again["mean"] == live["mean"]
    assert again["runs"][0]["seed"] == 3 and again["runs"][0]["steps"] == live["runs"][0]["steps"] == 2048
    assert again["runs"][0]["mean_return"] == live["runs"][0]["mean_return"]


def test_from_runs_names_an_unfinished_run(tmp_path: Path) -> None:
    run = tmp_path / "hopper_ppo_s1"
    run.mkdir()
    (run / "config.yaml").write_text("task: Hopper-v5\nalgo: ppo\n")
    result = _bench("--from-runs", str(run))
    assert result.returncode != 0
    assert "no eval.json" in result.stderr and str(run) in result.stderr
