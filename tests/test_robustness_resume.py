"""`robot-rl robustness` stopped and resumed: a real SIGINT/SIGTERM to a real `robot-rl robustness` process
keeps the finished points (CSV + record), exits 128 + the signal, and the command it prints with --resume
finishes a map equal to an uninterrupted one bit for bit; a resume of another map, a resume of nothing,
and a corrupt record are one clear error each."""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_rl.cli import main
from robot_rl.robustness_record import read_record, record_path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "robot_rl.cli"]
POLICY = "zoo:InvertedPendulum-v5_ppo"
# 20 points of one full-length episode each: about 0.1 s a point here, so a signal lands mid-map
SLOW = [POLICY, "--grid", "gain=0.3:1:5", "--grid", "mass=0.5:1.5:4", "--episodes", "1",
        "--max-steps", "1000"]
SMALL = [POLICY, "--grid", "gain=0.02,1", "--grid", "mass=0.5,1.5", "--episodes", "1", "--max-steps", "30"]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["robustness", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The SLOW map run once without a stop: its PNG (CSV beside it) and its --json output."""
    out = tmp_path_factory.mktemp("whole") / "map.png"
    proc = subprocess.run([*CLI, "robustness", *SLOW, "--out", str(out), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_map_keeps_the_finished_points_and_the_printed_resume_finishes_the_same_map(
        sig: signal.Signals, tmp_path: Path, uninterrupted: tuple[Path, dict],
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    record = record_path(out)
    proc = subprocess.Popen([*CLI, "robustness", *SLOW, "--out", str(out), "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None and not (record.is_file() and read_record(record).points):
            time.sleep(0.01)
        assert proc.poll() is None, "the map finished before the signal: the grid is too small"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, stderr
    assert stdout == "" and "Traceback" not in stderr
    kept = read_record(record).points
    assert 1 <= len(kept) < 20
    assert not out.exists()  # no picture of half a map
    table = rows(out.with_suffix(".csv"))
    grid = [(g, m) for g in range(5) for m in range(4)]
    assert [tuple(i) for i in sorted(kept)] == grid[:len(kept)]  # the grid order, no hole
    assert len(table) == len(kept)
    for row, index in zip(table, sorted(kept), strict=True):
        assert float(row["mean_return"]) == pytest.approx(kept[index][0], rel=1e-5)
    line = stderr.strip().splitlines()[-1]
    assert f"stopped by {sig.name}: kept {len(kept)} of 20 points in {out.with_suffix('.csv')}" in line
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[:2] == ["robot-rl", "robustness"] and command[-1] == "--resume"

    code, printed, err = run(command[2:], capsys)
    assert code == 0, err
    whole_png, whole = uninterrupted
    resumed = json.loads(printed)
    assert resumed["mean"] == whole["mean"] and resumed["std"] == whole["std"]  # bit for bit
    assert out.with_suffix(".csv").read_bytes() == whole_png.with_suffix(".csv").read_bytes()
    assert out.read_bytes() == whole_png.read_bytes()
    assert len(read_record(record).points) == 20


def test_a_killed_map_resumes_too(tmp_path: Path, uninterrupted: tuple[Path, dict],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL (a crash, the OOM killer): no handler runs, yet the record and CSV are whole files (each
    written to a temporary name, then renamed) and --resume finishes the same map."""
    out = tmp_path / "map.png"
    record = record_path(out)
    proc = subprocess.Popen([*CLI, "robustness", *SLOW, "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not (record.is_file() and len(read_record(record).points) >= 2):
            time.sleep(0.01)
        assert proc.poll() is None, "the map finished before the kill: the grid is too small"
        proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    kept = len(read_record(record).points)
    assert 2 <= kept < 20 and len(rows(out.with_suffix(".csv"))) in (kept - 1, kept)
    code, printed, err = run([*SLOW, "--out", str(out), "--json", "--resume"], capsys)
    assert code == 0, err
    whole_png, whole = uninterrupted
    assert json.loads(printed)["mean"] == whole["mean"]
    assert out.with_suffix(".csv").read_bytes() == whole_png.with_suffix(".csv").read_bytes()


def test_resume_evaluates_only_the_missing_points(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    assert run([*SMALL, "--out", str(out)], capsys)[0] == 0
    record = record_path(out)
    data = json.loads(record.read_text())
    data["points"] = data["points"][:2]
    data["points"][0]["mean"] = 12345.5  # a kept point is not evaluated again: its value stays
    record.write_text(json.dumps(data))

    code, _, err = run([*SMALL, "--out", str(out)], capsys)  # a stopped map without --resume: refused
    assert code == 2 and "holds a stopped map (2 of 4 points" in err and "--resume" in err
    assert len(read_record(record).points) == 2

    code, _, err = run([*SMALL, "--out", str(out), "--resume"], capsys)
    assert code == 0, err
    means = [float(r["mean_return"]) for r in rows(out.with_suffix(".csv"))]
    assert len(means) == 4 and means[0] == 12345.5 and 12345.5 not in means[1:]


def test_a_finished_map_is_overwritten_without_resume_and_rewritten_from_its_record_with_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    assert run([*SMALL, "--out", str(out)], capsys)[0] == 0
    table = out.with_suffix(".csv")
    first = table.read_bytes()
    table.write_text("garbage,\x00\n\"unclosed")  # a hostile CSV: the record, not the CSV, is read
    assert run([*SMALL, "--out", str(out), "--resume"], capsys)[0] == 0
    assert table.read_bytes() == first
    other = [POLICY, "--grid", "gain=0.5", "--episodes", "1", "--max-steps", "30"]
    assert run([*other, "--out", str(out)], capsys)[0] == 0  # a new map over a finished one
    assert [r["actuator_gain_scale"] for r in rows(table)] == ["0.5"]
    assert read_record(record_path(out)).spec["axes"] == [["actuator_gain_scale", [0.5]]]


@pytest.mark.parametrize(("change", "key", "recorded", "given"), [
    (["--episodes", "2"], "episodes", "1", "2"),
    (["--seed", "7"], "seed", "1000000", "7"),
    (["--metric", "fall_rate"], "metric", "'return'", "'fall_rate'"),
    (["--max-steps", "31"], "max_steps", "30", "31"),
])
def test_a_resume_of_another_map_is_one_error_naming_the_first_differing_key(
        change: list[str], key: str, recorded: str, given: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    assert run([*SMALL, "--out", str(out)], capsys)[0] == 0
    before = record_path(out).read_bytes()
    code, _, err = run([*SMALL, *change, "--out", str(out), "--resume"], capsys)
    assert code == 2
    assert f"has {key} {recorded}, this command {given}" in err and err.count("error") == 1
    assert record_path(out).read_bytes() == before


def test_a_resume_of_another_grid_or_policy_names_it(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    assert run([*SMALL, "--out", str(out)], capsys)[0] == 0
    grid = [POLICY, "--grid", "gain=0.02,1", "--grid", "mass=0.5,2", "--episodes", "1", "--max-steps", "30"]
    code, _, err = run([*grid, "--out", str(out), "--resume"], capsys)
    recorded = "[['actuator_gain_scale', [0.02, 1.0]], ['body_mass_scale', [0.5, 1.5]]]"
    assert code == 2 and f"has axes {recorded}, this command" in err
    other = ["zoo:Hopper-v5_ppo", *SMALL[1:]]
    code, _, err = run([*other, "--out", str(out), "--resume"], capsys)
    assert code == 2 and "has policy 'zoo:InvertedPendulum-v5_ppo', this command 'zoo:Hopper-v5_ppo'" in err


def test_a_resume_with_a_policy_that_changed_at_the_same_path_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "policies" / "zoo" / "InvertedPendulum-v5_ppo", bundle)
    out = tmp_path / "map.png"
    args = [str(bundle), *SMALL[1:], "--out", str(out)]
    assert run(args, capsys)[0] == 0
    assert run([*args, "--resume"], capsys)[0] == 0  # the same policy: resumes (nothing left to do)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["normalizer"]["mean"][2] += 0.5  # re-exported with another normalizer: other actions
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run([*args, "--resume"], capsys)
    assert code == 2 and "acts otherwise than the one the map" in err and "policy_actions" in err


def test_resume_with_nothing_to_resume_is_a_clear_error(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    code, _, err = run([*SMALL, "--out", str(out), "--resume"], capsys)
    assert code == 2 and "nothing to resume" in err and str(record_path(out)) in err
    assert not record_path(out).exists() and not out.with_suffix(".csv").exists()


@pytest.mark.parametrize("content", [
    b"", b"{\"format\": \"robot_rl.robustness_map/1\", \"spec\"", b"\xff\xfe\x00garbage", b"[]",
    b"{\"format\": \"something else\"}",
    b"{\"format\": \"robot_rl.robustness_map/1\", \"spec\": {\"policy\": 1}, \"points\": []}",
])
def test_a_corrupt_record_is_a_clear_error_with_or_without_resume(
        content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    record_path(out).write_bytes(content)
    for resume in ([], ["--resume"]):
        code, _, err = run([*SMALL, "--out", str(out), *resume], capsys)
        assert code == 2 and "not a robustness map record" in err and "Traceback" not in err
    assert record_path(out).read_bytes() == content  # not overwritten: the user decides


@pytest.mark.parametrize(("point", "why"), [
    ({"index": [2, 0], "mean": 1.0, "std": 0.0, "pushes": 0}, "inside the grid [2, 2]"),
    ({"index": [0], "mean": 1.0, "std": 0.0, "pushes": 0}, "inside the grid"),
    ({"index": [0, 0], "mean": "1", "std": 0.0, "pushes": 0}, "mean, std"),
    ({"index": "00", "mean": 1.0, "std": 0.0, "pushes": 0}, "inside the grid"),
    ({"mean": 1.0}, "inside the grid"),
    ("point", "inside the grid"),
])
def test_a_record_with_a_bad_point_names_the_point(point: object, why: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    assert run([*SMALL, "--out", str(out)], capsys)[0] == 0
    data = json.loads(record_path(out).read_text())
    data["points"][1] = point
    record_path(out).write_text(json.dumps(data))
    code, _, err = run([*SMALL, "--out", str(out), "--resume"], capsys)
    assert code == 2 and "point 1 must be" in err and why in err


def test_a_stop_mid_point_drops_that_point_and_evaluates_nothing_more() -> None:
    """The library contract under the signals: `stop` is asked at every step; once true, the point in
    progress is not finished (no progress call for it) and GridStopped says how many were."""
    from robot_rl.policy_source import load_policy_source
    from robot_rl.robustness import GridStopped, parse_grid, robustness_grid

    source = load_policy_source(POLICY)
    asked, seen = [0], []

    def stop() -> bool:  # true at the 5th time asked once the first point is done (mid second point)
        if len(seen) == 2:
            asked[0] += 1
        return asked[0] >= 5

    with pytest.raises(GridStopped) as stopped:
        robustness_grid(source.task, source.act, [parse_grid("mass=0.5,1,1.5")], 1, 0, max_steps=10,
                        progress=lambda partial, finished: seen.append(sorted(finished)), stop=stop)
    assert stopped.value.kept == 1
    assert seen == [[], [(0,)]]
    assert asked[0] == 5  # not asked again after it turned true: nothing ran on
