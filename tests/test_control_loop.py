"""The control loop: absolute deadlines, skip-not-burst after an overrun (fake and real clocks), timing
statistics, joint-name mapping and mismatch refusal, policy errors, NaN, e-stop and duration."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from robot_rl.hardware.control_loop import ControlLoop, Percentiles, joint_mapping
from robot_rl.hardware.robot import HardwareError, Lifecycle, Robot, RobotState
from robot_rl.hardware.safety import SafetyConfig, SafetyFilter
from robot_rl.policies import ObservationError
from robot_rl.spec import ActionSpec, ObsTerm, TaskSpec

PERIOD = 0.01


def make_spec(joints=("a", "b", "c"), period: float = PERIOD) -> TaskSpec:
    n = len(joints)
    return TaskSpec(name="arm", joint_names=tuple(joints), observation=(ObsTerm("q", "joint_positions"),),
                    action=ActionSpec.from_bounds("torque", [-10.0] * n, [10.0] * n),
                    joint_limits=((-math.inf, math.inf),) * n, control_period=period, physics_dt=period,
                    state_fields={"joint_positions": n})


class FakeClock:
    """Time that passes only when slept or spent (and by 1 µs per reading, so spinning ends)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        self.t += 1e-6
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += max(dt, 0.0)


class Arm(Robot):
    """A real-time robot whose commands are timestamped on `clock`; joints in its own order."""

    def __init__(self, joints=("a", "b", "c"), clock=time.perf_counter, fields=None) -> None:
        super().__init__()
        self.joint_names = tuple(joints)
        self.clock_fn = clock
        self.fields = fields
        self.q = np.arange(len(joints), dtype=np.float64)
        self.seq = 0
        self.sent: list[np.ndarray] = []
        self.sent_at: list[float] = []
        self.read_at: list[float] = []  # tick starts: reads while active

    def _read_state(self) -> RobotState:
        self.seq += 1
        if self.lifecycle is Lifecycle.ACTIVE:
            self.read_at.append(self.clock_fn())
        fields = self.fields if self.fields is not None else {}
        return RobotState(self.q.copy(), np.zeros(len(self.q)), timestamp=self.clock(), sequence=self.seq,
                          fields=fields)

    def _write_command(self, command: np.ndarray) -> np.ndarray:
        self.sent.append(command.copy())
        self.sent_at.append(self.clock_fn())
        return command

    def clock(self) -> float:
        return self.clock_fn()


class Policy:
    """Returns `action` (policy order); spends `cost(k)` seconds on the clock at call k (from 0)."""

    def __init__(self, spec: TaskSpec, action, clock=None, cost=None) -> None:
        self.spec, self.action, self.clock, self.cost = spec, np.asarray(action, dtype=float), clock, cost
        self.calls = 0
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def act(self, fields):
        k, self.calls = self.calls, self.calls + 1
        spent = self.cost(k) if self.cost else 0.0
        if spent and isinstance(self.clock, FakeClock):
            self.clock.sleep(spent)
        elif spent:
            time.sleep(spent)
        return self.action.copy()


def open_filter(spec: TaskSpec) -> SafetyFilter:
    return SafetyFilter(spec, SafetyConfig(max_delta=math.inf))


def test_ticks_fall_on_absolute_deadlines():
    clock = FakeClock()
    spec = make_spec()
    robot = Arm(clock=clock)
    # each tick costs 3 ms: with relative sleeps the period would become 13 ms
    policy = Policy(spec, [1, 2, 3], clock, cost=lambda k: 0.003)
    stats = ControlLoop(robot, policy, open_filter(spec), clock=clock, sleep=clock.sleep).run(steps=20)
    gaps = np.diff(robot.sent_at)
    np.testing.assert_allclose(gaps, PERIOD, atol=2e-5)
    assert stats.steps == 20 and stats.overruns == 0 and stats.skipped == 0
    assert stats.rate == pytest.approx(1 / PERIOD, rel=1e-3)
    assert stats.period.p50 == pytest.approx(PERIOD, abs=2e-5)
    assert stats.jitter.max < 2e-5
    assert stats.latency.p50 == pytest.approx(0.003, abs=2e-5)
    assert stats.stop_reason == "steps" and stats.realtime


