"""The safety filter, rule by rule, against hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.hardware.robot import HardwareError, RobotState
from robot_rl.hardware.safety import SafetyConfig, SafetyFilter
from robot_rl.spec import ActionSpec, ObsTerm, TaskSpec

PERIOD = 0.02


def make_spec(kind: str = "torque", low=(-2.0, -1.0), high=(2.0, 1.0),
              limits=((-0.5, 0.5), (-1.0, 1.0))) -> TaskSpec:
    return TaskSpec(name="test-robot", joint_names=("a", "b"),
                    observation=(ObsTerm("q", "joint_positions"),),
                    action=ActionSpec.from_bounds(kind, low, high), joint_limits=limits,
                    control_period=PERIOD, physics_dt=0.01, state_fields={"joint_positions": 2})


def state(q=(0.0, 0.0), t: float = 0.0, seq: int = 0) -> RobotState:
    return RobotState(joint_positions=np.array(q, dtype=np.float64), joint_velocities=np.zeros(2),
                      timestamp=t, sequence=seq)


class Ticker:
    """States whose sequence and timestamp advance one control period per call, like a live robot."""

    def __init__(self, q=(0.0, 0.0)) -> None:
        self.k, self.q = 0, q

    def __call__(self) -> tuple[RobotState, float]:
        self.k += 1
        t = self.k * PERIOD
        return state(self.q, t, self.k), t


def fresh_filter(config: SafetyConfig | None = None, kind: str = "torque") -> tuple[SafetyFilter, Ticker]:
    f = SafetyFilter(make_spec(kind), config or SafetyConfig(max_delta=math.inf))
    tick = Ticker()
    f.reset(state())
    return f, tick


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["torque", "velocity"])
def test_non_finite_command_never_passes_torque_velocity(bad, kind):
    f, tick = fresh_filter(kind=kind)
    s, now = tick()
    out = f.filter([0.3, bad], s, now)
    np.testing.assert_array_equal(out, [0.0, 0.0])  # the safe action, not just the bad joint
    assert f.report()["interventions"] == {"non_finite": 1}
    assert f.report()["last_detail"] == "NaN/Inf for b"


def test_non_finite_position_command_holds_the_measured_positions():
    f = SafetyFilter(make_spec("position"), SafetyConfig(max_delta=math.inf))
    f.reset(state((0.1, -0.2)))
    out = f.filter([np.nan, 0.0], state((0.15, -0.25), 0.02, 1), 0.02)
    np.testing.assert_array_equal(out, [0.15, -0.25])
    # a non-finite measurement is not held: the last finite one is
    out = f.filter([np.inf, 0.0], state((np.nan, -0.3), 0.04, 2), 0.04)
    np.testing.assert_array_equal(out, [0.15, -0.3])


def test_disabled_filter_still_rejects_nan():
    f, tick = fresh_filter(SafetyConfig(enabled=False))
    s, now = tick()
    np.testing.assert_array_equal(f.filter([5.0, -3.0], s, now), [5.0, -3.0])  # no clipping when off
    s, now = tick()
    np.testing.assert_array_equal(f.filter([np.nan, 0.0], s, now), [0.0, 0.0])
    assert f.report()["interventions"] == {"non_finite": 1}


@pytest.mark.parametrize("command", [[1.0], [1.0, 2.0, 3.0], [[1.0, 2.0]], "abc"])
def test_malformed_command_is_refused(command):
    f, tick = fresh_filter()
    s, now = tick()
    np.testing.assert_array_equal(f.filter(command, s, now), [0.0, 0.0])
    assert f.report()["interventions"] == {"malformed": 1}


def test_clip_to_the_action_limits():
    f, tick = fresh_filter()
    s, now = tick()
    np.testing.assert_array_equal(f.filter([3.0, -0.5], s, now), [2.0, -0.5])
    s, now = tick()
    np.testing.assert_array_equal(f.filter([-7.0, 1.5], s, now), [-2.0, 1.0])
    report = f.report()
    assert report["interventions"] == {"clip": 2}
    assert report["last_reason"] == "clip" and report["last_detail"] == "a, b"


def test_the_report_says_at_which_step_each_reason_first_fired():
    f, tick = fresh_filter()
    for command in ([0.5, 0.5], [0.5, 0.5], [3.0, 0.5], [0.5, 0.5], [3.0, 0.5]):
        s, now = tick()
        f.filter(command, s, now)
    s, now = tick()
    f.filter([float("nan"), 0.0], s, now)
    report = f.report()
    assert report["interventions"] == {"clip": 2, "non_finite": 1}
    assert report["first_at"] == {"clip": 3, "non_finite": 6}


def test_position_commands_are_clipped_to_the_joint_limits_too():
    # action range [-2, 2] x [-1, 1] is wider than joint a's range [-0.5, 0.5]
    f = SafetyFilter(make_spec("position"), SafetyConfig(max_delta=math.inf))
    f.reset(state())
    np.testing.assert_array_equal(f.filter([0.9, 0.2], state(t=0.02, seq=1), 0.02), [0.5, 0.2])
    assert f.report()["interventions"] == {"joint_limit": 1}


def test_torque_commands_ignore_joint_limits():
    f, tick = fresh_filter()  # joint a's position range is ±0.5, its torque range ±2
    s, now = tick()
    np.testing.assert_array_equal(f.filter([1.5, 0.0], s, now), [1.5, 0.0])
    assert f.report()["total"] == 0


def test_rate_limit_hand_worked():
    # max_delta 0.1 of the range: joint a range 4 -> 0.4 per step, joint b range 2 -> 0.2 per step
    f, tick = fresh_filter(SafetyConfig(max_delta=0.1))
    outs = []
    for _ in range(4):
        s, now = tick()
        outs.append(f.filter([1.0, -1.0], s, now))
    np.testing.assert_allclose(outs, [[0.4, -0.2], [0.8, -0.4], [1.0, -0.6], [1.0, -0.8]])
    assert f.report()["interventions"] == {"rate_limit": 4}
    # within the limit: passes unchanged
    s, now = tick()
    np.testing.assert_allclose(f.filter([0.7, -0.7], s, now), [0.7, -0.7])
    assert f.report()["interventions"] == {"rate_limit": 4}


@pytest.mark.parametrize("kind", ["torque", "position"])
def test_limits_agree_with_the_rules_applied_one_after_another(kind):
    """Random commands, many on a bound exactly: the output is clip -> joint range -> rate limit
    around the last output, and an intervention is counted exactly when the command was changed."""
    f = SafetyFilter(make_spec(kind), SafetyConfig(max_delta=0.1))
    f.reset(state())
    low, high = np.array([-2.0, -1.0]), np.array([2.0, 1.0])
    joint_low, joint_high = (np.array([-0.5, -1.0]), np.array([0.5, 1.0])) if kind == "position" \
        else (np.full(2, -np.inf), np.full(2, np.inf))
    step = 0.1 * (high - low)
    rng = np.random.default_rng(0)
    last, tick, changed = f._safe(state()), Ticker(), 0
    for _ in range(2000):
        cmd = rng.uniform(-3.0, 3.0, 2)
        pick = rng.random(2)  # a third of the entries exactly on a bound, a third small moves
        cmd = np.where(pick < 0.15, rng.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], 2), cmd)
        cmd = np.where((pick >= 0.15) & (pick < 0.3), last + rng.choice([-1.0, 1.0], 2) * step, cmd)
        cmd = np.where(pick >= 0.7, last + rng.uniform(-0.05, 0.05, 2), cmd)
        expected = np.clip(np.clip(np.clip(cmd, low, high), joint_low, joint_high), last - step, last + step)
        s, now = tick()
        before = f.report()["total"]
        out = f.filter(cmd, s, now)
        np.testing.assert_array_equal(out, expected)
        fired = f.report()["total"] > before
        assert fired == (not np.array_equal(out, cmd)), (cmd, out)
        changed += int(fired)
        last = expected
    assert set(f.report()["interventions"]) <= {"clip", "joint_limit", "rate_limit"}
    assert 200 < changed < 1800  # both the fast path (nothing fires) and the rules were exercised


def test_rate_limit_starts_from_the_measured_position_for_position_commands():
    f = SafetyFilter(make_spec("position"), SafetyConfig(max_delta=0.05))  # 0.2 and 0.1 per step
    f.reset(state((0.3, -0.5)))  # activation: seeded from the measured state
    out = f.filter([-0.5, 0.5], state((0.3, -0.5), 0.02, 1), 0.02)
    np.testing.assert_allclose(out, [0.1, -0.4])


def test_after_a_refusal_the_rate_limit_ramps_from_the_safe_action():
    f, tick = fresh_filter(SafetyConfig(max_delta=0.25))  # 1.0 per step on joint a
    for _ in range(3):
        s, now = tick()
        f.filter([2.0, 0.0], s, now)
    s, now = tick()
    f.filter([np.nan, 0.0], s, now)  # safe action: zero torque
    s, now = tick()
    np.testing.assert_allclose(f.filter([2.0, 0.0], s, now), [1.0, 0.0])


def test_stale_when_the_sequence_does_not_advance_for_two_periods():
    f, tick = fresh_filter()
    assert f.stale_timeout == pytest.approx(2 * PERIOD)
    s, now = tick()
    np.testing.assert_array_equal(f.filter([1.0, 0.5], s, now), [1.0, 0.5])
    # the same state again, later: fine up to the timeout, stale after it
    np.testing.assert_array_equal(f.filter([1.0, 0.5], s, now + 0.039), [1.0, 0.5])
    np.testing.assert_array_equal(f.filter([1.0, 0.5], s, now + 0.041), [0.0, 0.0])
    report = f.report()
    assert report["interventions"] == {"stale": 1}
    assert "has not advanced" in report["last_detail"]
    # the device speaks again: commands pass
    newer = state(t=s.timestamp + 0.06, seq=s.sequence + 3)
    np.testing.assert_array_equal(f.filter([1.0, 0.5], newer, now + 0.06), [1.0, 0.5])


def test_stale_when_the_timestamp_lags_even_if_the_sequence_advances():
    f, _ = fresh_filter(SafetyConfig(max_delta=math.inf, stale_timeout=0.05))
    for k in range(1, 4):  # timestamps keep pace with now
        f.filter([0.1, 0.1], state(t=0.01 * k, seq=k), 0.01 * k)
    # the sequence advances but the samples are old: 0.06 s behind
    out = f.filter([0.1, 0.1], state(t=0.0, seq=10), 0.06)
    np.testing.assert_array_equal(out, [0.0, 0.0])
    assert "older than the freshest" in f.report()["last_detail"]


def test_a_device_clock_with_an_offset_is_not_stale():
    f, _ = fresh_filter()
    for k in range(1, 50):  # the device's clock reads 1000 s less than the host's, at the same rate
        now = 5.0 + k * PERIOD
        out = f.filter([0.2, 0.1], state(t=now - 1000.0, seq=k), now)
        np.testing.assert_array_equal(out, [0.2, 0.1])
    assert f.report()["total"] == 0


def test_estop_holds_the_safe_action_until_reset():
    f, tick = fresh_filter(kind="position")
    s, now = tick()
    f.filter([0.2, 0.2], s, now)
    f.estop("operator")
    for command in ([0.2, 0.2], [0.0, 0.0]):
        s, now = tick()
        np.testing.assert_array_equal(f.filter(command, s, now), s.joint_positions)
    report = f.report()
    assert report["estopped"] and report["interventions"] == {"estop": 2}
    assert report["last_reason"] == "estop" and report["last_detail"] == "operator"
    f.reset(state())
    s, now = tick()
    np.testing.assert_array_equal(f.filter([0.2, 0.2], s, now), [0.2, 0.2])
    assert not f.report()["estopped"]


def test_refuse_counts_a_policy_error():
    f, tick = fresh_filter()
    s, _ = tick()
    np.testing.assert_array_equal(f.refuse("policy_error", "observation holds NaN", s), [0.0, 0.0])
    assert f.report()["interventions"] == {"policy_error": 1}
    with pytest.raises(ValueError, match="unknown intervention reason"):
        f.refuse("whatever", "", s)


def test_safe_action_by_command_kind():
    s = state((0.3, -2.0))
    assert SafetyFilter(make_spec("torque")).safe_action(s).tolist() == [0.0, 0.0]
    assert SafetyFilter(make_spec("velocity")).safe_action(s).tolist() == [0.0, 0.0]
    # position: hold where it is, but within the joint limits (b measured beyond its -1 limit)
    assert SafetyFilter(make_spec("position")).safe_action(s).tolist() == [0.3, -1.0]


def test_config_validation():
    with pytest.raises(ConfigError, match="max_delta"):
        SafetyConfig(max_delta=0.0)
    with pytest.raises(ConfigError, match="stale_timeout"):
        SafetyConfig(stale_timeout=-1.0)
    with pytest.raises(ConfigError, match="enabled"):
        SafetyConfig(enabled="yes")  # type: ignore[arg-type]


def test_a_discrete_action_has_no_safe_action():
    spec = TaskSpec(name="cartpole", joint_names=("push",), observation=(ObsTerm("q", "x"),),
                    action=ActionSpec.discrete(2), joint_limits=((-math.inf, math.inf),),
                    control_period=0.02, physics_dt=0.02, state_fields={"x": 4})
    with pytest.raises(HardwareError, match="discrete action has no safe action"):
        SafetyFilter(spec)
