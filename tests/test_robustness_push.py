"""`robot-rl robustness --grid push_x=...`: push-recovery maps of a floating-base policy, each point a
pinned kick (`randomize.push` at [v, v]) every --push-interval seconds, on the real quadruped."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.errors import ConfigError
from robot_rl.evaluation import evaluate, make_eval_env
from robot_rl.robustness import (
    DEFAULT_PUSH_INTERVAL,
    GridAxis,
    axis_label,
    grid_config,
    parse_grid,
    parse_push_interval,
    robustness_grid,
    valid_terms,
)
from robot_rl.sim.randomization import RandomizationConfig
from robot_rl.sim.randomization.push import PushConfig

TASK = "quadruped-walk"
Policy = Callable[[np.ndarray], np.ndarray]


@pytest.fixture(scope="module")
def policy() -> Policy:
    """The zoo's quadruped walker (numpy runtime), deterministic."""
    from robot_rl.policies import load

    return load("zoo:quadruped-walk_ppo").act_normalized


def test_push_axes_parse_and_pin_one_component_the_others_stay_zero() -> None:
    assert parse_grid("push_x=-1.5:1.5:3") == GridAxis("push_x", (-1.5, 0.0, 1.5))
    assert parse_grid("push_yaw=0.5,-2").values == (0.5, -2.0)
    assert all(term in valid_terms() for term in ("push_x", "push_y", "push_yaw"))
    assert axis_label("push_y") == "push_y (m/s added to the base, world y)"
    assert "rad/s" in axis_label("push_yaw")
    config = grid_config({"push_y": -0.7})
    assert config.push == PushConfig(interval=DEFAULT_PUSH_INTERVAL, y=(-0.7, -0.7))
    both = grid_config({"push_x": 1.0, "body_mass_scale": 1.2}, push_interval=(0.5, 1.0))
    assert both == RandomizationConfig(body_mass_scale=(1.2, 1.2),
                                       push=PushConfig(interval=(0.5, 1.0), x=(1.0, 1.0)))
    assert not grid_config({"push_x": 0.0}).active  # the 0 point is the nominal one: no push at all
    assert parse_push_interval("1:2.5") == (1.0, 2.5)


@pytest.mark.parametrize("text", ["3:1", "0:2", "-1:1", "2", "a:b", "1:2:3", "1:inf"])
def test_a_bad_push_interval_is_one_error_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"--push-interval '{text}': expected LOW:HIGH seconds, 0 < LOW"):
        parse_push_interval(text)


def test_a_bad_push_value_is_the_push_terms_own_error() -> None:
    with pytest.raises(ConfigError, match=r"--grid 'push_x=nan': randomize.push.x: .*finite"):
        parse_grid("push_x=nan")
    with pytest.raises(ConfigError, match=r"--grid 'push_yaw=1,inf': randomize.push.yaw: .*rad/s"):
        parse_grid("push_yaw=1,inf")
    with pytest.raises(ConfigError, match=r"valid terms: .*push_x, push_y, push_yaw"):
        parse_grid("push_z=1")


def test_no_push_on_the_task_and_an_interval_without_a_push_fail_before_any_point_runs() -> None:
    calls = []

    def hopper(obs: np.ndarray) -> np.ndarray:
        calls.append(1)
        return np.zeros(3)

    for simulator in ("gymnasium", "engine"):  # the real reason either way: Hopper has no floating base
        with pytest.raises(ConfigError, match=r"^--grid push_x: randomize.push: task 'Hopper-v5' cannot take "
                                              r"it: the model has no free joint \(a floating base\)"):
            robustness_grid("Hopper-v5", hopper, [GridAxis("push_x", (0.0, 1.0))], 1, 0, simulator=simulator)
    with pytest.raises(ConfigError, match=r"--grid push_y: .*no free joint"):  # an axis of 0 kicks is probed
        robustness_grid("Hopper-v5", hopper,
                        [GridAxis("body_mass_scale", (1.0,)), GridAxis("push_y", (0.0,))], 1, 0)
    with pytest.raises(ConfigError, match=r"--push-interval: no push on the grid; give a push axis "
                                          r"\(push_x, push_y, push_yaw\)"):
        robustness_grid(TASK, hopper, [GridAxis("body_mass_scale", (1.0, 1.2))], 1, 0, push_interval=(1, 2))
    assert not calls


