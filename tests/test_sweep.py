"""`robot-rl sweep` (issue 17): grid × seeds as Ray Tune trials on a local Ray instance of 2 CPUs.

One short sweep (InvertedPendulum, 2 learning rates × 2 seeds, 4096 steps a trial, one trial at a
time) is run once for the module and hurt twice from outside: a trial's worker is SIGKILLed at its
first checkpoint (Tune restarts it, the trainer resumes), then the whole sweep (driver and its Ray
instance) is killed while the next trial runs, and `robot-rl sweep --resume` finishes it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4096
LAUNCH = {
    "task": "InvertedPendulum-v5", "algo": "ppo", "seed": 1, "total_steps": STEPS, "num_envs": 4,
    "vectorization": "batched", "env_threads": 1,
    "ppo": {"num_steps": 256, "epochs": 2, "minibatch_size": 256, "learning_rate": 1.0e-3},
    "eval": {"episodes": 2},
    "log": {"checkpoint_every_steps": 1024, "progress_bar": False, "tensorboard": False, "plot": False},
}
GRID = "ppo.learning_rate=[1.0e-3,3.0e-4]"


def _launch_file(folder: Path) -> Path:
    path = folder / "ip.yaml"
    path.write_text(yaml.safe_dump(LAUNCH))
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "robot_rl.cli", "sweep", *args]


def _wait_for(condition, what: str, proc: subprocess.Popen, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended (rc {proc.returncode}) before {what}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s} s")
        time.sleep(0.05)


def _checkpoints(run_dir: Path) -> list[str]:
    folder = run_dir / "checkpoints"
    return sorted(p.name for p in folder.glob("step_*.pt")) if folder.is_dir() else []


# ---------------------------------------------------------------------------------- bad input (no Ray)
@pytest.mark.parametrize("grid, message", [
    ("ppo.learning_rat=[1.0e-3]", "unknown key 'ppo.learning_rat'"),
    ("bogus=[1,2]", "unknown key 'bogus'"),
    ("ppo.learning_rate=[]", "the grid has no values"),
    ("ppo.learning_rate=1.0e-3", "is not a list of values"),
    ("ppo.learning_rate=[-1]", "ppo.learning_rate: must be > 0"),
    ("seed=[1,2]", "come from --seeds"),
])
def test_a_bad_grid_is_one_error_before_anything_is_written(tmp_path: Path, grid: str, message: str) -> None:
    out = tmp_path / "sweep"
    result = subprocess.run(_cli(str(_launch_file(tmp_path)), "--grid", grid, "--out", str(out)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "--grid" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_an_address_that_does_not_answer_is_a_clear_error_within_30_s(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "sweep"
    result = subprocess.run(_cli(str(_launch_file(tmp_path)), "--grid", GRID, "--out", str(out),
                                 "--address", f"127.0.0.1:{port}"),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert f"--address 127.0.0.1:{port}: no Ray cluster answers" in result.stderr
    assert "ray start --head" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_resume_of_a_folder_that_is_no_sweep_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(_cli("--resume", str(tmp_path)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "not a sweep folder" in result.stderr, result.stderr


# ---------------------------------------------------------------------------------- one sweep, hurt twice
@pytest.fixture(scope="module")
def hurt_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("ray")
    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "sweep"
    runs = out / "runs"
    first = runs / "c0_s1"
    proc = subprocess.Popen(_cli(str(_launch_file(tmp)), "--seeds", "2", "--grid", GRID, "--out", str(out),
                                 "--num-cpus", "2", "--max-concurrent", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # 1. the first trial's worker dies at its first checkpoint (of four)
        _wait_for(lambda: _checkpoints(first) and not (first / "eval.json").exists(),
                  "first checkpoint of c0_s1", proc)
        pid = int(re.findall(r"pid (\d+)", (first / "trial.log").read_text())[-1])
        killed_at = _checkpoints(first)
        os.kill(pid, signal.SIGKILL)
        # 2. the whole sweep dies while a trial runs, past its first checkpoint, after c0_s1 has finished
        def finished() -> list[Path]:
            return sorted(d for d in runs.iterdir() if (d / "eval.json").exists())

        def midway() -> list[Path]:
            return [d for d in runs.iterdir() if _checkpoints(d) and not (d / "eval.json").exists()]

        _wait_for(lambda: (first / "eval.json").exists() and midway(), "a trial midway after c0_s1", proc)
        victim = midway()[0]  # its worker and the driver at once, as when the machine goes down
        os.kill(int(re.findall(r"pid (\d+)", (victim / "trial.log").read_text())[-1]), signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    done = {d.name: ((d / "eval.json").read_text(), (d / "trial.log").read_text()) for d in finished()}
    cut = {victim.name: (victim / "trial.log").read_text()}
    resumed = subprocess.run(_cli("--resume", str(out), "--num-cpus", "2", "--json"),
                             capture_output=True, text=True, timeout=500)
    return {"out": out, "killed_pid": pid, "killed_at": killed_at, "done": done, "cut": cut,
            "resumed": resumed}


def test_a_trial_killed_mid_run_resumes_from_its_checkpoint_and_finishes(hurt_sweep: dict) -> None:
    log = (hurt_sweep["out"] / "runs" / "c0_s1" / "trial.log").read_text()
    pids = re.findall(r"pid (\d+)", log)
    assert len(pids) == 2 and pids[0] == str(hurt_sweep["killed_pid"]) and pids[1] != pids[0], log
    step = int(hurt_sweep["killed_at"][0].removeprefix("step_").removesuffix(".pt"))
    assert re.search(rf"resuming .*c0_s1 from step_0*{step}\.pt at step {step}", log), log
    evaluation = json.loads((hurt_sweep["out"] / "runs" / "c0_s1" / "eval.json").read_text())
    assert evaluation["step"] == STEPS and math.isfinite(evaluation["mean_return"])


def test_a_resumed_sweep_does_not_rerun_finished_trials(hurt_sweep: dict) -> None:
    resumed, done, cut = (hurt_sweep[k] for k in ("resumed", "done", "cut"))
    runs = hurt_sweep["out"] / "runs"
    assert resumed.returncode == 0, resumed.stderr
    assert "c0_s1" in done and cut, (done, cut)
    assert f"4 trials, {len(done)} finished, {4 - len(done)} to run" in resumed.stderr
    for name, (evaluation, log) in done.items():  # untouched: not started again
        assert (runs / name / "eval.json").read_text() == evaluation
        assert (runs / name / "trial.log").read_text() == log
    for name, log_at_kill in cut.items():  # continued from its checkpoint, in the same run directory
        log = (runs / name / "trial.log").read_text()
        assert log.startswith(log_at_kill), log
        assert re.search(rf"resuming .*{name} from step_", log[len(log_at_kill):]), log
    for name in {"c0_s1", "c0_s2", "c1_s1", "c1_s2"} - set(done) - set(cut):  # not started before the kill
        assert "resuming" not in (runs / name / "trial.log").read_text()


def test_a_sweep_of_2_configurations_x_2_seeds_reports_4_finite_returns(hurt_sweep: dict) -> None:
    out = hurt_sweep["out"]
    summary = json.loads(hurt_sweep["resumed"].stdout.strip().splitlines()[-1])
    assert summary["trials"] == summary["finished"] == 4 and summary["failed"] == []
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["trial"] for r in rows) == ["c0_s1", "c0_s2", "c1_s1", "c1_s2"]
    assert all(r["status"] == "finished" and math.isfinite(float(r["mean_return"])) for r in rows)
    assert all(int(r["step"]) == STEPS for r in rows)
    assert {r["ppo.learning_rate"] for r in rows} == {"0.001", "0.0003"}
    table = summary["table"].splitlines()
    for config in ("c0", "c1"):
        returns = [float(r["mean_return"]) for r in rows if r["configuration"] == config]
        mean, std = sum(returns) / 2, abs(returns[0] - returns[1]) / 2
        line = next(x for x in table if x.startswith(config + " "))
        assert f"{mean:.2f} ± {std:.2f}" in line and "2/2" in line, line
    config_means = {c: sum(float(r["mean_return"]) for r in rows if r["configuration"] == c)
                    for c in ("c0", "c1")}
    best_config = max(config_means, key=config_means.get)
    best = max((r for r in rows if r["configuration"] == best_config), key=lambda r: float(r["mean_return"]))
    assert summary["best_run"] == best["run_dir"]
    manifest = json.loads((out / "best_bundle" / "manifest.json").read_text())
    assert manifest["provenance"]["steps"] == STEPS
    assert (out / "comparison.png").stat().st_size > 0
    with open(out / "comparison.csv", newline="") as f:
        assert len({r["configuration"] for r in csv.DictReader(f)}) == 2  # one curve per configuration
    for run in rows:  # each trial is an ordinary run directory
        run_dir = Path(run["run_dir"])
        assert (run_dir / "config.yaml").is_file() and (run_dir / "progress.csv").is_file()


# ---------------------------------------------------------------------------------- ray stays in its package
def test_only_robot_rl_distributed_imports_ray_and_only_inside_functions() -> None:
    importers = []
    for folder in ("robot_rl", "sim", "hardware", "policies"):
        for path in (ROOT / folder).rglob("*.py"):
            if re.search(r"^\s*(import ray\b|from ray\b)", path.read_text(), flags=re.M):
                importers.append(path.relative_to(ROOT).as_posix())
    assert importers and all(p.startswith("robot_rl/distributed/") for p in importers), importers
    code = ("import sys, robot_rl.cli, robot_rl.commands.sweep, robot_rl.distributed.sweep, "
            "robot_rl.distributed.report, robot_rl.distributed.cluster\n"
            "robot_rl.cli.build_parser()\n"
            "print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
