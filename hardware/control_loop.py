"""The fixed-rate control loop: a policy bundle on a robot, at its trained control period.

Each tick: `robot.read_state()` -> `policy.act(state.observation_fields())` -> safety filter ->
`robot.write_command()`. Ticks fall on absolute deadlines `t0 + k * period` (perf_counter), so
timing errors do not accumulate; a tick that ends after the next deadline is an *overrun*, and the
loop then skips the deadlines it missed and resumes on the next one ahead, rather than bursting
commands to catch up (a burst would send several commands computed from nearly the same state).

A backend whose states arrive on their own says when the newest is too old to act on
(`Robot.stale_detail`, the ROS 2 backend from its arrival): that tick sends the safety filter's safe
action, counted as "stale", and never asks the policy.

Before activating, the loop maps the robot's joint names onto the policy's order by name and refuses
a mismatch (count or names), and checks the robot's state carries every field the policy's
observation reads. Cleanup is guaranteed: the robot is deactivated (and, by default, closed) whatever
happens, and an e-stop (`ControlLoop.estop`, from any thread) stops it within one tick.

A simulated robot that is not `realtime` runs as fast as possible: no sleeping, same ticks.

A relative action ("position_delta", the cube) is integrated here, as in training, by the spec's one
`TargetIntegrator`: on activation the targets start from the measured joint positions, each tick the
policy's normalised action moves them, the safety filter checks the absolute targets, and what was
sent becomes the targets; the loop supplies `joint_targets` and `last_action` to the observation. A
held tick (stale state, a policy error) is a zero change. A goal task's goal field comes from the
host-side `GoalTracker` (hold-and-advance on the measured state; a drop ends the run, "dropped").

The policy's episode begins with its first command. Ticks held before it (a stale state while the
stream starts, a policy refusal) keep the robot where it stands, as before activation; the policy's
first observation of the actuators' controls (`LAST_COMMAND`, a declared task's last-action term) then
reads as after the engine's reset, zeros, not the held pose: no training episode starts that way, and
the zoo quadruped stood still for good after one such tick (BENCHMARKS.md, "After a hold"). Holds after
the first command are observed as sent (`randomize.hold` trains for them).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robot_rl.errors import RobotRLError
from robot_rl.hardware.robot import LAST_COMMAND, HardwareError, Lifecycle, Robot, RobotState
from robot_rl.hardware.safety import SafetyConfig, SafetyFilter
from robot_rl.spec import RELATIVE_ACTION_FIELDS, TargetIntegrator

# The last stretch before a deadline is spent spinning: sleep() overshoots by up to ~0.1 ms on Linux.
_SPIN = 2e-4


@dataclass(frozen=True)
class Percentiles:
    """p50, p99 and max of a timing series, seconds (0 for an empty series)."""

    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Percentiles:
        """numpy's default ('linear') percentiles, from one sort: a node computes these every second
        in its control thread, where np.percentile's own overhead (~0.1 ms a call) would stall it."""
        a = values if isinstance(values, np.ndarray) else np.fromiter(values, np.float64, len(values))
        if a.size == 0:
            return cls(0.0, 0.0, 0.0)
        a = np.sort(a.astype(np.float64, copy=False))
        return cls(_linear(a, 50), _linear(a, 99), float(a[-1]))


def _linear(a: np.ndarray, q: float) -> float:
    """The q-th percentile of sorted `a`, interpolated exactly as numpy's 'linear' method does."""
    position = (q / 100) * (a.size - 1)
    below = math.floor(position)
    if below >= a.size - 1:
        return float(a[-1])
    low, high, t = float(a[below]), float(a[below + 1]), position - below
    step = high - low
    return high - step * (1 - t) if t >= 0.5 else low + step * t


