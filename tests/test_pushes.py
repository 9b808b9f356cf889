"""`randomize.push`: random pushes of a floating base between control periods (sim/randomization/push.py,
applied by the batched engine). A push adds a velocity in the declared ranges to the base, at the
declared interval, and changes nothing else; no push leaves the engine as it was; the batched and the
per-world stepping agree; bad input is one error naming the key."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robot_rl.config import from_dict
from robot_rl.errors import ConfigError
from robot_rl.launch import parse_train_config
from robot_rl.sim.engine.batched import BatchedEngine
from robot_rl.sim.randomization import RandomizationConfig
from robot_rl.sim.randomization.push import PushConfig
from robot_rl.sim.registry import engine_task, make_env

TASK = "quadruped-walk"  # a free base; control period 0.02 s
PERIOD = 0.02
PUSH = PushConfig(interval=(0.1, 0.2), x=(-0.5, 0.5), y=(0.2, 0.3), yaw=(-0.4, -0.1))  # every 5-10 periods
PUSHED = RandomizationConfig(push=PUSH)
FREE_DOFS = [0, 1, 5]  # the quadruped's free joint is its first: qvel 0..5


def _engine(randomize: RandomizationConfig | None, n: int = 3, seed: int = 7, **kwargs) -> BatchedEngine:
    return BatchedEngine(engine_task(TASK), n, seed=seed, threads=1, randomize=randomize, **kwargs)


def _actions(steps: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.3, 0.3, (steps, n, 12))


def test_a_push_adds_a_velocity_in_range_at_the_declared_interval_and_nothing_else() -> None:
    pushed, plain = _engine(PUSHED), _engine(None)
    try:
        assert pushed._stepper is not None  # MuJoCo's batch: the push is written into its qvel rows
        obs_p, _ = pushed.reset()
        obs_n, _ = plain.reset()
        np.testing.assert_array_equal(obs_p, obs_n)
        last = np.zeros(3, dtype=int)  # each world's previous push (control period of its episode)
        gaps: list[int] = []
        for t, a in enumerate(_actions(60, 3)):
            out_p = pushed.step(a)
            if "push" in out_p[4]:
                kicks, mask = out_p[4]["push"], out_p[4]["_push"]
                assert mask.any()
                for i in np.flatnonzero(mask):
                    x, y, yaw = kicks[i]
                    assert -0.5 <= x <= 0.5 and 0.2 <= y <= 0.3 and -0.4 <= yaw <= -0.1
                    gaps.append(t - last[i])
                    last[i] = t
                    # the same velocity added to the push-free twin, through the declared interface
                    plain.worlds[i].data.qvel[FREE_DOFS] += kicks[i]
                assert not kicks[~mask].any()
            out_n = plain.step(a)
            for got, want in zip(out_p[:4], out_n[:4], strict=True):  # obs, reward, terminated, truncated
                np.testing.assert_array_equal(got, want)
            last[out_p[2] | out_p[3]] = t + 1  # a fall: the next episode's periods count from the next step
        assert gaps and all(5 <= g <= 10 for g in gaps), gaps  # 0.1-0.2 s of 0.02 s periods
        assert len(gaps) >= 3 * 5  # every world pushed over and over in 60 periods (1.2 s)
    finally:
        pushed.close()
        plain.close()


def test_the_push_lands_in_a_world_whose_data_a_caller_holds() -> None:
    """A world whose MjData was handed out (read by a caller) is pushed there, not in the batch's row
    that the handed-out data overwrites before the step."""
    read, untouched = _engine(PUSHED), _engine(PUSHED)
    try:
        read.reset()
        untouched.reset()
        pushes = 0
        for a in _actions(40, 3):
            _ = [w.data.qvel[0] for w in read.worlds]  # pulls and hands out every world's data
            out_r, out_u = read.step(a), untouched.step(a)
            pushes += int("push" in out_r[4])
            np.testing.assert_array_equal(out_r[0], out_u[0])
        assert pushes >= 3
    finally:
        read.close()
        untouched.close()


def test_no_push_leaves_the_engine_bit_identical() -> None:
    """Absent, or with every velocity range [0, 0] (only an interval), pushes draw nothing and write
    nothing: the engine steps as without them, other terms included, and reports no push."""
    base = RandomizationConfig(body_mass_scale=(0.9, 1.1), geom_friction_scale=(0.5, 1.25))
    idle = dataclasses.replace(base, push=PushConfig(interval=(0.1, 0.2)))
    assert not idle.push.active and idle.active_names() == base.active_names()
    assert not RandomizationConfig(push=PushConfig(interval=(0.1, 0.2))).active
    a, b = _engine(base, autoreset=True, max_episode_steps=25), _engine(idle, max_episode_steps=25)
    try:
        assert a.randomizer.pushes is None and b.randomizer.pushes is None
        obs_a, info_a = a.reset()
        obs_b, info_b = b.reset()
        np.testing.assert_array_equal(obs_a, obs_b)
        for key in ("body_mass_scale", "geom_friction_scale"):  # the same draws from the same generators
            np.testing.assert_array_equal(info_a["randomization"][key], info_b["randomization"][key])
        for act in _actions(60, 3):
            out_a, out_b = a.step(act), b.step(act)
            for got, want in zip(out_a[:4], out_b[:4], strict=True):
                np.testing.assert_array_equal(got, want)
            assert "push" not in out_a[4] and "push" not in out_b[4]
            assert "pushes" not in (out_b[4].get("final_info") or {})
    finally:
        a.close()
        b.close()


def test_the_batched_and_the_per_world_stepping_push_alike() -> None:
    batched = _engine(PUSHED)
    per_world = _engine(PUSHED, autoreset=False)  # a robot's plant: each MjData stepped by mj_step
    pooled = BatchedEngine(engine_task(TASK), 3, seed=7, threads=2, randomize=PUSHED, autoreset=False)
    try:
        assert batched._stepper is not None and per_world._stepper is None and pooled._pool is not None
        for e in (batched, per_world, pooled):
            e.reset()
        pushes, running = 0, np.ones(3, dtype=bool)  # a world that fell resets only in the batched engine
        for a in _actions(80, 3):
            outs = [e.step(a) for e in (batched, per_world, pooled)]
            if "push" in outs[0][4]:
                pushes += int(outs[0][4]["_push"][running].sum())
            ended = outs[0][2] | outs[0][3]  # the batched engine's row: the next episode's first obs
            for o in outs[1:]:
                kicks = [x[4].get("push", np.zeros((3, 3)))[running] for x in (o, outs[0])]
                np.testing.assert_array_equal(*kicks)
                np.testing.assert_array_equal(o[0][running & ~ended], outs[0][0][running & ~ended])
                for got, want in zip(o[1:4], outs[0][1:4], strict=True):  # reward, terminated, truncated
                    np.testing.assert_array_equal(got[running], want[running])
            running &= ~ended
        assert pushes >= 20 and running.any()
        for i in np.flatnonzero(running):
            np.testing.assert_array_equal(batched.worlds[i].data.qvel, per_world.worlds[i].data.qvel)
    finally:
        for e in (batched, per_world, pooled):
            e.close()


def test_pushes_are_reproducible_from_the_seed_and_counted_per_episode() -> None:
    def run(seed: int) -> tuple[list[np.ndarray], list[int]]:
        engine = _engine(PUSHED, n=2, seed=seed, max_episode_steps=30)
        try:
            engine.reset()
            kicks, counts = [], []
            for a in _actions(70, 2):
                info = engine.step(a)[4]
                if "push" in info:
                    kicks.append(info["push"].copy())
                final = info.get("final_info") or {}
                if "pushes" in final:
                    counts += final["pushes"][final["_pushes"]].tolist()
            return kicks, counts
        finally:
            engine.close()

    first, again, other = run(3), run(3), run(4)
    assert len(first[0]) == len(again[0])
    assert all(np.array_equal(a, b) for a, b in zip(first[0], again[0], strict=True))
    assert first[1] == again[1]
    assert not all(np.array_equal(a, b) for a, b in zip(first[0], other[0], strict=False))
    assert len(first[1]) == 4 and all(2 <= c <= 5 for c in first[1])  # 30 periods, a push every 5-10


def test_an_evaluation_world_is_pushed_through_make_env() -> None:
    """The Gymnasium-API world (evaluation, `robot-rl eval --randomize`) takes the push: its step info
    holds the world's push, the same for the same seed."""
    def pushes(seed: int) -> list[np.ndarray]:
        env = make_env(TASK, seed=seed, randomize=PUSHED)
        try:
            env.reset(seed=seed)
            out = []
            for a in _actions(40, 1)[:, 0]:
                info = env.step(a)[4]
                if "push" in info:
                    out.append(np.asarray(info["push"]))
            return out
        finally:
            env.close()

    got = pushes(11)
    assert len(got) >= 4 and all(k.shape == (3,) and -0.5 <= k[0] <= 0.5 and 0.2 <= k[1] <= 0.3
               and -0.4 <= k[2] <= -0.1 for k in got)
    assert all(np.array_equal(a, b) for a, b in zip(got, pushes(11), strict=True))


