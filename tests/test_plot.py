"""`robot-rl plot`: real tiny runs end to end, and the statistics against closed-form answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from robot_rl.cli import main
from robot_rl.errors import ConfigError
from robot_rl.plotting import CSV_COLUMNS, bootstrap_ci, group_curves, group_labels, plot_runs, read_run_curve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two seeds of one launch file, 2048 steps each (two PPO updates, a progress row after each)."""
    from robot_rl.launch import load_train_config
    from robot_rl.trainer import Trainer

    runs = []
    for seed in (1, 2):
        run_dir = tmp_path_factory.mktemp(f"run_s{seed}")
        config = load_train_config(ROOT / "launch" / "invertedpendulum_ppo.yaml",
                                   [f"seed={seed}", "total_steps=2048", "eval.episodes=1",
                                    "log.progress_bar=false", "log.tensorboard=false", "log.plot=false"])
        Trainer(config, run_dir).train()
        runs.append(run_dir)
    return runs


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_plot_of_two_tiny_runs_writes_a_png_and_a_csv_with_the_right_columns(
        two_tiny_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fig.png"
    assert main(["plot", *map(str, two_tiny_runs), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"png": str(out), "csv": str(tmp_path / "fig.csv"), "runs": 2}
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    rows = _rows(tmp_path / "fig.csv")
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {r["axis"] for r in rows} == {"env_steps", "wall_time_s"}
    assert {r["configuration"] for r in rows} == {"InvertedPendulum-v5 ppo [2 seeds]"}  # seeds grouped
    assert all(r["runs"] == "2" for r in rows)
    for r in rows:
        low, mean, high = float(r["ci_low"]), float(r["mean"]), float(r["ci_high"])
        assert np.isfinite([low, mean, high]).all() and low <= mean <= high
    steps = [float(r["x"]) for r in rows if r["axis"] == "env_steps"]
    assert steps[0] == 1024 and steps[-1] == 2048  # what both seeds logged, not beyond


def test_plot_refuses_what_is_not_a_run_or_a_missing_metric(two_tiny_runs: list[Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "f.png")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    first, out = str(two_tiny_runs[0]), str(tmp_path / "f.png")
    assert main(["plot", first, "--metric", "success_rate", "--out", out]) == 2
    assert "no 'success_rate' column" in capsys.readouterr().err
    assert main(["plot", str(two_tiny_runs[0]), "--out", str(tmp_path / "f.jpg")]) == 2
    assert "must end in .png" in capsys.readouterr().err
    assert not list(tmp_path.glob("f.*"))


def test_bootstrap_interval_matches_the_normal_theory_for_many_runs() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(10.0, 2.0, size=(400, 1))
    mean, low, high = bootstrap_ci(values, resamples=4000)
    half_width = 1.96 * values.std() / np.sqrt(400)  # the CLT interval of a mean
    assert mean[0] == pytest.approx(values.mean())
    assert (high[0] - low[0]) / 2 == pytest.approx(half_width, rel=0.1)
    assert low[0] < values.mean() < high[0]


def test_bootstrap_interval_of_identical_runs_or_one_run_has_no_width() -> None:
    same = np.tile(np.array([[1.0, 2.0, 3.0]]), (5, 1))
    for values in (same, same[:1]):
        mean, low, high = bootstrap_ci(values)
        np.testing.assert_array_equal(mean, [1.0, 2.0, 3.0])
        np.testing.assert_array_equal(low, mean)
        np.testing.assert_array_equal(high, mean)


def _fake_run(folder: Path, seed: int, lr: float, steps: list[int], returns: list[float]) -> Path:
    folder.mkdir()
    config = {"task": "Hopper-v5", "algo": "ppo", "seed": seed, "ppo": {"learning_rate": lr},
              "log": {"progress_bar": seed == 1}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [f"{s},{s / 100},{r}" for s, r in zip(steps, returns, strict=True)]
    lines = ["step,time_s,episode_return", *rows]
    (folder / "progress.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_runs_group_by_configuration_without_seed_and_average_point_by_point(tmp_path: Path) -> None:
    a = _fake_run(tmp_path / "a", 1, 1e-3, [100, 200, 300], [1.0, 2.0, 3.0])
    b = _fake_run(tmp_path / "b", 2, 1e-3, [150, 250, 350], [4.5, 5.5, 6.5])  # logged at other steps
    c = _fake_run(tmp_path / "c", 1, 3e-4, [100, 300], [0.0, 0.0])
    curves = [read_run_curve(d, "return") for d in (a, b, c)]
    groups = group_curves(curves)
    assert [len(m) for m in groups.values()] == [2, 1]  # seeds and log settings do not split a group
    labels = sorted(group_labels(groups).values())
    assert labels == ["Hopper-v5 ppo, ppo.learning_rate=0.0003 [1 seed]",
                      "Hopper-v5 ppo, ppo.learning_rate=0.001 [2 seeds]"]
    _, table = plot_runs([a, b, c], tmp_path / "cmp.png")
    rows = [r for r in _rows(table) if r["axis"] == "env_steps" and "0.001" in r["configuration"]]
    x = np.array([float(r["x"]) for r in rows])
    assert x[0] == 150 and x[-1] == 300  # the steps both runs reached
    # a: y = x/100; b: y = x/100 + 3 -> the mean is x/100 + 1.5 at every grid point
    np.testing.assert_allclose([float(r["mean"]) for r in rows], x / 100 + 1.5, rtol=1e-5)


def test_a_hostile_run_directory_is_one_error_naming_the_file(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "run", 1, 1e-3, [100, 200], [1.0, 2.0])
    (run / "config.yaml").write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: not valid YAML"):
        read_run_curve(run, "return")
    (run / "config.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="not a run's config"):
        read_run_curve(run, "return")
    (run / "config.yaml").write_text("task: Hopper-v5\nalgo: ppo\n")
    (run / "progress.csv").write_text("step,time_s,episode_return\n100,1,nan\nabc,2,3\n300,x,1\n")
    with pytest.raises(ConfigError, match=r"no row of progress\.csv has a finite .episode_return."):
        read_run_curve(run, "return")


def test_wall_time_continues_across_a_resume() -> None:
    from robot_rl.plotting import training_time

    # a run killed at 30 s, resumed (time_s restarts), killed again at 15 s of the second session
    np.testing.assert_allclose(training_time(np.array([10.0, 20.0, 30.0, 5.0, 15.0, 4.0])),
                               [10.0, 20.0, 30.0, 35.0, 45.0, 49.0])
    np.testing.assert_allclose(training_time(np.array([1.0, 2.0])), [1.0, 2.0])