def test_a_free_base_only_the_engine_pushes_is_told_to_use_the_engine() -> None:
    with pytest.raises(ConfigError, match=r"--grid push_yaw: randomize.push: task 'Ant-v5' does not support "
                                          r"it.*; the task's engine worlds take pushes: --simulator engine"):
        robustness_grid("Ant-v5", lambda o: np.zeros(8), [GridAxis("push_yaw", (1.0,))], 1, 0)


def test_a_push_point_kicks_the_base_by_its_value_at_the_same_times_at_every_point(policy: Policy) -> None:
    """The world pushed at [1, 0, -0.5] (x m/s, y m/s, yaw rad/s) every 0.2 s: the same state as the
    unpushed world until the first push, then its base velocity ~ that much more after one control
    period; a push of another size comes at the same steps (the times are drawn from the seed alone)."""

    def run(values: dict[str, float], interval: tuple[float, float]) -> tuple[list[int], list, np.ndarray]:
        env = make_eval_env(TASK, randomize=grid_config(values, interval))
        obs, _ = env.reset(seed=5)
        steps, kicks, qvel = [], [], []
        for t in range(1, 46):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            assert not (terminated or truncated)
            if "push" in info:
                steps.append(t)
                kicks.append(np.asarray(info["push"]))
            qvel.append(env.unwrapped.data.qvel[:6].copy())
        env.close()
        return steps, kicks, np.array(qvel)

    steps, kicks, pushed = run({"push_x": 1.0, "push_yaw": -0.5}, (0.2, 0.2))
    _, none, still = run({"push_x": 0.0}, (0.2, 0.2))
    assert steps == [11, 21, 31, 41] and not none  # before the physics of control period 10, 20, ...
    for kick in kicks:
        np.testing.assert_array_equal(kick, [1.0, 0.0, -0.5])
    np.testing.assert_array_equal(pushed[:10], still[:10])  # nothing else differs before the first push
    jump = pushed[10] - still[10]
    np.testing.assert_allclose(jump[[0, 1, 5]], [1.0, 0.0, -0.5], atol=0.05)  # x, y, body-z angular
    other, _, _ = run({"push_x": -1.5}, (0.2, 0.3))
    assert other == run({"push_y": 0.3}, (0.2, 0.3))[0] and other[0] in (11, 12, 13, 14, 15, 16)


def test_a_push_grid_is_the_evaluation_under_that_push_and_combines_with_a_scale(policy: Policy) -> None:
    axes = [GridAxis("push_x", (0.0, 1.5)), GridAxis("body_mass_scale", (0.8, 1.0))]
    grid = robustness_grid(TASK, policy, axes, 1, 11, max_steps=150, push_interval=(0.5, 1.0))
    assert grid.push_interval == (0.5, 1.0)
    plain = evaluate(TASK, policy, 1, 11, max_steps=150)
    assert grid.mean[0, 1] == pytest.approx(plain["mean_return"], abs=1e-9)  # no kick, mass x1: nominal
    kicked = evaluate(TASK, policy, 1, 11, max_steps=150, randomize=RandomizationConfig(
        body_mass_scale=(0.8, 0.8), push=PushConfig(interval=(0.5, 1.0), x=(1.5, 1.5))))
    assert grid.mean[1, 0] == pytest.approx(kicked["mean_return"], abs=1e-9)
    assert len(np.unique(np.round(grid.mean, 6))) == 4
    assert grid.mean[1, 1] < grid.mean[0, 1]  # a 1.5 m/s kick every 0.5-1 s costs the walker return


