"""`randomize.hold`: held control periods in training, the deploy's safe command (sim/randomization/hold.py).

A held world's controls are its safe ones (a position servo at its joint's measured position, any other
actuator zero) whatever the policy asks, for the drawn periods; the `ctrl` a policy observes is then the
held command, as on a robot; holds are drawn per world from its seed and change no other draw.
"""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl import sim
from robot_rl.errors import ConfigError
from robot_rl.launch import load_train_config
from robot_rl.sim.randomization import RandomizationConfig
from robot_rl.sim.randomization.hold import HoldConfig

QUAD = "quadruped-walk"


def _engine(randomize: RandomizationConfig, n: int = 6, seed: int = 4, task: str = QUAD):
    env = sim.make(task, n, seed=seed, vectorization="batched", threads=1, randomize=randomize)
    env.reset(seed=seed)
    return env


def _run(env, steps: int, actions: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list]:
    """(qpos rows before each step, ctrl rows after each step (NaN where the episode ended: the row is
    the next episode's), info["held"] of each step)."""
    before, ctrl, held = [], [], []
    for t in range(steps):
        before.append(np.stack([env.engine.world_state(i)["qpos"] for i in range(env.num_envs)]))
        _, _, terminated, truncated, info = env.step(actions[t])
        rows = np.stack([env.engine.world_state(i)["ctrl"] for i in range(env.num_envs)])
        rows[terminated | truncated] = np.nan
        ctrl.append(rows)
        held.append(info.get("held"))
    return before, ctrl, held


def test_a_held_world_gets_its_measured_pose_whatever_the_policy_asks():
    config = RandomizationConfig(hold=HoldConfig(interval=(0.0, 0.3), periods=(1, 3)))
    env = _engine(config)
    try:
        rng = np.random.default_rng(0)
        actions = rng.uniform(-1, 1, (60, env.num_envs, env.task_spec.act_dim)).astype(np.float32)
        before, ctrl, held = _run(env, 60, actions)
        hold = env.engine.randomizer.holds
        seen = 0
        for t in range(60):
            assert held[t] is not None and held[t].dtype == bool
            for i in np.flatnonzero(held[t] & ~np.isnan(ctrl[t][:, 0])):
                expected = hold.safe(before[t][i])
                np.testing.assert_array_equal(ctrl[t][i], expected)  # the observed ctrl is the hold
                seen += 1
        assert seen > 10  # holds happened, in several worlds
        assert 0 < np.mean([h.mean() for h in held]) < 0.9  # and most periods were not held
        # the quadruped's actuators are position servos: the held command is the joints' positions
        assert len(hold.servos) == 12
    finally:
        env.close()


def test_held_periods_ignore_the_action_and_the_others_follow_it():
    config = RandomizationConfig(hold=HoldConfig(interval=(0.0, 0.2), periods=(2, 2)))
    a, b = _engine(config), _engine(config)
    try:
        rng = np.random.default_rng(1)
        acts = rng.uniform(-1, 1, (30, a.num_envs, a.task_spec.act_dim)).astype(np.float32)
        other = acts.copy()
        _, _, held = _run(a, 30, acts)
        mask = np.stack(held)  # (30, N): the same schedule in both (same seeds)
        other[mask] = -acts[mask]  # a different policy only where held
        _, _, held_b = _run(b, 30, other)
        np.testing.assert_array_equal(np.stack(held_b), mask)
        for i in range(a.num_envs):
            np.testing.assert_array_equal(a.engine.world_state(i)["qpos"], b.engine.world_state(i)["qpos"])
    finally:
        a.close()
        b.close()


def test_holds_are_drawn_from_the_seed_and_change_no_other_draw():
    on = RandomizationConfig(hold=HoldConfig(interval=(1.0, 1.0), periods=(1, 1)))
    first, again = _engine(on, n=3, seed=9), _engine(on, n=3, seed=9)
    off = _engine(RandomizationConfig(body_mass_scale=(1.0, 1.0)), n=3, seed=9)
    try:
        zeros = np.zeros((60, 3, first.task_spec.act_dim), dtype=np.float32)
        _, _, h1 = _run(first, 60, zeros)
        _, _, h2 = _run(again, 60, zeros)
        np.testing.assert_array_equal(np.stack(h1), np.stack(h2))
        # a 1 s interval at 50 Hz: the first hold is the 51st period, the next 50 periods after it ends
        assert [int(np.flatnonzero(np.stack(h1)[:, i])[0]) for i in range(3)] == [50, 50, 50]
        # the zero action holds the nominal pose: a hold of a world standing there changes little, but
        # the reset states and commands are the same draws as without holds
        command = first.engine.world_state(0)["command"]
        np.testing.assert_array_equal(command, off.engine.world_state(0)["command"])
    finally:
        for env in (first, again, off):
            env.close()


