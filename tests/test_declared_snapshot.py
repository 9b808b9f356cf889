"""A run keeps its own copy of its declared task (launch mapping, model and the files the model reads),
so it exports and resumes after the launch file and model are edited or gone; `task check` on a launch
file that names a registered task says so instead of failing on the `task` key."""

import shutil
import struct
from pathlib import Path

import pytest
import yaml
from test_declared_task import URDF
from test_declared_training import LAUNCH

from robot_rl import policies
from robot_rl.cli import main
from robot_rl.errors import ConfigError
from robot_rl.export import export_run
from robot_rl.launch import read_run_config
from robot_rl.sim.declared.snapshot import model_files, snapshot
from robot_rl.sim.declared.source import declared_id

ROOT = Path(__file__).resolve().parent.parent


def tetrahedron_stl(path: Path) -> None:
    """A binary STL of a 4 cm tetrahedron (MuJoCo reads binary STL)."""
    v = [(0, 0, 0), (0.04, 0, 0), (0, 0.04, 0), (0, 0, 0.04)]
    faces = [(0, 2, 1), (0, 1, 3), (0, 3, 2), (1, 2, 3)]
    data = b"\0" * 80 + struct.pack("<I", len(faces))
    for f in faces:
        data += struct.pack("<3f", 0, 0, 0) + b"".join(struct.pack("<3f", *v[i]) for i in f) + b"\0\0"
    path.write_bytes(data)


def test_a_trained_run_exports_from_its_own_copy_after_the_sources_are_gone(tmp_path: Path, capsys) -> None:
    source = tmp_path / "project"
    (source / "robots" / "meshes").mkdir(parents=True)
    tetrahedron_stl(source / "robots" / "meshes" / "hand.stl")
    urdf = URDF.replace('<link name="lower"><inertial>', '<link name="lower"><collision><geometry>'
                        '<mesh filename="meshes/hand.stl"/></geometry></collision><inertial>')
    (source / "robots" / "arm.urdf").write_text(urdf)
    launch = source / "arm_ppo.yaml"
    launch.write_text(LAUNCH.replace("total_steps: 8192", "total_steps: 2048"))
    run = tmp_path / "run"
    assert main(["train", str(launch), "--out", str(run)]) in (0, None)
    config = read_run_config(run)
    assert config.task == f"declared:{run / 'task' / 'task.yaml'}"
    copied = yaml.safe_load((run / "task" / "task.yaml").read_text())["task"]
    assert copied["model"] == "arm.urdf" and copied["default_pose"] == {"shoulder": 0.3, "elbow": -0.5}
    assert (run / "task" / "meshes" / "hand.stl").read_bytes() == (source / "robots" / "meshes" /
                                                                   "hand.stl").read_bytes()
    shutil.rmtree(source)  # the launch file, the URDF and its mesh: gone
    capsys.readouterr()
    bundle = export_run(run, tmp_path / "bundle", episodes=1)
    assert policies.load(bundle.path).spec.joint_names == ("shoulder", "elbow")
    assert main(["task", "check", str(run / "task" / "task.yaml")]) in (0, None)
    assert "policy joints (2, action position)" in capsys.readouterr().out


def test_the_copy_of_a_copy_is_itself_and_files_outside_the_model_folder_are_named(tmp_path: Path) -> None:
    (tmp_path / "robots").mkdir()
    (tmp_path / "robots" / "arm.urdf").write_text(URDF)
    (tmp_path / "arm.yaml").write_text(LAUNCH)
    first = snapshot(declared_id(str(tmp_path / "arm.yaml")), tmp_path / "run")
    assert snapshot(first, tmp_path / "run") == first
    assert model_files(str(ROOT / "sim" / "assets" / "quadruped.xml")) == []
    tetrahedron_stl(tmp_path / "shared.stl")
    (tmp_path / "robots" / "arm.urdf").write_text(URDF.replace(
        '<link name="lower"><inertial>', '<link name="lower"><collision><geometry>'
        '<mesh filename="../shared.stl"/></geometry></collision><inertial>'))
    with pytest.raises(ConfigError, match=r"task.model: .*arm.urdf' reads '.*shared.stl', outside its"):
        snapshot(declared_id(str(tmp_path / "arm.yaml")), tmp_path / "run2")


def test_task_check_of_a_launch_file_naming_a_registered_task(capsys) -> None:
    assert main(["task", "check", str(ROOT / "launch" / "cube_rotate_z_ppo_dr.yaml")]) in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("task cube:rotate-z: a registered task (defined in code, not declared in this file")
    assert "policy joints (9, action " in out and "unknown key" not in out


def test_task_check_names_an_unknown_registered_id(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.yaml").write_text("task: Hoper-v5\nalgo: ppo\n")
    assert main(["task", "check", str(tmp_path / "bad.yaml")]) == 2
    assert "task: unknown task 'Hoper-v5'; valid ids: InvertedPendulum-v5" in capsys.readouterr().err