@dataclass(frozen=True)
class LoopStats:
    """What a run measured. Times in seconds."""

    steps: int
    """Commands written."""
    skipped: int
    """Deadlines missed after overruns (no command was sent for them)."""
    overruns: int
    """Ticks that ended after the next tick's deadline."""
    nominal_period: float
    rate: float
    """Achieved ticks per second, first tick start to last (0 with fewer than two ticks)."""
    period: Percentiles
    """Time between the starts of consecutive ticks."""
    jitter: Percentiles
    """|period - nominal| per tick (skipped deadlines counted in the nominal); real time only."""
    latency: Percentiles
    """Compute latency: from the start of the tick (state read) to the command written."""
    lateness: Percentiles
    """How late each tick started after its deadline; real time only."""
    overrun: Percentiles
    """How far past the next deadline the overrunning ticks ended (zeros if none)."""
    wall_time: float
    realtime: bool
    episode_return: float | None
    """Sum of the backend's rewards (simulated backends), else None."""
    stop_reason: str
    """"steps", "duration", "episode_end", "dropped", "estop", "interrupted", "error", or the reason given to
    `ControlLoop.request_stop` (deploy: the signal's name, e.g. "SIGTERM")."""
    safety: Mapping[str, Any]
    """The safety filter's report."""
    goals: Mapping[str, Any] | None = None
    """A goal task's host-side report (`GoalTracker.report`: successes, dropped ...), else None."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few human lines: rate, timing percentiles in ms, interventions."""
        ms = 1e3

        def line(name: str, p: Percentiles) -> str:
            return (f"  {name:<9} p50 {p.p50 * ms:8.3f} ms   p99 {p.p99 * ms:8.3f} ms   "
                    f"max {p.max * ms:8.3f} ms")

        mode = "real time" if self.realtime else "as fast as possible"
        lines = [f"{self.steps} steps in {self.wall_time:.3f} s ({self.rate:.1f} Hz, nominal "
                 f"{1 / self.nominal_period:.1f} Hz, {mode}); stopped by {self.stop_reason}",
                 line("period", self.period), line("latency", self.latency)]
        if self.realtime:
            lines += [line("jitter", self.jitter), line("lateness", self.lateness)]
        lines += [f"  overruns {self.overruns}, skipped ticks {self.skipped}, worst overrun "
                 f"{self.overrun.max * ms:.3f} ms"]
        if self.episode_return is not None:
            lines.append(f"  return {self.episode_return:.3f}")
        if self.goals is not None:
            g = self.goals
            lines.append(f"  goals ({g['goal_source']}): {g['successes']} reached in a row, error now "
                         f"{g['angle']:.3f} rad{', dropped' if g['dropped'] else ''}")
        s = self.safety
        fired = ", ".join(f"{k} {v}" for k, v in s.get("interventions", {}).items()) or "none"
        last = f" (last: {s['last_reason']}: {s['last_detail']})" if s.get("last_reason") else ""
        lines.append(f"  safety interventions: {fired}{last}")
        return "\n".join(lines)