def test_an_overrun_skips_missed_deadlines_instead_of_bursting():
    clock = FakeClock()
    spec = make_spec()
    robot = Arm(clock=clock)
    # tick 3 (t = 30 ms) takes 25 ms: it ends at 55 ms, so the deadlines at 40 and 50 ms are missed
    policy = Policy(spec, [1, 2, 3], clock, cost=lambda k: 0.025 if k == 3 else 0.001)
    loop = ControlLoop(robot, policy, open_filter(spec), clock=clock, sleep=clock.sleep)
    stats = loop.run(steps=6)
    starts = np.array(robot.read_at) - robot.read_at[0]
    # ticks start at 0, 10, 20, 30 ms; the fourth ends at 55 ms, so the next one waits for 60 ms
    np.testing.assert_allclose(starts, [0, 0.010, 0.020, 0.030, 0.060, 0.070], atol=5e-5)
    written = np.array(robot.sent_at) - robot.read_at[0]
    np.testing.assert_allclose(written, [0.001, 0.011, 0.021, 0.055, 0.061, 0.071], atol=5e-5)
    assert stats.overruns == 1 and stats.skipped == 2
    assert stats.rate == pytest.approx(5 / 0.070, rel=1e-3)  # 6 ticks over 70 ms: the skips cost rate
    assert stats.overrun.max == pytest.approx(0.015, abs=5e-5)  # ended 15 ms after the 40 ms deadline
    # the period after the overrun is 3 nominal periods: no jitter is charged for the skipped ones
    assert stats.period.max == pytest.approx(0.030, abs=5e-5)
    assert stats.jitter.max < 5e-5


def test_an_artificially_slow_policy_in_real_time_never_bursts():
    spec = make_spec()
    robot = Arm()
    slow = {4, 9, 14}
    policy = Policy(spec, [1, 2, 3], cost=lambda k: 0.025 if k in slow else 0.0)
    stats = ControlLoop(robot, policy, open_filter(spec)).run(steps=20)
    starts = np.array(robot.read_at)
    assert stats.overruns == 3
    assert stats.skipped >= 3 * 2  # each 25 ms tick misses at least two 10 ms deadlines
    # after every overrun the next tick waits for its deadline; a burst would start the missed ticks
    # back to back (~0.05 ms apart). 1 ms leaves room for a loaded machine waking a tick late.
    assert np.diff(starts).min() > 0.1 * PERIOD
    # 20 ticks and the skipped deadlines fill the time: nothing was made up for
    assert starts[-1] - starts[0] == pytest.approx((19 + stats.skipped) * PERIOD, abs=0.5 * PERIOD)
    assert stats.overrun.max >= 0.004


def test_joint_names_are_mapped_by_name():
    spec = make_spec(("a", "b", "c"))
    robot = Arm(joints=("c", "a", "b"))
    robot.q = np.array([30.0, 10.0, 20.0])  # robot order: c, a, b
    seen = []

    class Watch(Policy):
        def act(self, fields):
            seen.append(fields["joint_positions"].copy())
            return super().act(fields)

    loop = ControlLoop(robot, Watch(spec, [1.0, 2.0, 3.0]), open_filter(spec), realtime=False)
    loop.run(steps=2)
    np.testing.assert_array_equal(robot.sent[0], [3.0, 1.0, 2.0])  # a=1, b=2, c=3 in the robot's order
    np.testing.assert_array_equal(seen[0], [10.0, 20.0, 30.0])  # the policy sees its own order


def test_joint_mapping_index_arrays():
    to_robot, to_policy = joint_mapping(("c", "a", "b"), ("a", "b", "c"))
    assert to_robot.tolist() == [2, 0, 1] and to_policy.tolist() == [1, 2, 0]


