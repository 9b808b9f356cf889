"""The set-up contract: CI runs the README's test command; the import rules of ARCHITECTURE.md hold."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [b.strip() for b in blocks]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    commands = _readme_commands()
    tests = [c for c in commands if "pytest" in c]
    assert len(tests) == 1, "the README must hold exactly one test command"
    assert tests[0] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_ci_lints_and_type_checks_before_the_tests() -> None:
    test_command = next(c for c in _readme_commands() if "pytest" in c)
    steps = [step.strip() for step in test_command.split("&&")]
    assert "ruff check ." in steps and "python3 .ci/typecheck" in steps
    assert steps.index("python3 .ci/typecheck") < steps.index('python3 -m pytest -m "not slow"')
    assert (ROOT / ".ci" / "typecheck").is_file()


def test_no_test_asserts_wall_time() -> None:
    """Speed belongs in bench/: a wall-time assert fails on a loaded machine, not on a slow program."""
    pattern = re.compile(r"^\s*assert\b.*\belapsed\w*\s*<", flags=re.M)  # a run's duration, bounded
    offenders = [f"{p.name}:{m.group(0).strip()}" for p in (ROOT / "tests").glob("*.py")
                 for m in pattern.finditer(p.read_text())]
    assert offenders == []


def test_readme_main_job_trains_from_a_launch_file() -> None:
    main_job = [c for c in _readme_commands() if "pytest" not in c]
    assert main_job and "torch==2.13.0" in main_job[0]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120)


def test_importing_robot_rl_and_robot_side_packages_does_not_import_heavy_dependencies() -> None:
    code = ("import sys, robot_rl, robot_rl.spec, robot_rl.sim, robot_rl.policies, robot_rl.hardware, "
            "robot_rl.cli\n"
            "names = ('torch', 'mujoco', 'gymnasium', 'dm_control', 'rclpy', 'ray')\n"
            "heavy = [m for m in names if m in sys.modules]\n"
            "print(heavy)")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_spec_module_imports_nothing_else_of_the_project() -> None:
    source = (ROOT / "robot_rl" / "spec.py").read_text()
    imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, flags=re.M)
    assert not [m for m in imports if m.startswith("robot_rl")], imports


# ARCHITECTURE.md, "Who may import whom": folder -> the project modules it must never import, at any
# level (export, which reads run directories with the trainer, lives in the core: robot_rl/export.py).
MODULE_LEVEL_ONLY: set[str] = set()
IMPORT_RULES = {
    "sim": r"agents|trainer|dqn_trainer|policies|hardware|tabular",
    "policies": r"agents|trainer|dqn_trainer|hardware|tabular",
    "hardware": r"agents|trainer|dqn_trainer|tabular|rollout|acting|launch",  # launch: the training schema
    "robot_rl/agents": r"hardware",
    "robot_rl/tabular": r"hardware|policies",
}


@pytest.mark.parametrize("folder", sorted(IMPORT_RULES))
def test_import_rules_of_the_architecture(folder: str) -> None:
    indent = "" if folder in MODULE_LEVEL_ONLY else r"\s*"
    forbidden = re.compile(rf"^{indent}(?:from|import)\s+robot_rl\.({IMPORT_RULES[folder]})\b", flags=re.M)
    offenders = [str(p) for p in (ROOT / folder).rglob("*.py") if forbidden.search(p.read_text())]
    assert offenders == []


def test_training_core_never_imports_hardware() -> None:
    core = [p for p in (ROOT / "robot_rl").glob("*.py")]
    offenders = [str(p) for p in core if re.search(r"^\s*(?:from|import)\s+robot_rl\.hardware", p.read_text(),
                                                   flags=re.M)]
    assert offenders == []


def test_console_script_is_installed() -> None:
    result = subprocess.run(["robot-rl", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "train" in result.stdout and "tabular" in result.stdout