def test_an_episode_counts_its_held_periods():
    config = RandomizationConfig(hold=HoldConfig(interval=(0.0, 0.0), periods=(3, 3)))
    env = _engine(config, n=2)
    try:
        zeros = np.zeros((2, env.task_spec.act_dim), dtype=np.float32)
        _, _, _, _, info = env.step(zeros)
        assert info["held"].tolist() == [True, True]  # interval 0: the episode's first period
        steps = 1
        while True:
            _, _, terminated, truncated, info = env.step(zeros)
            steps += 1
            if (terminated | truncated).any():
                break
        i = int(np.flatnonzero(terminated | truncated)[0])
        # 3 held, then (interval 0) the next 3 at once: every period of the episode was held
        assert info["final_info"]["held_periods"][i] == steps
    finally:
        env.close()


def test_a_torque_actuated_task_is_held_at_zero():
    env = _engine(RandomizationConfig(hold=HoldConfig(interval=(0.0, 0.0), periods=(1, 1))), n=2,
                  task="Hopper-v5")
    try:
        _, _, _, _, info = env.step(np.ones((2, env.task_spec.act_dim), dtype=np.float32))
        assert info["held"].all()
        assert not env.engine._ctrl.any()  # the controls the step applied: Hopper's motors at zero
    finally:
        env.close()


def test_the_first_hold_of_each_episode_comes_from_its_own_range():
    """`first`: every world is held in its episode's first periods (where a deploy is held, the robot
    at rest), then every `interval`; without it the first hold is drawn from `interval` too."""
    steps = 40
    first = _engine(RandomizationConfig(hold=HoldConfig(interval=(0.3, 0.5), periods=(1, 1),
                                                        first=(0.0, 0.04))), n=8)
    plain = _engine(RandomizationConfig(hold=HoldConfig(interval=(0.3, 0.5), periods=(1, 1))), n=8)
    try:
        zeros = np.zeros((steps, 8, first.task_spec.act_dim), dtype=np.float32)
        held_first = np.array(_run(first, steps, zeros)[2])  # (steps, worlds)
        held_plain = np.array(_run(plain, steps, zeros)[2])
        starts = held_first.argmax(axis=0)
        assert held_first[:3].any(axis=0).all()  # every world held in its periods 0-2 (0.04 s / 0.02 s)
        assert not held_plain[:15].any()  # 0.3 s = 15 periods before the first hold
        # then every 15-25 periods: the next hold of every world is drawn from `interval`
        for i in range(8):
            after = np.flatnonzero(held_first[starts[i] + 1:, i])
            assert after.size and 15 <= after[0] <= 25  # periods after the first hold ended
    finally:
        first.close()
        plain.close()


@pytest.mark.parametrize(("text", "pattern"), [
    ("hold: {periods: [2, 1]}", r"randomize\.hold\.periods: must be \[low, high\] whole control periods"),
    ("hold: {periods: [1, 2], interval: [-1, 2]}",
     r"randomize\.hold\.interval: must be \[low, high\] seconds"),
    ("hold: {periods: [1, 2], first: [0.2, 0.1]}",
     r"randomize\.hold\.first: must be \[low, high\] seconds"),
    ("hold: {periods: [1, 2], every: 3}", r"every"),
])
def test_bad_hold_settings_are_named(tmp_path, text, pattern):
    path = tmp_path / "l.yaml"
    path.write_text(f"task: {QUAD}\nalgo: ppo\nvectorization: batched\nrandomize:\n  {text}\n")
    with pytest.raises(ConfigError, match=pattern):
        load_train_config(path)


def test_the_gymnasium_path_refuses_holds():
    with pytest.raises(ConfigError, match=r"randomize\.hold: task 'Hopper-v5' does not support it"):
        sim.make("Hopper-v5", 1, seed=0, vectorization="sync",
                 randomize=RandomizationConfig(hold=HoldConfig(periods=(1, 1))))


def test_off_by_default_and_described_when_on():
    assert not RandomizationConfig().hold.active
    on = RandomizationConfig(hold=HoldConfig(interval=(0.0, 5.0), periods=(1, 3)))
    assert on.active_names() == ["hold"]
    assert on.describe() == "randomize: hold [1, 3] periods every [0, 5] s"
    first = RandomizationConfig(hold=HoldConfig(interval=(1.0, 5.0), periods=(1, 3), first=(0.0, 0.1)))
    assert first.describe() == "randomize: hold [1, 3] periods every [1, 5] s, the first after [0, 0.1] s"