@pytest.mark.parametrize("robot_joints", [("a", "b"), ("a", "b", "x"), ("a", "b", "c", "d"), ("a", "a", "b")])
def test_a_joint_mismatch_is_refused_before_activation(robot_joints):
    spec = make_spec(("a", "b", "c"))
    robot = Arm(joints=robot_joints)
    loop = ControlLoop(robot, Policy(spec, [0, 0, 0]), realtime=False)
    with pytest.raises(HardwareError) as err:
        loop.run(steps=3)
    message = str(err.value)
    assert str(list(robot_joints)) in message and "['a', 'b', 'c']" in message
    assert robot.sent == [] and robot.lifecycle is Lifecycle.CLOSED


def test_missing_state_fields_are_refused_naming_them():
    spec = TaskSpec(name="needs-qvel", joint_names=("a",), observation=(ObsTerm("v", "qvel"),),
                    action=ActionSpec.from_bounds("torque", [-1.0], [1.0]), joint_limits=((-1.0, 1.0),),
                    control_period=PERIOD, physics_dt=PERIOD, state_fields={"qvel": 1})
    robot = Arm(joints=("a",))
    with pytest.raises(HardwareError, match=r"state field.*qvel"):
        ControlLoop(robot, Policy(spec, [0.0]), realtime=False).run(steps=1)
    assert robot.sent == []


def test_nan_from_the_policy_never_reaches_the_robot():
    spec = make_spec()
    robot = Arm()
    stats = ControlLoop(robot, Policy(spec, [np.nan, 1.0, 2.0]), realtime=False).run(steps=5)
    assert all(np.isfinite(c).all() for c in robot.sent)
    np.testing.assert_array_equal(robot.sent[0], [0.0, 0.0, 0.0])  # torque robot: the safe action
    assert stats.safety["interventions"] == {"non_finite": 5}


def test_a_policy_refusal_sends_the_safe_action_and_goes_on():
    spec = make_spec()
    robot = Arm()

    class Refuses(Policy):
        def act(self, fields):
            if self.calls % 2 == 0:
                self.calls += 1
                raise ObservationError("observation holds NaN")
            return super().act(fields)

    stats = ControlLoop(robot, Refuses(spec, [1.0, 1.0, 1.0]), open_filter(spec), realtime=False).run(steps=4)
    assert [c.tolist() for c in robot.sent] == [[0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 1]]
    assert stats.safety["interventions"] == {"policy_error": 2}


def test_estop_from_another_thread_stops_the_loop_and_the_robot():
    spec = make_spec(period=0.005)
    robot = Arm()
    loop = ControlLoop(robot, Policy(spec, [0.1, 0.1, 0.1]), open_filter(spec))
    timer = threading.Timer(0.1, loop.estop, args=("operator",))
    timer.start()
    try:
        stats = loop.run(duration=5.0)
    finally:
        timer.cancel()
    assert stats.stop_reason == "estop"  # not "duration": the e-stop ended the 5-s run
    assert stats.safety["estopped"] and robot.last_error == "operator"
    assert robot.lifecycle is Lifecycle.CLOSED


def test_duration_counts_ticks_and_policy_history_is_reset():
    spec = make_spec(period=0.04)
    policy = Policy(spec, [0.0, 0.0, 0.0])
    robot = Arm()
    stats = ControlLoop(robot, policy, realtime=False).run(duration=0.4, close=False)
    assert stats.steps == 10 and stats.stop_reason == "duration" and policy.resets == 1
    assert stats.episode_return is None  # a real robot gives no reward
    stats = ControlLoop(robot, policy, realtime=False).run(steps=3)
    assert stats.steps == 3 and policy.resets == 2


def test_percentiles_hand_worked():
    p = Percentiles.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (p.p50, p.max) == (3.0, 100.0)
    assert p.p99 == pytest.approx(4.0 + 0.96 * 96.0)  # linear interpolation between 4 and 100
    assert Percentiles.of([]) == Percentiles(0.0, 0.0, 0.0)


