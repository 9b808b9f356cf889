"""One line, not a traceback (issue 15): bad launch values, file-system failures, a hostile environment,
and a robot computer without the training extras each end in one `robot-rl: error:` line, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robot_rl.cli import main

ROOT = Path(__file__).resolve().parents[1]
PENDULUM_PPO = ROOT / "launch" / "invertedpendulum_ppo.yaml"
QUIET = ["log.progress_bar=false", "log.tensorboard=false", "log.plot=false", "eval.episodes=1",
         "total_steps=2048", "log.checkpoint_every_steps=1024"]
SETS = [a for q in QUIET for a in ("--set", q)]
HEAD = "task: InvertedPendulum-v5\nalgo: ppo\n"


def _cli(*argv: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
         launcher: Path | None = None) -> subprocess.CompletedProcess[str]:
    """robot-rl in a subprocess (a fresh interpreter: the environment and imports are its own)."""
    entry = [str(launcher)] if launcher else ["-m", "robot_rl.cli"]
    return subprocess.run([*prefix, sys.executable, *entry, *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert result.stderr.startswith("robot-rl: error: ")
    return result.stderr


def _in_process_one_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("robot-rl: error: "), err
    return err


# --------------------------------------------------------------------------------------- launch values


@pytest.mark.parametrize(("body", "expected"), [
    (HEAD + "total_steps: .nan\n", "total_steps: expected an integer, got nan"),
    (HEAD + "total_steps: .inf\n", "total_steps: expected an integer, got inf"),
    (HEAD + "seed: 1\nseed: 2\n", "line 4: key 'seed' is given twice"),
    (HEAD + "eval:\n  episodes: 2\n  episodes: 3\n", "line 5: key 'episodes' is given twice"),
    (HEAD + "seed: 36893488147419103232\n", "seed: must be <= 18446744073709551615"),
])
def test_bad_launch_values_are_one_line(tmp_path: Path, capsys, body: str, expected: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(body)
    assert expected in _in_process_one_line(capsys, "train", str(file), "--out", str(tmp_path / "run"))


def test_a_launch_file_that_is_not_utf8_is_one_line(tmp_path: Path, capsys) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes(HEAD.encode() + "# café\n".encode("latin-1"))
    err = _in_process_one_line(capsys, "train", str(file))
    assert "line 3" in err and "not UTF-8" in err


def test_a_damaged_config_yaml_is_one_line_for_eval(tmp_path: Path, capsys) -> None:
    (tmp_path / "config.yaml").write_text("task: [oops\n")
    assert "not valid YAML" in _in_process_one_line(capsys, "eval", str(tmp_path))


# ---------------------------------------------------------------------------------------- file system


def test_out_on_an_existing_file_or_under_one_is_one_line(tmp_path: Path, capsys) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    assert "is a file" in _in_process_one_line(capsys, "train", str(PENDULUM_PPO), "--out", str(file), *SETS)
    err = _in_process_one_line(capsys, "train", str(PENDULUM_PPO), "--out", str(file / "run"), *SETS)
    assert "cannot create the run directory" in err
    assert file.read_text() == "mine"


def _unshare() -> tuple[str, ...]:
    """A user and mount namespace, where a test may mount a read-only or a tiny file system."""
    if shutil.which("unshare") is None or \
            subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("this OS does not allow unprivileged mount namespaces (unshare -rm)")
    return ("unshare", "-rm")


def _mounted(setup: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """robot-rl inside a namespace after the shell `setup` (mounts) has run."""
    prefix = _unshare()
    command = " ".join(f"'{a}'" for a in (sys.executable, "-m", "robot_rl.cli", *argv))
    return subprocess.run([*prefix, "sh", "-c", f"{setup} && exec {command}"], capture_output=True,
                          text=True, timeout=300)


def _read_only(folder: Path) -> str:
    return f"mount --bind '{folder}' '{folder}' && mount -o remount,ro,bind '{folder}'"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one_line") / "run"
    assert main(["train", str(PENDULUM_PPO), "--out", str(out), *SETS]) == 0
    return out


def test_out_in_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    err = _one_line(_mounted(_read_only(folder), "train", str(PENDULUM_PPO), "--out", str(folder / "run"),
                             *SETS))
    assert "Read-only file system" in err


def test_export_into_a_read_only_folder_is_one_line(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    err = _one_line(_mounted(_read_only(folder), "export", str(run), "--out", str(folder / "b"),
                             "--episodes", "0", "--no-onnx"))
    assert f"{folder / 'b'}: cannot write the bundle" in err and "Read-only" in err


def test_resuming_a_run_in_a_read_only_folder_is_one_line(run: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    err = _one_line(_mounted(_read_only(copy), "train", "--resume", str(copy)))
    assert "cannot write the run directory: Read-only file system" in err


def test_a_full_disk_is_one_line_naming_the_checkpoint_to_resume_from(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    result = _mounted(f"mount -t tmpfs -o size=300k tmpfs '{disk}'", "train", str(PENDULUM_PPO),
                      "--out", str(disk / "run"), *SETS)
    err = _one_line(result)
    assert "No space left on device" in err and "writing the run failed" in err


# ---------------------------------------------------------------------------------------- environment


def test_a_bogus_mujoco_gl_is_one_line() -> None:
    err = _one_line(_cli("eval", "zoo:InvertedPendulum-v5_ppo", "--episodes", "1",
                         env={"MUJOCO_GL": "bogus"}))
    assert "MUJOCO_GL='bogus'" in err and "egl" in err


def test_an_ascii_terminal_still_gets_the_table() -> None:
    result = _cli("tabular", "pi", env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\\u03b3" in result.stdout or "\\u2191" in result.stdout  # escaped, not a crash


# ----------------------------------------------------------------------------------- robot computer

ROBOT_COMPUTER = '''"""robot-rl as on a robot computer: the base install only (no torch, mujoco, ...)."""
import importlib.abc
import sys

ABSENT = {"torch", "mujoco", "gymnasium", "dm_control", "pybullet", "tensorboard", "matplotlib", "tqdm",
          "onnx", "onnxruntime", "ale_py", "rclpy"}


class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Absent())
from robot_rl.cli import main

sys.exit(main(sys.argv[1:]))
'''


@pytest.fixture(scope="module")
def robot_computer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    launcher = tmp_path_factory.mktemp("robot") / "robot_rl_on_a_robot.py"
    launcher.write_text(ROBOT_COMPUTER)
    return launcher


@pytest.mark.parametrize("argv", [
    ("train", str(PENDULUM_PPO)),
    ("eval", "zoo:Hopper-v5_ppo", "--episodes", "1"),
    ("deploy", "zoo:Hopper-v5_ppo", "--backend", "mujoco"),
    ("deploy", "zoo:Hopper-v5_ppo", "--backend", "pybullet"),
    ("sim2sim", "zoo:Hopper-v5_ppo"),
    ("emulate", "--task", "Hopper-v5"),
    ("tabular", "q-learning", "--episodes", "2"),
], ids=lambda a: " ".join(a[:2]) if isinstance(a, tuple) else a)
def test_on_a_robot_computer_every_command_names_the_extra_to_install(robot_computer: Path,
                                                                     argv: tuple[str, ...]) -> None:
    err = _one_line(_cli(*argv, launcher=robot_computer))
    assert "pip install 'robot-rl[train]'" in err


def test_on_a_robot_computer_export_names_the_extra(robot_computer: Path, run: Path, tmp_path: Path) -> None:
    err = _one_line(_cli("export", str(run), "--out", str(tmp_path / "b"), launcher=robot_computer))
    assert "pip install 'robot-rl[train]'" in err


def test_on_a_robot_computer_a_launch_file_is_still_validated(robot_computer: Path) -> None:
    err = _one_line(_cli("train", str(PENDULUM_PPO), "--set", "ppo.epochs=0", launcher=robot_computer))
    assert "ppo.epochs" in err and "robot-rl[train]" not in err  # the mistake first, not torch
    err = _one_line(_cli("train", str(PENDULUM_PPO), "--set", "ppo.bogus=1", launcher=robot_computer))
    assert "unknown key 'ppo.bogus'" in err


def test_on_a_robot_computer_a_bundle_still_loads_and_acts(robot_computer: Path, tmp_path: Path) -> None:
    script = tmp_path / "act.py"
    script.write_text(ROBOT_COMPUTER.replace(
        "from robot_rl.cli import main\n\nsys.exit(main(sys.argv[1:]))\n",
        "import numpy as np\nfrom robot_rl.policies import load\n"
        "p = load('zoo:Hopper-v5_ppo')\nprint(p.act(np.zeros(p.obs_dim)).shape)\n"))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3,)"