class ControlLoop:
    """Runs `policy` on `robot` at `period` (default: the policy's control period) through `safety`
    (default: a `SafetyFilter` with `SafetyConfig()`; the filter is never absent).

    `policy` needs `.spec` (a TaskSpec) and `.act(state_fields) -> (act_dim,)` in robot units; a
    policy bundle (`robot_rl.policies.load`) is one. `realtime` None: the robot's own `realtime`.
    `clock` and `sleep` (seconds) are the loop's time source, replaceable for tests. `window`: keep
    only the last `window` timing records (None: all), so a loop ticked for days keeps a fixed memory.
    `goals`: a goal task's host-side goals (`robot_rl.hardware.goal_tracker.goal_tracker(spec)`).
    """

    _mapping: tuple[np.ndarray | None, np.ndarray | None] | None
    """(to_robot, to_policy) while started (by `start`), else None."""
    _t0: float | None
    _t_end: float | None
    _last_start: float | None

    def __init__(self, robot: Robot, policy: Any, safety: SafetyFilter | None = None,
                 period: float | None = None, realtime: bool | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep, window: int | None = None,
                 goals: Any = None) -> None:
        if window is not None and window < 1:
            raise HardwareError(f"window must be a positive number of ticks (or None: all), got {window}")
        self.window = window
        self.robot = robot
        self.policy = policy
        self.spec = policy.spec
        self.safety = safety if safety is not None else SafetyFilter(self.spec, SafetyConfig())
        if tuple(self.safety.spec.joint_names) != tuple(self.spec.joint_names):
            raise HardwareError(f"the safety filter is for joints {list(self.safety.spec.joint_names)}, the "
                                f"policy commands {list(self.spec.joint_names)}")
        self.integrator = TargetIntegrator(self.spec.action) if self.spec.action.is_relative else None
        self.goals = goals
        self._commanded = False
        """Whether the policy has commanded since the robot's activation."""
        self.period = float(period if period is not None else self.spec.control_period)
        if not (math.isfinite(self.period) and self.period > 0):
            raise HardwareError(f"control period must be a positive number of seconds, got {self.period}")
        self.realtime = robot.realtime if realtime is None else bool(realtime)
        self._clock, self._sleep = clock, sleep
        self._estop = threading.Event()
        self._stop_request: str | None = None  # set by request_stop (a signal handler may call it)
        self._estop_lock = threading.Lock()  # the loop's cleanup waits for an e-stop under way
        self._reset_records()

    # ------------------------------------------------------------------ public
    def run(self, duration: float | None = None, steps: int | None = None, close: bool = True) -> LoopStats:
        """Configure (if needed) and activate the robot, run until `steps` commands, `duration`
        seconds (of ticks), the end of a simulated episode, or an e-stop; always deactivate, and
        close unless `close` is False (to run the same robot again)."""
        if steps is not None and steps < 0:
            raise HardwareError(f"steps must be >= 0, got {steps}")
        if duration is not None and not duration >= 0:
            raise HardwareError(f"duration must be >= 0 seconds, got {duration}")
        self._reset_records()
        self._estop.clear()
        try:
            to_robot, to_policy = self._prepare()
            self._loop(to_robot, to_policy, duration, steps)
        except KeyboardInterrupt:
            self._stop_reason = "interrupted"
            raise
        except BaseException:
            if self._stop_reason == "":
                self._stop_reason = "error"
            raise
        finally:
            self._stop_request = None
            self._cleanup(close)
        return self.stats()

    def request_stop(self, reason: str = "stopped") -> None:
        """End the current run at its next tick, from any thread or a signal handler, with the normal
        cleanup (deactivate: the robot's safe command, motors disabled); `reason` becomes the stop
        reason. Requested before `run` activates the robot, the run ends without activating it."""
        self._stop_request = reason

    def start(self) -> None:
        """Everything `run` does before its first tick: configure if needed, map joints, check the
        state fields, activate the robot, seed the filter. For callers that tick from their own timer
        (the ROS 2 node). A mismatch raises a HardwareError naming both sides, with nothing sent."""
        self._reset_records()
        self._estop.clear()
        self._mapping = self._prepare()
        self._t0 = self._clock()

    def tick(self) -> None:
        """One tick after `start`: state -> policy -> safety filter -> command, with timing records."""
        self._timed(self._tick)

    def hold(self, reason: str, detail: str) -> None:
        """One tick after `start` that sends the safety filter's safe action instead of asking the
        policy (counted as an intervention `reason`, e.g. "stale"): for a caller that knows the state
        must not be acted on (the ROS 2 node measures a state's age from its arrival)."""
        self._timed(self._hold, reason, detail)

    def stop(self, reason: str = "deactivated") -> None:
        """End a run begun with `start`: deactivate the robot (its safe command) and leave it open
        (configured), so that `start` may run it again."""
        self._mapping = None
        self._stop_reason = reason
        self._t_end = self._clock()
        if self.robot.lifecycle is Lifecycle.ACTIVE:
            self.robot.deactivate()

    @property
    def steps(self) -> int:
        """Commands written since the run began."""
        return self._steps

    def _timed(self, body: Callable[..., None], *args: str) -> None:
        if self._mapping is None:
            raise HardwareError("the control loop is not started")
        start = self._clock()
        body(*self._mapping, *args)
        end = self._clock()
        self._latency.append(end - start)
        if self._last_start is not None:
            self._periods.append(start - self._last_start)
            self._jitter.append(abs(start - self._last_start - self.period))
        self._last_start = start

    @property
    def running(self) -> bool:
        """Started (by `start`) and not stopped."""
        return self._mapping is not None

    def estop(self, reason: str = "e-stop") -> None:
        """Stop now, from any thread: the filter holds the safe action, the robot is e-stopped, and
        the loop ends at its next tick (and closes the robot only after this returns)."""
        with self._estop_lock:
            self._estop.set()
            self._stop_reason = "estop"
            self.safety.estop(reason)
            self.robot.estop(reason)

    def stats(self) -> LoopStats:
        """What was measured so far (also after a run that raised)."""
        wall = (self._t_end or self._clock()) - self._t0 if self._t0 is not None else 0.0
        span = sum(self._periods)
        return LoopStats(
            steps=self._steps, skipped=self._skipped, overruns=len(self._overrun),
            nominal_period=self.period, rate=len(self._periods) / span if span > 0 else 0.0,
            period=Percentiles.of(self._periods),
            jitter=Percentiles.of(self._jitter), latency=Percentiles.of(self._latency),
            lateness=Percentiles.of(self._lateness), overrun=Percentiles.of(self._overrun),
            wall_time=wall, realtime=self.realtime,
            episode_return=self._return if self._rewarded else None,
            stop_reason=self._stop_reason or "running", safety=self.safety.report(),
            goals=self.goals.report() if self.goals is not None else None)

    # ------------------------------------------------------------------ steps of a run
    def _prepare(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Activate and seed; the joint mapping `(to_robot, to_policy)`, (None, None) for the identity."""
        robot = self.robot
        if robot.lifecycle is Lifecycle.UNCONFIGURED:
            robot.configure()
        if robot.lifecycle is not Lifecycle.INACTIVE:
            raise HardwareError(f"{type(robot).__name__} is {robot.lifecycle.value!r}; the control loop "
                                f"starts from 'unconfigured' or 'inactive'")
        to_robot, to_policy = joint_mapping(robot.joint_names, self.spec.joint_names, self.spec.name)
        probe = robot.read_state()
        missing = [f for f in self.spec.state_fields if f not in probe.observation_fields()
                   and f not in self._host_fields()]
        if missing:
            raise HardwareError(f"{type(robot).__name__} cannot provide the state field(s) "
                                f"{', '.join(missing)} that the policy ({self.spec.name}) observes; it "
                                f"provides: {', '.join(probe.observation_fields())}")
        if self._stop_request is not None:  # stopped while configuring: never enable the motors
            return None, None
        state = _reorder(robot.activate(), to_policy)
        self._commanded = False  # the policy's episode begins with its first command
        self.safety.reset(state)
        if self.integrator is not None:  # targets start at the measured positions, as in training
            self.integrator.reset(0, state.joint_positions)
        if self.goals is not None:
            self.goals.reset(state.observation_fields(), state.sequence)
        if hasattr(self.policy, "reset"):
            self.policy.reset()
        if np.array_equal(to_policy, np.arange(len(to_policy))):
            return None, None  # the same order: no reindexing per tick
        return to_robot, to_policy

    def _loop(self, to_robot: np.ndarray | None, to_policy: np.ndarray | None, duration: float | None,
              steps: int | None) -> None:
        robot, clock, period, realtime = self.robot, self._clock, self.period, self.realtime
        last_tick = None  # (k, start time) of the previous tick
        k = 0
        self._t0 = t0 = clock()
        while True:
            if self._estop.is_set():
                self._stop_reason = "estop"
                return
            if self._stop_request is not None:
                self._stop_reason = self._stop_request
                return
            if steps is not None and self._steps >= steps:
                self._stop_reason = "steps"
                return
            if duration is not None and k * period >= duration - 1e-12:
                self._stop_reason = "duration"
                return
            deadline = t0 + k * period
            if realtime:
                _sleep_until(deadline, clock, self._sleep)
            start = clock()
            try:
                self._tick(to_robot, to_policy)
            except HardwareError:
                if self._estop.is_set():  # the e-stop came from another thread mid-tick
                    self._stop_reason = "estop"
                    return
                raise
            end = clock()
            self._latency.append(end - start)
            if last_tick is not None:
                self._periods.append(start - last_tick[1])
            if realtime:  # without pacing there is no deadline to be late for
                self._lateness.append(max(0.0, start - deadline))
                if last_tick is not None:
                    self._jitter.append(abs(start - last_tick[1] - (k - last_tick[0]) * period))
            last_tick = (k, start)
            k += 1
            if realtime and end > t0 + k * period:  # overran the next deadline: skip what was missed
                self._overrun.append(end - (t0 + k * period))
                ahead = math.floor((end - t0) / period) + 1
                self._skipped += ahead - k
                k = ahead
            if robot.episode_over:
                self._stop_reason = "episode_end"
                return
            if self.goals is not None and self.goals.dropped:
                self._stop_reason = "dropped"
                return

    def _tick(self, to_robot: np.ndarray | None, to_policy: np.ndarray | None) -> None:
        state = self.robot.read_state()
        if to_policy is not None:
            state = _reorder(state, to_policy)
        now = self.robot.clock()
        stale = self.robot.stale_detail() if self.safety.config.enabled else None
        fields = self._observed(state)
        if stale is not None:  # too old to act on (the backend measures it from the state's arrival)
            safe = self._refuse("stale", stale, state)
        else:
            try:
                command = self._act(fields)
            except RobotRLError as err:  # the bundle refused the observation or its own output
                safe = self._refuse("policy_error", str(err), state)
            else:
                safe = self.safety.filter(command, state, now)
        self.robot.write_command(safe if to_robot is None else safe[to_robot])
        if self.integrator is not None:  # what was sent (after the filter) is the target now
            self.integrator.commit(0, safe)
        self._steps += 1
        reward = self.robot.last_reward
        if reward is not None:
            self._return += float(reward)
            self._rewarded = True

    def _hold(self, to_robot: np.ndarray | None, to_policy: np.ndarray | None, reason: str,
              detail: str) -> None:
        state = self.robot.read_state()
        if to_policy is not None:
            state = _reorder(state, to_policy)
        self._observed(state)  # a goal task still tracks its goals on a held tick
        safe = self._refuse(reason, detail, state)
        self.robot.write_command(safe if to_robot is None else safe[to_robot])
        if self.integrator is not None:
            self.integrator.commit(0, safe)
        self._steps += 1

    def _host_fields(self) -> tuple[str, ...]:
        """State fields the loop supplies, not the robot: a relative action's, a goal task's goal."""
        own = RELATIVE_ACTION_FIELDS if self.integrator is not None else ()
        return own + ((self.goals.field,) if self.goals is not None else ())

    def _observed(self, state: RobotState) -> dict[str, np.ndarray]:
        """The observation's state fields: the robot's, with the loop's own (targets, goal) over them."""
        fields = state.observation_fields()
        if self.goals is not None:
            fields.update(self.goals.update(fields, state.sequence))
        if self.integrator is not None:
            fields.update(joint_targets=self.integrator.targets[0].copy(),
                          last_action=self.integrator.last_action[0].copy())
        return fields

    def _act(self, fields: Mapping[str, np.ndarray]) -> Any:
        """The policy's command in robot units: for a relative action, the integrated targets. Before
        the policy's first command the last command reads as at reset (zeros; see the module docstring)."""
        if not self._commanded and LAST_COMMAND in fields:
            fields = {**fields, LAST_COMMAND: np.zeros_like(fields[LAST_COMMAND])}
        if self.integrator is None:
            command = self.policy.act(fields)
        else:
            command = self.integrator.step(np.asarray(self.policy.act_normalized(fields))[None])[0]
        self._commanded = True
        return command

    def _refuse(self, reason: str, detail: str, state: RobotState) -> np.ndarray:
        """The safe action (a relative action: a zero change, the targets held)."""
        if self.integrator is not None:
            self.integrator.hold(0)
        return self.safety.refuse(reason, detail, state)

    def _cleanup(self, close: bool) -> None:
        self._t_end = self._clock()
        robot = self.robot
        with self._estop_lock:  # an e-stop from another thread reaches the robot before it closes
            try:
                if robot.lifecycle is Lifecycle.ACTIVE:
                    robot.deactivate()
            finally:
                if close:
                    robot.close()

    def _reset_records(self) -> None:
        def series() -> collections.deque[float]:
            return collections.deque(maxlen=self.window)
        self._periods = series()
        self._jitter = series()
        self._latency = series()
        self._lateness = series()
        self._overrun = series()
        self._steps = self._skipped = 0
        self._return, self._rewarded = 0.0, False
        self._stop_reason = ""
        self._t0 = None
        self._t_end = None
        self._last_start = None
        self._mapping = None


def joint_mapping(robot_joints: tuple[str, ...] | list[str], policy_joints: tuple[str, ...] | list[str],
                  task: str = "the policy") -> tuple[np.ndarray, np.ndarray]:
    """Index arrays `(to_robot, to_policy)`: `cmd_robot = cmd_policy[to_robot]` and
    `x_policy = x_robot[to_policy]`. A HardwareError naming both lists if the joint sets differ."""
    robot_joints, policy_joints = list(robot_joints), list(policy_joints)
    if len(robot_joints) != len(policy_joints) or set(robot_joints) != set(policy_joints) \
            or len(set(robot_joints)) != len(robot_joints):
        raise HardwareError(f"joint mismatch: the robot has {len(robot_joints)} joints {robot_joints}, "
                            f"the policy ({task}) commands {len(policy_joints)} joints {policy_joints}; "
                            f"nothing was sent")
    to_robot = np.array([policy_joints.index(name) for name in robot_joints], dtype=np.intp)
    to_policy = np.array([robot_joints.index(name) for name in policy_joints], dtype=np.intp)
    return to_robot, to_policy


def _reorder(state: RobotState, to_policy: np.ndarray) -> RobotState:
    """The state with its joint arrays in the policy's order (named fields are left as they are)."""
    if np.array_equal(to_policy, np.arange(len(to_policy))):
        return state
    return RobotState(joint_positions=np.asarray(state.joint_positions)[to_policy],
                      joint_velocities=np.asarray(state.joint_velocities)[to_policy],
                      timestamp=state.timestamp, sequence=state.sequence, fields=state.fields,
                      base_orientation=state.base_orientation,
                      base_angular_velocity=state.base_angular_velocity)


def _sleep_until(deadline: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    remaining = deadline - clock()
    if remaining > _SPIN:
        sleep(remaining - _SPIN)
    while clock() < deadline:
        pass