def test_percentiles_are_numpys_exactly_for_lists_deques_and_arrays():
    import collections

    rng = np.random.default_rng(0)
    for n in [*range(1, 40), 100, 2047, 2048]:
        a = rng.exponential(1e-3, n) if n % 2 else rng.standard_normal(n) * 1e3
        expected = (*np.percentile(a, [50, 99]), a.max())
        for values in (a, a.tolist(), collections.deque(a.tolist(), maxlen=4096)):
            got = Percentiles.of(values)
            assert (got.p50, got.p99, got.max) == tuple(map(float, expected)), (n, type(values))


def test_a_safety_filter_for_other_joints_is_refused():
    with pytest.raises(HardwareError, match="safety filter is for joints"):
        ControlLoop(Arm(), Policy(make_spec(), [0, 0, 0]), open_filter(make_spec(("x", "y", "z"))))


def test_start_and_tick_drive_the_loop_from_an_outside_timer():
    """The ROS 2 node's way: start() activates once, each tick() sends one filtered command."""
    spec = make_spec()
    robot = Arm(joints=("c", "a", "b"))
    loop = ControlLoop(robot, Policy(spec, [1.0, 2.0, 3.0]), open_filter(spec))
    with pytest.raises(HardwareError, match="not started"):
        loop.tick()
    loop.start()
    assert loop.running and robot.lifecycle is Lifecycle.ACTIVE
    for _ in range(3):
        loop.tick()
    assert len(robot.sent) == 3
    np.testing.assert_array_equal(robot.sent[-1], [3.0, 1.0, 2.0])  # the robot's joint order
    assert loop.stats().steps == 3 and loop.stats().latency.p50 >= 0


class Recorder(Policy):
    """A Policy that keeps the fields of each call."""

    def __init__(self, spec: TaskSpec, action) -> None:
        super().__init__(spec, action)
        self.seen: list[dict] = []

    def act(self, fields):
        self.seen.append({k: np.array(v, copy=True) for k, v in fields.items()})
        return super().act(fields)


def test_the_policys_first_observation_of_the_last_command_is_the_resets_after_a_held_start():
    """A tick held before the policy's first command (a stale state as a deploy starts) sends the safe
    command, which the robot then reports as its `ctrl`; the policy's first observation reads `ctrl` as
    the engine's reset leaves it, zeros, and every later one as the robot reports it (holds included)."""
    spec = TaskSpec(name="arm", joint_names=("a", "b", "c"), observation=(ObsTerm("q", "joint_positions"),),
                    action=ActionSpec.from_bounds("position", [-10.0] * 3, [10.0] * 3),
                    joint_limits=((-math.inf, math.inf),) * 3, control_period=PERIOD, physics_dt=PERIOD,
                    state_fields={"joint_positions": 3, "ctrl": 3})

    class EchoArm(Arm):  # reports its last command as `ctrl`, as the ROS 2 backend does
        def _read_state(self) -> RobotState:
            self.fields = {"ctrl": self.sent[-1].copy() if self.sent else np.zeros(3)}
            return super()._read_state()

    robot = EchoArm()
    policy = Recorder(spec, [1.0, 2.0, 3.0])
    loop = ControlLoop(robot, policy, open_filter(spec))  # safe command: the measured positions 0 1 2
    loop.start()
    loop.hold("stale", "the first state came late")
    assert len(policy.seen) == 0
    loop.tick()
    loop.tick()
    loop.hold("stale", "late again")
    loop.tick()
    np.testing.assert_array_equal(policy.seen[0]["ctrl"], [0.0, 0.0, 0.0])  # as at reset
    np.testing.assert_array_equal(policy.seen[1]["ctrl"], [1.0, 2.0, 3.0])  # its own first command
    np.testing.assert_array_equal(policy.seen[2]["ctrl"], [0.0, 1.0, 2.0])  # the held command, as sent
    # a new activation is a new episode: its first observation reads zeros again
    loop.stop()
    robot.sent.append(np.array([4.0, 4.0, 4.0]))
    loop.start()
    loop.tick()
    np.testing.assert_array_equal(policy.seen[3]["ctrl"], [0.0, 0.0, 0.0])