def test_fall_rate_counts_the_episodes_a_kick_topples(policy: Policy) -> None:
    grid = robustness_grid(TASK, policy, [GridAxis("push_x", (0.0, 3.0))], 2, 11, metric="fall_rate",
                           max_steps=200, push_interval=(0.5, 1.0))
    np.testing.assert_array_equal(grid.mean, [0.0, 1.0])  # 3 m/s forward kicks floor it, every time
    with pytest.raises(ConfigError, match="--metric fall_rate: task 'Hopper-v5' reports no falls"):
        robustness_grid("Hopper-v5", lambda o: np.zeros(3), [GridAxis("body_mass_scale", (1.0,))], 1, 0,
                        metric="fall_rate", max_steps=5)


def test_a_2x2_push_map_from_the_cli_writes_csv_png_and_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: Policy) -> None:
    out = tmp_path / "push.png"
    assert main(["robustness", "zoo:quadruped-walk_ppo", "--grid", "push_x=0,1.5", "--grid", "push_y=-1.5,0",
                 "--episodes", "2", "--max-steps", "150", "--push-interval", "0.5:1", "--out", str(out),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["axes"] == {"push_x": [0.0, 1.5], "push_y": [-1.5, 0.0]}
    assert printed["push_interval"] == [0.5, 1.0]
    pushes = np.array(printed["pushes"])  # the pushes each point's 2 episodes got: none at (0, 0)
    assert pushes[0, 1] == 0 and (np.delete(pushes.ravel(), 1) >= 2).all()
    plain = evaluate(TASK, policy, 2, printed["seed"], max_steps=150)
    mean = np.array(printed["mean"])
    assert mean[0, 1] == pytest.approx(plain["mean_return"], abs=1e-6)  # (0, 0): no push
    assert all(m < plain["mean_return"] for m in (mean[0, 0], mean[1, 0], mean[1, 1]))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "push.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["push_x", "push_y", "mean_return", "std_return", "episodes", "push_interval_low",
                             "push_interval_high"]
    assert {(r["push_interval_low"], r["push_interval_high"]) for r in rows} == {("0.5", "1")}
    assert [(r["push_x"], r["push_y"]) for r in rows] == [("0", "-1.5"), ("0", "0"), ("1.5", "-1.5"),
                                                          ("1.5", "0")]
    np.testing.assert_allclose([float(r["mean_return"]) for r in rows], mean.ravel(), rtol=1e-5)

    line = tmp_path / "yaw.png"
    assert main(["robustness", "zoo:quadruped-walk_ppo", "--grid", "push_yaw=0,4", "--metric", "fall_rate",
                 "--episodes", "1", "--max-steps", "100", "--push-interval", "0.4:0.6",
                 "--out", str(line)]) == 0
    text = capsys.readouterr().out
    assert "push_yaw" in text and "fall_rate" in text and line.is_file()
    assert "over 1 episodes, a push every 0.4-0.6 s" in text


def test_a_map_whose_episodes_end_before_the_first_push_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """50 steps (1 s) and the default 2-4 s interval: no point is pushed, the map is the nominal one."""
    assert main(["robustness", "zoo:quadruped-walk_ppo", "--grid", "push_x=0,1,-1", "--episodes", "1",
                 "--max-steps", "50", "--out", str(tmp_path / "none.png"), "--json"]) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert printed["pushes"] == [0, 0, 0] and len(set(printed["mean"])) == 1
    assert "warning: 2 point(s) with a kick got no push" in err and "2-4 s in (--push-interval)" in err
    assert main(["robustness", "zoo:quadruped-walk_ppo", "--grid", "push_x=0,1", "--episodes", "1",
                 "--max-steps", "50", "--push-interval", "0.3:0.3", "--out", str(tmp_path / "p.png")]) == 0
    assert "warning" not in capsys.readouterr().err