def test_the_log_line_names_the_push() -> None:
    line = RandomizationConfig(geom_friction_scale=(0.5, 1.25), push=PUSH).describe()
    assert line == ("randomize: geom_friction_scale [0.5, 1.25], push every [0.1, 0.2] s: "
                    "x [-0.5, 0.5] m/s, y [0.2, 0.3] m/s, yaw [-0.4, -0.1] rad/s")


@pytest.mark.parametrize(("section", "message"), [
    ({"push": {"z": [0, 1]}}, r"unknown key 'randomize.push.z' in randomize.push; valid keys: "
                              r"interval, x, y, yaw"),
    ({"push": {"interval": [0, 1], "x": [-1, 1]}}, r"randomize.push.interval: .*0 < low <= high"),
    ({"push": {"interval": [3, 2], "x": [-1, 1]}}, r"randomize.push.interval: .*got \[3.0, 2.0\]"),
    ({"push": {"x": [1, -1]}}, r"randomize.push.x: .*low <= high"),
    ({"push": {"yaw": [0, ".nan"]}}, r"randomize.push.yaw\[1\]: expected a number"),
    ({"push": {"y": [0, float("inf")]}}, r"randomize.push.y\[1\]: expected a finite number"),
    ({"push": {"x": 0.5}}, r"randomize.push.x: expected a list"),
    ({"push": [0.5, 1.0]}, r"randomize.push: expected a mapping"),
    ({"pushes": {"x": [0, 1]}}, r"unknown key 'randomize.pushes' in randomize; valid keys: .*push"),
])
def test_bad_push_settings_are_one_error_naming_the_key(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(RandomizationConfig, section, "randomize")


def test_a_task_that_cannot_be_pushed_is_named_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match=r"randomize.push: task 'Hopper-v5' cannot take it: the model has "
                                          r"no free joint"):
        BatchedEngine(engine_task("Hopper-v5"), 2, seed=0, randomize=PUSHED)
    with pytest.raises(ConfigError, match=r"randomize.push: task 'Ant-v5' does not support it: pushes act "
                                          r"mid-episode in the MuJoCo engine's worlds"):
        make_env("Ant-v5", randomize=PUSHED)
    launch = {"task": "Hopper-v5", "algo": "ppo", "vectorization": "batched",
              "randomize": {"push": {"x": [-0.5, 0.5]}}}
    with pytest.raises(ConfigError, match=r"randomize.push: task 'Hopper-v5'"):
        parse_train_config(launch)
    quadruped = {**launch, "task": TASK, "randomize": {"push": {"x": [-0.5, 0.5], "interval": [5, 7.5]}}}
    assert parse_train_config(quadruped).randomize.push == PushConfig(interval=(5.0, 7.5), x=(-0.5, 0.5))


def test_task_check_shows_the_push_and_names_a_task_that_cannot_take_it(tmp_path) -> None:
    from robot_rl.sim.declared.report import describe_file

    text = describe_file("launch/quadruped_walk_ppo.yaml")
    assert "push every [5, 7.5] s: x [-0.5, 0.5] m/s, y [-0.5, 0.5] m/s" in text.splitlines()[-2]
    assert text.splitlines()[-1].startswith("    push: from each episode's start, every [5, 7.5] s")
    hopper = tmp_path / "hopper.yaml"
    hopper.write_text("task: Hopper-v5\nalgo: ppo\nrandomize:\n  push: {x: [-1, 1]}\n")
    with pytest.raises(ConfigError, match=r"^randomize.push: task 'Hopper-v5' does not support it"):
        describe_file(str(hopper))
    hopper.write_text("task: quadruped-walk\nalgo: ppo\nrandomize:\n  push: {x: [-1, 1], every: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'randomize.push.every'.*valid keys: interval, x, y"):
        describe_file(str(hopper))


def test_an_adr_run_pushes_as_configured() -> None:
    """ADR drives the range terms; the push is not one of its parameters and acts as configured."""
    from robot_rl.sim.adr import ADR, ADRConfig
    from robot_rl.sim.adr_randomizer import ADRRandomizer, adr_parameters

    config = RandomizationConfig(body_mass_scale=(0.8, 1.2), push=PUSH)
    adr_config = ADRConfig(enabled=True)
    params = adr_parameters(config, adr_config)
    assert [p.name for p in params] == ["body_mass_scale"]
    engine = _engine(None)
    try:
        engine.randomizer = ADRRandomizer(ADR(params, adr_config), config, engine.nominal, engine.physics_dt,
                                          engine.task.frame_skip, TASK)
        engine.reset()
        pushed = np.zeros(3, dtype=int)
        for a in _actions(30, 3):
            pushed += engine.step(a)[4].get("_push", np.zeros(3, dtype=bool))
        assert (pushed >= 1).all()  # each world's first push comes by its 10th period
    finally:
        engine.close()
