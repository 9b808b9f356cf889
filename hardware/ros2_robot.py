"""The `ros2` backend: a robot behind ROS 2 topics, through the `Robot` interface.

    sensor_msgs/JointState (+ sensor_msgs/Imu) --> Ros2Robot.read_state() -> RobotState
    Ros2Robot.write_command(u)                 --> std_msgs/Float64MultiArray (a forward/group controller)

**Joints.** `joints` are the robot's joint names in the order its command controller takes them (a
forward_command_controller's `joints` list); default: the bundle's names in policy order. `joint_map`
renames robot names to the policy's ("cart=slider"), so that `joint_names` (what the control loop maps
onto the policy's order, by name) are in the policy's terms. JointState entries are found by name,
in whatever order and with whatever extra joints the driver publishes.

**State fields.** `RobotState.fields` carries the task spec's `qpos` and `qvel` when it reads them:
the positions and velocities of the entries named by the bundle's `task_spec.state_joints` (every
joint a driver must publish; `state_joints` here overrides it, `joint_map` renames it), looked up by
name in each JointState, in any order, extra joints ignored, a missing one rejected. A bundle that
names none (exported before `state_joints` existed) reads the whole message in message order: give
it `state_joints`. A joint with more than one coordinate is spelled as entries named
`J:x J:y J:z J:qw J:qx J:qy J:qz` (free joint) or `J:qw .. J:qz` (ball joint): positions are its
qpos, velocities its qvel, with the `:qw` entry's velocity unused (it is skipped in `qvel`). Other
state fields (dm_control observation keys) do not travel over JointState; the control loop then
refuses the bundle, naming the fields. An Imu (optional) gives `base_orientation` (w, x, y, z) and
`base_angular_velocity` (rad/s); an Imu whose orientation covariance[0] is -1 has no orientation.

**An object's pose** (the cube): `pose_topic` (geometry_msgs/PoseStamped, default `cube_pose`, in the
palm frame: position m, orientation w x y z) gives the entries `J:x .. J:qz` of the free joint
`pose_joint` (default `cube`) when the bundle's `state_joints` name them, as a motion-capture or
vision system publishes a tracked object's pose beside the hand's `joint_states`. Those entries are
then taken from the newest pose, not from the JointState (where a simulator may also publish them:
ignored), and their velocities are 0 (a tracker's pose has none; the cube policy does not observe
them). A JointState before the first pose is rejected ("names"); `pose_topic` "" reads them from the
JointState. `goal_topic` (geometry_msgs/QuaternionStamped, default `cube_goal`, only for a goal task)
sets a goal task's goal orientation (`on_goal`, called with w x y z; the control loop's `GoalTracker`).

**What the host supplies** (a declared legged task, `zoo:quadruped-walk_ppo`): its observation reads
`ctrl` (the `last_action` term: the actuators' controls, i.e. the last command, robot units) and `command`
(the velocity command: forward m/s, lateral m/s, yaw rate rad/s), which no driver measures. `ctrl` is the
last command this backend published (policy order; the safe command too), zeros from activation until the
first one, as the engine's reset leaves the actuators (unpowered, ctrl 0) and the MuJoCo backend's and the
emulator's `ctrl` read (the control loop shows the policy's first observation zeros even after held ticks:
its episode begins with its first command). `command` is the newest `geometry_msgs/Twist` on
`cmd_vel_topic` (default `cmd_vel`, the ROS convention: linear.x, linear.y, angular.z; a teleop or
navigation stack publishes it), `velocity_command` ([vx, vy, wz], default 0 0 0: stand) until one arrives;
a Twist with NaN/Inf is refused and counted. With `command_timeout` > 0 (seconds), once a Twist has come
and none follows for that long, the command falls back to 0 0 0 (stand: a teleop that died or a lost link
does not leave the robot walking) until the next one (`cmd_vel_timeouts` counts the falls). Both are added
to each state as it is read, so an observation reads the command last sent and the velocity last asked
for.

**Reading.** The state subscription is raw: `JointStateReader` (joint_state_cdr.py) reads names,
positions, velocities and the stamp straight from the CDR bytes, with no message object built; a
layout it does not read is deserialized as usual. Either way the checks below apply.

**Validation.** A JointState is rejected, counted by reason (`rejected`) and not stored when its
position or velocity array does not match its names or the bundle's state-field sizes ("length"),
when a value the policy uses is NaN/Inf ("non_finite"), or when it lacks one of the robot's joints or
repeats a name ("names"). Each accepted JointState gets the next `sequence`; its `timestamp` is the
header stamp in seconds (a zero stamp: the host's monotonic clock on receipt). The safety filter
learns the offset between the stamp's clock and `clock()`, so only the rates must agree. `arrival`
is when the newest accepted state arrived, on `clock()`: the policy node measures staleness from it.

**QoS** (see `state_qos`, `command_qos`): state in with the sensor-data profile (best effort,
volatile) at depth 1, which matches reliable and best-effort drivers alike; commands out reliable at
depth 1 (what ros2_controllers' command subscriptions request) with an offered deadline (default two
control periods; a missed one is counted). A requested deadline on the state is opt-in
(`state_deadline`): DDS refuses to connect a publisher that offers none or a longer one (rclpy's and
ros2_control's defaults offer none), and the incompatible-QoS event then says so; the stale check
below guards the state either way.

**Stale state** (the policy node's rule, `ros2_node_timing`): the newest state's age counts from its
`arrival`, and past `stale_timeout` (default 1.5 control periods) it is never acted on: `stale_detail`
tells the control loop, whose tick then sends the safety filter's safe action instead of asking the
policy. Standalone (under `robot-rl deploy`, whose loop ticks on its own clock), two more guards keep
the policy node's promise, the safe command within two control periods of the last state whatever the
driver's rate: a watchdog timer in the executor thread, restarted by every arrival, publishes the safe
command just past the stale timeout (and every watchdog period while the state stays stale) without
waiting for the loop's next tick (`watchdog_safe` counts them); and a command whose state went stale
while it was computed is replaced by the safe command as it is written (`stale_replaced`), under the
watchdog's lock, so that no policy command follows the watchdog's safe one. The safe command: zeros for
torque or velocity control, the last measured joint positions for position control.

Two ways to run: embedded in a node (`node=`, as `robot_rl_policy` does: callbacks run in the node's
executor, `read_state` returns the latest state, `on_state` is called on each accepted state), or
standalone (its own context, node and executor thread, for `ControlLoop.run`: `read_state` waits up
to half a control period for a state newer than the last it returned and at most half a period old,
so that the loop's command answers the driver's newest state within the driver's cycle; an older newer
state is waited on only until the driver's next is due: `_current`, `_read_wait`).
Imports numpy at module level; rclpy and the message packages on use.
"""

from __future__ import annotations

import array
import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.hardware.joint_state_cdr import JointStateReader
from robot_rl.hardware.robot import LAST_COMMAND, HardwareError, Robot, RobotState, all_finite
from robot_rl.hardware.ros2_node_timing import stale_detail, watchdog_period
from robot_rl.spec import TaskSpec

REJECT_REASONS = ("length", "non_finite", "names")
OPTIONS = ("port", "realtime", "seed", "task", "ros_args", "joints", "joint_map", "state_joints",
           "state_topic", "imu_topic", "command_topic", "state_deadline", "command_deadline",
           "stale_timeout", "connect_timeout", "pose_topic", "pose_joint", "goal_topic", "cmd_vel_topic",
           "velocity_command", "command_timeout")
#: The entries of a free joint's pose, in qpos order (`robot_rl.sim.joint_naming`).
POSE_PARTS = ("x", "y", "z", "qw", "qx", "qy", "qz")
#: Suffix of the unused velocity entry of a free or ball joint's quaternion.
QW = ":qw"
#: A declared task's velocity-command goal field (`robot_rl.sim.declared.state.COMMAND_FIELD`): vx, vy, wz.
VELOCITY_COMMAND = "command"


def velocity_command_field(spec: TaskSpec) -> bool:
    """Whether `spec` observes a velocity command (vx, vy, wz) that the host supplies from `cmd_vel`."""
    return VELOCITY_COMMAND in spec.goal_fields and spec.state_fields.get(VELOCITY_COMMAND) == 3


def parse_velocity_command(values: Sequence[float] | None, spec: TaskSpec) -> np.ndarray | None:
    """`velocity_command` ([vx, vy, wz]; empty or None: 0 0 0) for a spec that observes one, else None;
    a value for a spec without one, or not three finite numbers, is a ConfigError naming it."""
    given = list(values or [])
    if not velocity_command_field(spec):
        if given:
            raise ConfigError(f"velocity_command: {spec.name} observes no velocity command (only a task with "
                              f"a `command` observation term, e.g. quadruped-walk, takes one)")
        return None
    out = np.asarray(given or [0.0, 0.0, 0.0], dtype=np.float64).reshape(-1)
    if out.shape != (3,) or not np.isfinite(out).all():
        raise ConfigError(f"velocity_command: [vx, vy, wz] (3 finite numbers: m/s, m/s, rad/s), got {given}")
    return out


def parse_command_timeout(value: float, spec: TaskSpec) -> float:
    """`command_timeout` (seconds; 0: off) for a spec that observes a velocity command; a ConfigError
    naming it for a negative or non-finite value, or a positive one where there is no command to time out."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise ConfigError(f"command_timeout: {value!r} is out of range; valid: 0 (off: the last Twist holds) "
                          f"or a positive number of seconds")
    if value > 0 and not velocity_command_field(spec):
        raise ConfigError(f"command_timeout: {spec.name} observes no velocity command (only a task with a "
                          f"`command` observation term, e.g. quadruped-walk, takes one)")
    return float(value)


def parse_joint_map(items: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """`["robot_name=policy_name", ...]` (or a mapping) -> {robot name: policy name}."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            robot, sep, policy = str(item).partition("=")
            if not sep or not robot.strip() or not policy.strip():
                raise ConfigError(f"joint_map: {item!r} is not of the form ROBOT_NAME=POLICY_NAME")
            pairs.append((robot.strip(), policy.strip()))
    out: dict[str, str] = {}
    for robot, policy in pairs:
        if robot in out:
            raise ConfigError(f"joint_map: the robot joint {robot!r} is mapped twice")
        out[str(robot)] = str(policy)
    if len(set(out.values())) != len(out):
        raise ConfigError(f"joint_map: two robot joints map to the same policy joint: {out}")
    return out


def robot_joint_names(policy_names: Sequence[str], rename: Mapping[str, str]) -> tuple[str, ...]:
    """The robot's names for `policy_names` under `rename` ({robot name: policy name}); an entry
    `J:part` of a free or ball joint follows its joint J."""
    inverse = {policy: robot for robot, policy in rename.items()}
    out = []
    for name in policy_names:
        joint, sep, part = name.rpartition(":")
        if name not in inverse and sep and joint in inverse:
            out.append(f"{inverse[joint]}:{part}")
        else:
            out.append(inverse.get(name, name))
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# JointState -> RobotState (numpy only: testable without ROS)


class JointStateDecoder:
    """Validates JointState contents and turns them into `RobotState`s; counts what it rejects.

    `joints`: the robot's joint names in command order (robot terms); `state_fields`: the spec's field
    sizes (only `qpos`/`qvel` are built here); `state_joints`: the names whose entries form
    qpos/qvel, in order (empty: the whole message, in message order).
    """

    def __init__(self, joints: Sequence[str], state_fields: Mapping[str, int],
                 state_joints: Sequence[str] = ()) -> None:
        self.joints = tuple(joints)
        self.sizes = {k: int(v) for k, v in state_fields.items() if k in ("qpos", "qvel")}
        self.state_joints = tuple(state_joints)
        self.rejected = dict.fromkeys(REJECT_REASONS, 0)
        self.accepted = 0
        self.last_rejection: str | None = None
        self._names: list[str] | None = None  # the name list the index arrays below were made for
        self._layout: tuple[Any, ...] | tuple[str, str] = ()

    @property
    def required(self) -> tuple[str, ...]:
        """Every name a JointState must carry: the commanded joints, then the other state joints."""
        return self.joints + tuple(j for j in self.state_joints if j not in self.joints)

    def decode(self, names: Sequence[str], position: Any, velocity: Any, timestamp: float,
               sequence: int, orientation: np.ndarray | None = None,
               angular_velocity: np.ndarray | None = None) -> RobotState | None:
        """The state for one JointState, or None (rejected and counted; `last_rejection` says why)."""
        if names != self._names:
            self._names = list(names)
            self._layout = self._resolve(self._names)
        layout = self._layout
        if len(layout) == 2:  # (reason, detail): this name list cannot serve
            self._reject(*layout)
            return None
        n = len(names)
        pos = np.frombuffer(position, dtype=np.float64) if isinstance(position, array.array) \
            else np.asarray(position, dtype=np.float64)
        vel = np.frombuffer(velocity, dtype=np.float64) if isinstance(velocity, array.array) \
            else np.asarray(velocity, dtype=np.float64)
        if pos.shape != (n,) or vel.shape != (n,):
            self._reject("length", f"JointState has {n} names, {pos.size} positions and "
                                   f"{vel.size} velocities (positions and velocities are required)")
            return None
        joint_index, qpos_index, qvel_index, check_index = layout
        checked = (pos, vel) if check_index is None else (pos[check_index], vel[check_index])
        if not (all_finite(checked[0]) and all_finite(checked[1])):
            bad = [names[i] for i in range(n) if not (math.isfinite(pos[i]) and math.isfinite(vel[i]))]
            self._reject("non_finite", f"NaN/Inf in the JointState for {', '.join(bad)}")
            return None
        fields = {}
        if "qpos" in self.sizes:
            fields["qpos"] = pos[qpos_index] if qpos_index is not None else pos.copy()
        if "qvel" in self.sizes:
            fields["qvel"] = vel[qvel_index] if qvel_index is not None else vel.copy()
        self.accepted += 1
        return RobotState(joint_positions=pos[joint_index], joint_velocities=vel[joint_index],
                          timestamp=timestamp, sequence=sequence, fields=fields,
                          base_orientation=orientation, base_angular_velocity=angular_velocity)

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        self.last_rejection = f"{reason}: {detail}"
        return None

    def _resolve(self, names: list[str]) -> tuple[Any, ...]:
        """Index arrays (4) for a name list, or (reason, detail) why it cannot serve."""
        if len(set(names)) != len(names):
            dup = sorted({x for x in names if names.count(x) > 1})
            return "names", f"the JointState repeats the name(s) {', '.join(dup)}"
        where = {name: i for i, name in enumerate(names)}
        required = self.required
        missing = [j for j in required if j not in where]
        if missing:
            return "names", (f"the JointState has no joint named {', '.join(missing)} (it names: "
                    f"{', '.join(names) or 'nothing'}); a driver must publish {list(required)} (the "
                    f"commanded joints and the bundle's state_joints). Map differing names with "
                    f"joint_map (ROBOT_NAME=POLICY_NAME)")
        joint_index = np.array([where[j] for j in self.joints], dtype=np.intp)
        if self.state_joints:
            order = [where[j] for j in self.state_joints]
        else:
            order = list(range(len(names)))
        qpos_index = None if order == list(range(len(names))) else np.array(order, dtype=np.intp)
        vel_order = [i for i in order if not names[i].endswith(QW)]
        qvel_index = None if vel_order == list(range(len(names))) else np.array(vel_order, dtype=np.intp)
        used = sorted(set(order) | set(joint_index.tolist()))
        check_index = None if len(used) == len(names) else np.array(used, dtype=np.intp)
        for field, count in (("qpos", len(order)), ("qvel", len(vel_order))):
            if field in self.sizes and count != self.sizes[field]:
                return "length", (f"the JointState gives {count} entries for {field}; the bundle's "
                                  f"observation reads {self.sizes[field]} (another robot or model?)")
        return joint_index, qpos_index, qvel_index, check_index


# --------------------------------------------------------------------------------------------------
# Parameter ranges (the policy node's and the sim bridge's)


def seconds_range(zero_means: str | None, negative_means: str | None = None) -> tuple[Any, str]:
    """A check for a parameter in seconds: positive, or 0 / -1 where they mean something; and the
    words that say what is valid."""
    words = [w for w in (negative_means and f"-1 ({negative_means})", zero_means and f"0 ({zero_means})")
             if w] + ["a positive number of seconds"]
    return (lambda v: math.isfinite(v) and (v > 0 or (v == 0 and zero_means is not None)
                                            or (v == -1 and negative_means is not None)),
            ", ".join(words))


def count_range(zero_means: str) -> tuple[Any, str]:
    """A check for a whole-number parameter: 0 (meaning `zero_means`) or more."""
    return (lambda v: v >= 0), f"0 ({zero_means}) or a positive whole number"


def check_ranges(values: Mapping[str, Any], ranges: Mapping[str, tuple[Any, str]]) -> None:
    """A ConfigError naming the first parameter whose value is out of its range, and what is valid.
    Such values would otherwise fail deep inside rclpy (a timer of period 0 spins; a NaN deadline
    raises) or the simulator."""
    for key, (ok, valid) in ranges.items():
        if not ok(values[key]):
            raise ConfigError(f"parameter {key}: {values[key]!r} is out of range; valid: {valid}")


# --------------------------------------------------------------------------------------------------
# QoS


def state_qos(deadline: float | None) -> Any:
    """Sensor-data profile (best effort, volatile), depth 1, requested `deadline` seconds (None: none).

    Best effort takes the newest state over a retransmitted old one and matches reliable and
    best-effort publishers alike; depth 1 because only the latest state matters to a controller."""
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                     durability=DurabilityPolicy.VOLATILE)
    if deadline:
        qos.deadline = Duration(nanoseconds=round(deadline * 1e9))
    return qos


def command_qos(deadline: float | None) -> Any:
    """Reliable (ros2_controllers' command subscribers request it), volatile, depth 1, offered `deadline`."""
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    if deadline:
        qos.deadline = Duration(nanoseconds=round(deadline * 1e9))
    return qos


def stamp_seconds(stamp: Any) -> float:
    """A builtin_interfaces/Time in seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


# --------------------------------------------------------------------------------------------------
# The backend


class Ros2Robot(Robot):
    """A robot whose driver speaks ROS 2 (see the module docstring for topics, names and QoS)."""

    backend = "ros2"

    def __init__(self, spec: TaskSpec, *, node: Any = None, joints: Sequence[str] | None = None,
                 joint_map: Sequence[str] | Mapping[str, str] | None = None, state_joints: Sequence[str] = (),
                 state_topic: str = "joint_states", imu_topic: str = "", command_topic: str = "commands",
                 state_deadline: float | None = None, command_deadline: float | None = None,
                 period: float | None = None, node_name: str = "robot_rl_policy",
                 ros_args: Sequence[str] | None = None, connect_timeout: float = 5.0,
                 stale_timeout: float | None = None,
                 on_state: Callable[[RobotState], None] | None = None, pose_topic: str = "cube_pose",
                 pose_joint: str = "cube", goal_topic: str = "cube_goal", cmd_vel_topic: str = "cmd_vel",
                 velocity_command: Sequence[float] | None = None, command_timeout: float = 0.0) -> None:
        super().__init__()
        if spec.action.command_kind not in ("torque", "position", "velocity"):
            raise ConfigError(f"ros2 backend: a {spec.action.kind!r} action is not a joint command")
        self.spec = spec
        self.command_kind = spec.action.command_kind  # a relative action: the loop sends its targets
        self.period = float(period if period is not None else spec.control_period)
        self.joints = tuple(joints) if joints else tuple(spec.joint_names)
        rename = parse_joint_map(joint_map)
        self.joint_names = tuple(rename.get(j, j) for j in self.joints)
        self.state_topic, self.imu_topic, self.command_topic = state_topic, imu_topic, command_topic
        self.state_deadline = 0.0 if state_deadline is None else \
            2 * self.period if state_deadline < 0 else float(state_deadline)
        self.command_deadline = 2 * self.period if command_deadline is None or command_deadline < 0 \
            else command_deadline
        self.stale_timeout = float(stale_timeout) if stale_timeout else 1.5 * self.period
        """Seconds after its arrival when the newest state is too old to act on (math.inf: never)."""
        self.state_joints = tuple(state_joints) or robot_joint_names(spec.state_joints, rename)
        """The JointState entries forming qpos/qvel, robot names (empty: the whole message)."""
        posed = tuple(f"{pose_joint}:{part}" for part in POSE_PARTS)
        self.pose_topic = pose_topic if pose_topic and set(posed) <= set(self.state_joints) else ""
        """The PoseStamped topic of `pose_joint`'s entries ("" : none, they come in the JointState)."""
        self._pose_names = posed if self.pose_topic else ()
        self._pose: np.ndarray | None = None  # the newest pose, (7,) x y z qw qx qy qz
        self.poses_received = 0
        self.goal_topic = goal_topic if goal_topic and spec.goal_fields else ""
        self.on_goal: Callable[[Sequence[float]], None] | None = None
        """Called (executor thread) with each goal quaternion (w x y z) from `goal_topic`."""
        self.goals_received = 0
        self.velocity_command = parse_velocity_command(velocity_command, spec)
        """The velocity command (vx, vy, wz) the observation reads (None: the spec observes none)."""
        self.cmd_vel_topic = cmd_vel_topic if self.velocity_command is not None else ""
        self.cmd_vel_received = 0
        self.cmd_vel_refused = 0
        self.command_timeout = parse_command_timeout(command_timeout, spec)
        """Seconds without a Twist after which the velocity command is 0 0 0 (0: the last one holds)."""
        self.cmd_vel_timeouts = 0
        """Times the velocity command fell back to 0 0 0 (stand) because the Twists stopped."""
        self._cmd_vel_arrival: float | None = None  # when the newest Twist arrived, on clock()
        self._timed_out = False
        n = spec.state_fields.get(LAST_COMMAND)
        self._to_policy: np.ndarray | None = None  # command (robot order) -> ctrl (policy order)
        if n == len(spec.joint_names) and set(self.joint_names) == set(spec.joint_names):
            self._to_policy = np.array([self.joint_names.index(j) for j in spec.joint_names], dtype=np.intp)
        self._last_command = np.zeros(len(spec.joint_names))
        """`ctrl`: the last command published, policy order (zeros from activation until one is)."""
        self.decoder = JointStateDecoder(self.joints, spec.state_fields, self.state_joints)
        self._reader = JointStateReader()
        self.on_state = on_state
        self.node = node
        self.standalone = node is None
        self.node_name = node_name
        self.ros_args = list(ros_args) if ros_args is not None else None
        self.connect_timeout = float(connect_timeout)
        """Standalone: seconds `configure` waits for the first valid JointState."""
        self.commands_sent = 0
        self.state_deadline_missed = 0
        self.states_lost = 0
        """JointStates the middleware reports lost before this node took them (DDS sample-lost)."""
        self.command_deadline_missed = 0
        self.stale_replaced = 0
        """Commands replaced by the safe command because their state had gone stale by the time they
        were written."""
        self.watchdog_safe = 0
        """Safe commands the standalone watchdog sent (states stopped between two control ticks)."""
        self.qos_problems: list[str] = []
        self._sequence = 0
        self._enabled = False  # activated and not deactivated since: commands may have been sent
        self._latest: RobotState | None = None
        self._arrival: float | None = None
        self._returned = 0  # sequence of the last state read_state returned
        self._returned_arrival: float | None = None  # and when it arrived
        self._watchdog: Any = None
        self._imu: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        self._cond = threading.RLock()  # the newest state, its arrival, and what is published
        self._arrivals: queue.SimpleQueue[int] = queue.SimpleQueue()  # wakes a standalone read_state
        self._entities: list[Any] = []
        self._publisher: Any = None
        self._context: Any = None
        self._executor: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ counters
    @property
    def rejected(self) -> dict[str, int]:
        """Rejected JointStates by reason ("length", "non_finite", "names")."""
        return dict(self.decoder.rejected)

    @property
    def received(self) -> int:
        """JointStates accepted."""
        return self.decoder.accepted

    @property
    def latest(self) -> RobotState | None:
        return self._latest

    @property
    def arrival(self) -> float | None:
        """When the newest accepted state arrived, seconds on `clock()` (None: none yet)."""
        return self._arrival

    # ------------------------------------------------------------------ lifecycle hooks
    def _configure(self) -> None:
        try:
            import rclpy
            from sensor_msgs.msg import Imu, JointState
            from std_msgs.msg import Float64MultiArray
        except ImportError as err:
            raise HardwareError(f"the ros2 backend needs rclpy and the message packages "
                                f"(pip install 'robot-rl[ros2]', or source a ROS 2 install): {err}") from None
        from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks

        if self.standalone:
            self._start_node(rclpy)
        node = self.node
        self._msg = Float64MultiArray()
        self._joint_state_type = JointState
        sub = node.create_subscription(  # raw: the CDR bytes, read by JointStateReader
            JointState, self.state_topic, self._on_joint_state_raw, state_qos(self.state_deadline), raw=True,
            event_callbacks=SubscriptionEventCallbacks(
                deadline=self._on_state_deadline if self.state_deadline else None,
                incompatible_qos=self._on_incompatible("state"), message_lost=self._on_state_lost))
        self._entities.append(sub)
        if self.imu_topic:
            imu = node.create_subscription(Imu, self.imu_topic, self._on_imu, state_qos(None))
            self._entities.append(imu)
        if self.pose_topic or self.goal_topic or self.cmd_vel_topic:
            try:
                from geometry_msgs.msg import PoseStamped, QuaternionStamped, Twist
            except ImportError as err:
                topic = self.pose_topic or self.goal_topic or self.cmd_vel_topic
                raise HardwareError(f"the ros2 backend needs geometry_msgs for {topic} (pip install "
                                    f"'robot-rl[ros2]'): {err}") from None
            if self.pose_topic:
                self._entities.append(node.create_subscription(PoseStamped, self.pose_topic, self._on_pose,
                                                               state_qos(None)))
            if self.goal_topic:
                self._entities.append(node.create_subscription(QuaternionStamped, self.goal_topic,
                                                               self._on_goal, 10))
            if self.cmd_vel_topic:  # best effort, depth 1: the newest wins; matches any publisher
                self._entities.append(node.create_subscription(Twist, self.cmd_vel_topic, self._on_cmd_vel,
                                                               state_qos(None)))
        self._publisher = node.create_publisher(
            Float64MultiArray, self.command_topic, command_qos(self.command_deadline),
            event_callbacks=PublisherEventCallbacks(
                deadline=self._on_command_deadline if self.command_deadline else None,
                incompatible_qos=self._on_incompatible("command")))
        self._entities.append(self._publisher)
        if self.standalone and math.isfinite(self.stale_timeout):  # (a node embedding this has its own)
            self._watchdog = node.create_timer(watchdog_period(self.stale_timeout, self.period),
                                               self._on_watchdog)
        if self.standalone:  # like a device that must answer its configuration: wait for its stream
            self._wait_for(lambda: self._latest is not None, self.connect_timeout)
            if self._latest is None:
                self._fresh_state()  # raises, saying what arrived (nothing, or why it was rejected)

    def _start_node(self, rclpy: Any) -> None:
        import sys

        from rclpy.signals import SignalHandlerOptions

        from robot_rl.hardware.ros2_policy_node import make_executor

        self._context = rclpy.Context()
        args = ["robot-rl", "--ros-args", *self.ros_args] if self.ros_args is not None else sys.argv
        rclpy.init(args=args, context=self._context,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(self.node_name, context=self._context)
        # rclpy's EventsExecutor where it has one, as the policy node: little Python per message, so
        # this thread takes the GIL from the control loop only briefly
        self._executor = make_executor("auto", self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="ros2-robot-executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while self._context is not None and self._context.ok():
                self._executor.spin_once(timeout_sec=0.1)
        except (ExternalShutdownException, RuntimeError):  # the context went down under us
            pass

    def _activate(self) -> RobotState:
        with self._cond:
            self._last_command = np.zeros(len(self.spec.joint_names))  # actuators start unpowered
            state = self._returned_state()
            self._enabled = True
        return state

    def _read_state(self) -> RobotState:
        if self.standalone:
            self._wait_for(self._current, self._read_wait())
        with self._cond:
            return self._returned_state()

    def _wait_for(self, ready: Callable[[], bool], timeout: float) -> None:
        """Wait up to `timeout` seconds until `ready()`, woken by each arrival. Not a Condition's wait:
        a Ctrl-C landing in one can leave its lock released under the `with` (a RuntimeError instead
        of the KeyboardInterrupt, seen under `robot-rl deploy`); a queue's get is cleanly interrupted."""
        end = time.monotonic() + timeout
        while not self._arrivals.empty():  # wake-ups already seen by `ready`: at most one per state
            self._arrivals.get_nowait()
        while not ready():
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            try:
                self._arrivals.get(timeout=remaining)
            except queue.Empty:
                return

    def _returned_state(self) -> RobotState:
        state = self._fresh_state()
        self._returned, self._returned_arrival = state.sequence, self._arrival
        return self._with_host_fields(state)

    def _with_host_fields(self, state: RobotState) -> RobotState:
        """`state` with what the host supplies: the last command (`ctrl`) and the velocity command."""
        extra: dict[str, np.ndarray] = {}
        if self._to_policy is not None:
            extra[LAST_COMMAND] = self._last_command.copy()
        if self.velocity_command is not None:
            extra[VELOCITY_COMMAND] = self.velocity_now()
        return dataclasses.replace(state, fields={**state.fields, **extra}) if extra else state

    def velocity_now(self) -> np.ndarray:
        """The velocity command an observation reads now (vx, vy, wz): the newest Twist's, or 0 0 0
        (stand) once `command_timeout` seconds passed without one; before any, the parameter's."""
        command, arrival = self.velocity_command, self._cmd_vel_arrival
        assert command is not None  # only for a spec that observes one
        if self.command_timeout > 0 and arrival is not None and self.clock() - arrival > self.command_timeout:
            if not self._timed_out:
                self._timed_out = True
                self.cmd_vel_timeouts += 1
            return np.zeros(3)
        self._timed_out = False
        return command.copy()

    def stale_detail(self) -> str | None:
        """Why the newest state may not be acted on now: older than `stale_timeout` from its arrival
        (the policy node's rule, `ros2_node_timing.stale_detail`); None while fresh."""
        return stale_detail(self._arrival, self.clock(), self.stale_timeout)

    def _newer(self) -> bool:
        return self._latest is not None and self._latest.sequence > self._returned

    def _read_wait(self) -> float:
        """How long a standalone read waits: half a period for a newer state, but for a newer one that is
        already old only until the driver's next is due (1.1 periods after it arrived), so that the last
        state of a driver that stopped is answered no later than its cycle allows, well inside the stale
        timeout."""
        arrival = self._arrival
        if not self._newer() or arrival is None:
            return 0.5 * self.period
        return max(0.0, min(0.5 * self.period, arrival + 1.1 * self.period - self.clock()))

    def _current(self) -> bool:
        """A newer state that arrived within the last half period. One older than that means this loop,
        on its own clock, ticks late in the driver's cycle: a command computed now would reach the
        driver after its next update and act one whole period late, every period (the zoo quadruped
        falls under that latency). So the standalone read waits for the driver's next state instead,
        and the loop locks onto the driver's phase."""
        arrival = self._arrival
        return self._newer() and arrival is not None and self.clock() - arrival <= 0.5 * self.period

    def _fresh_state(self) -> RobotState:
        state = self._latest
        if state is None:
            raise HardwareError(self.no_state_reason())
        return state

    def no_state_reason(self) -> str:
        """Why there is no state to act on: nothing arrived, or why the last JointState was rejected."""
        last = self.decoder.last_rejection
        why = f"; the last one was rejected ({last})" if last else ""
        qos = f"; {'; '.join(self.qos_problems)}" if self.qos_problems else ""
        return f"no valid JointState on {self.topic_name(self.state_topic)} yet{why}{qos}"

    def _write_command(self, command: np.ndarray) -> np.ndarray:
        if command.shape != (len(self.joints),):
            raise HardwareError(f"command has shape {command.shape}; this robot takes ({len(self.joints)},)")
        if not all_finite(command):  # the safety filter stops these; the topic never carries one
            raise HardwareError(f"refused to publish a non-finite command {command.tolist()}")
        with self._cond:  # one decision with the watchdog's: no command goes out after its safe one
            if self.standalone and stale_detail(self._returned_arrival, self.clock(),
                                                self.stale_timeout) is not None:
                # the state it was computed from went stale while it was computed: not acted on
                safe = self._publish_safe()
                if safe is not None:
                    self.stale_replaced += int(not np.array_equal(safe, command))
                    return safe
            self._publish(command)
        return command

    def _deactivate(self) -> None:
        self._publish_safe()
        self._enabled = False

    def _estop(self) -> None:
        if self._enabled:  # a robot never activated was never commanded: nothing to stop, nothing sent
            self._publish_safe()
            self._enabled = False

    def _recover(self) -> None:
        self._close()

    def _close(self) -> None:
        node = self.node
        if self._watchdog is not None:
            try:
                node.destroy_timer(self._watchdog)
            except Exception:  # a node already destroyed took it with it
                pass
            self._watchdog = None
        for entity in self._entities:
            try:
                if entity is self._publisher:
                    node.destroy_publisher(entity)
                else:
                    node.destroy_subscription(entity)
            except Exception:  # a node already destroyed took them with it
                pass
        with self._cond:
            self._entities, self._publisher = [], None
            self._latest = self._arrival = self._returned_arrival = None
        if self.standalone and self._context is not None:
            context, self._context = self._context, None
            try:
                self._executor.shutdown(timeout_sec=1.0)
                self.node.destroy_node()
            finally:
                context.try_shutdown()
                if self._thread is not None:
                    self._thread.join(timeout=2.0)
            self.node = None

    # ------------------------------------------------------------------ callbacks (executor thread)
    def _on_joint_state_raw(self, raw: bytes) -> None:
        read = self._reader.read(raw)
        if read is None:  # a layout the reader leaves alone: the ordinary message, the same checks
            from rclpy.serialization import deserialize_message

            self._on_joint_state(deserialize_message(raw, self._joint_state_type))
            return
        names, position, velocity, stamp = read
        self._accept(names, position, velocity, stamp or time.monotonic())

    def _on_joint_state(self, msg: Any) -> None:
        stamp = stamp_seconds(msg.header.stamp) or time.monotonic()
        self._accept(msg.name, msg.position, msg.velocity, stamp)

    def _accept(self, names: Any, position: Any, velocity: Any, stamp: float) -> None:
        if self._pose_names:  # the object's entries come from its pose topic, not the JointState
            pose = self._pose
            if pose is None:
                self.decoder._reject("names", f"no pose on {self.topic_name(self.pose_topic)} yet (the "
                                              f"entries {self._pose_names[0]} .. {self._pose_names[-1]})")
                return
            keep = [i for i, n in enumerate(names) if n not in self._pose_names]
            pos = np.frombuffer(position, dtype=np.float64) if isinstance(position, array.array) \
                else np.asarray(position, dtype=np.float64)
            vel = np.frombuffer(velocity, dtype=np.float64) if isinstance(velocity, array.array) \
                else np.asarray(velocity, dtype=np.float64)
            if pos.shape == vel.shape == (len(names),):  # else the decoder rejects the lengths
                names = [names[i] for i in keep] + list(self._pose_names)
                position = np.concatenate([pos[keep], pose])
                velocity = np.concatenate([vel[keep], np.zeros(len(pose))])
        orientation, angular = self._imu
        state = self.decoder.decode(names, position, velocity, stamp, self._sequence + 1, orientation,
                                    angular)
        if state is None:
            return
        self._sequence += 1
        with self._cond:
            self._arrival = self.clock()
            self._latest = state
        if self.standalone:
            self._arrivals.put(state.sequence)
        if self._watchdog is not None:
            self._watchdog.reset()  # fires `watchdog_period` after this arrival unless another comes
        if self.on_state is not None:
            self.on_state(state)

    def _on_imu(self, msg: Any) -> None:
        orientation = None
        if msg.orientation_covariance[0] != -1.0:
            q = msg.orientation
            orientation = np.array([q.w, q.x, q.y, q.z])
        w = msg.angular_velocity
        angular = None if msg.angular_velocity_covariance[0] == -1.0 else np.array([w.x, w.y, w.z])
        if (orientation is not None and not np.isfinite(orientation).all()) or \
                (angular is not None and not np.isfinite(angular).all()):
            self.decoder._reject("non_finite", "NaN/Inf in the Imu")
            return
        self._imu = (orientation, angular)

    def _on_pose(self, msg: Any) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        pose = np.array([p.x, p.y, p.z, q.w, q.x, q.y, q.z])
        if not np.isfinite(pose).all():
            self.decoder._reject("non_finite", f"NaN/Inf in the pose on {self.pose_topic}")
            return
        self._pose = pose
        self.poses_received += 1

    def _on_goal(self, msg: Any) -> None:
        q = msg.quaternion
        goal = np.array([q.w, q.x, q.y, q.z])
        if not np.isfinite(goal).all() or not np.linalg.norm(goal) > 1e-6:
            self.get_logger_error(f"refused a goal {goal.tolist()} on {self.goal_topic}: not a quaternion")
            return
        self.goals_received += 1
        if self.on_goal is not None:
            self.on_goal(goal / np.linalg.norm(goal))

    def _on_cmd_vel(self, msg: Any) -> None:
        command = np.array([msg.linear.x, msg.linear.y, msg.angular.z])
        if not np.isfinite(command).all():
            self.cmd_vel_refused += 1
            self.get_logger_error(f"refused a velocity command {command.tolist()} on {self.cmd_vel_topic}: "
                                  f"NaN/Inf")
            return
        self._cmd_vel_arrival = self.clock()
        self.velocity_command = command  # one reference swap: a reader sees the old or the new one
        self.cmd_vel_received += 1

    def get_logger_error(self, text: str) -> None:
        if self.node is not None:
            self.node.get_logger().error(text)

    def _on_watchdog(self) -> None:
        """States stopped: the safe command just past the stale timeout from the last arrival, without
        waiting for the control loop's next tick (standalone; again every watchdog period while stale)."""
        with self._cond:
            if self._enabled and self._publisher is not None and self.stale_detail() is not None:
                if self._publish_safe() is not None:
                    self.watchdog_safe += 1

    def _on_state_deadline(self, info: Any) -> None:
        self.state_deadline_missed = int(info.total_count)

    def _on_state_lost(self, info: Any) -> None:
        self.states_lost = int(info.total_count)

    def _on_command_deadline(self, info: Any) -> None:
        self.command_deadline_missed = int(info.total_count)

    def _on_incompatible(self, which: str) -> Callable[[Any], None]:
        topic = self.state_topic if which == "state" else self.command_topic

        def report(info: Any) -> None:
            policy = getattr(info.last_policy_kind, "name", str(info.last_policy_kind))
            hint = (" (a state publisher must offer a deadline no longer than the one requested: leave "
                    "state_deadline at 0 for a driver that offers none)"
                    if "DEADLINE" in policy and which == "state" else "")
            problem = f"{which} topic {self.topic_name(topic)}: incompatible QoS ({policy}){hint}"
            if problem not in self.qos_problems:
                self.qos_problems.append(problem)
                if self.node is not None:
                    self.node.get_logger().error(problem)
        return report

    # ------------------------------------------------------------------ internals
    def _publish(self, command: np.ndarray) -> None:
        if self._publisher is None:
            raise HardwareError("the ros2 robot is not configured (no command publisher)")
        msg = self._msg
        msg.data = array.array("d", command.tobytes())
        self._publisher.publish(msg)
        self.commands_sent += 1
        if self._to_policy is not None:
            self._last_command = np.array(command, dtype=np.float64)[self._to_policy]

    def _publish_safe(self) -> np.ndarray | None:
        """Publish the safe command (see the module docstring); what was sent, None if nothing was."""
        with self._cond:
            if self._publisher is None:
                return None
            if self.command_kind == "position":
                if self._latest is None:
                    return None  # nothing measured to hold: send nothing rather than a made-up position
                safe = np.array(self._latest.joint_positions, dtype=np.float64)
            else:
                safe = np.zeros(len(self.joints))
            self._publish(safe)
            return safe

    def status(self) -> dict[str, Any]:
        """What the backend counted, for the deploy report: states taken and rejected, commands sent,
        and the stale guards' safe commands."""
        return {"states_received": self.received, "states_rejected": self.rejected,
                "states_lost": self.states_lost, "commands_sent": self.commands_sent,
                **({"poses_received": self.poses_received} if self.pose_topic else {}),
                **({"goals_received": self.goals_received} if self.goal_topic else {}),
                **({"cmd_vel_received": self.cmd_vel_received, "cmd_vel_refused": self.cmd_vel_refused,
                    "velocity_command": self.velocity_command.tolist(),
                    "cmd_vel_timeouts": self.cmd_vel_timeouts}
                   if self.velocity_command is not None else {}),
                "stale_timeout": self.stale_timeout, "watchdog_safe": self.watchdog_safe,
                "stale_replaced": self.stale_replaced, "qos_problems": list(self.qos_problems)}

    def topic_name(self, topic: str) -> str:
        if self.node is None or topic.startswith("/"):
            return topic
        try:
            return self.node.resolve_topic_name(topic)
        except Exception:
            return topic


def make_robot(spec: TaskSpec, options: dict[str, Any] | None = None) -> Ros2Robot:
    """A standalone ROS 2 robot for `spec` (its own node `robot_rl_policy`), for `robot-rl deploy`.

    Options: `ros_args` (a list, e.g. ["-r", "joint_states:=/robot/joint_states"]; default: the
    process's command line), `joints`, `joint_map`, `state_joints`, `state_topic`, `imu_topic`,
    `command_topic`, `state_deadline`, `command_deadline`, `stale_timeout`, `connect_timeout`,
    `cmd_vel_topic`, `velocity_command`, `command_timeout`; `port`,
    `seed` and `task` must be None (they belong to other backends) and `realtime` may not be False (a robot's
    time is the wall's)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown ros2 backend option(s) {unknown}; valid: {', '.join(OPTIONS)}")
    options.update(ros_parameters(options.get("ros_args")))
    for key in ("port", "seed", "task"):
        if options.pop(key, None) is not None:
            raise ConfigError(f"--{key} applies to the {'serial' if key == 'port' else 'simulated'} "
                              f"backends, not ros2 (remap topics with --ros-args -r)")
    if options.pop("realtime", None) is False:
        raise ConfigError("--fast applies to simulated backends; a ROS 2 robot runs in real time")
    return Ros2Robot(spec, **options)


#: The policy node's parameters that are options of this backend: `robot-rl deploy --backend ros2
#: --ros-args -p NAME:=VALUE` sets these (the node's others are about its own timers and lifecycle).
PARAMETER_OPTIONS = ("joints", "joint_map", "state_joints", "state_topic", "imu_topic", "command_topic",
                     "state_deadline", "command_deadline", "stale_timeout", "pose_topic", "pose_joint",
                     "goal_topic", "cmd_vel_topic", "velocity_command", "command_timeout")


def ros_parameters(ros_args: Sequence[str] | None) -> dict[str, Any]:
    """The backend options given as `-p NAME:=VALUE` (or `--param`) in `ros_args`, typed and checked as
    the policy node checks them (values in ROS's YAML syntax, e.g. `-p joints:="['hip', 'knee']"`). A
    parameter that is not one of PARAMETER_OPTIONS is an error, not silently ignored."""
    import yaml

    from robot_rl.hardware.ros2_node_params import PARAMETERS, coerce_parameters

    args, given = list(ros_args or []), {}
    for i, arg in enumerate(args):
        if arg == "--params-file":
            raise ConfigError("--ros-args --params-file: the ros2 backend takes -p NAME:=VALUE; a parameters "
                              "file is for the policy node (python -m robot_rl.hardware.ros2_policy_node)")
        if arg not in ("-p", "--param") or i + 1 >= len(args):
            continue
        name, sep, text = args[i + 1].partition(":=")
        if not sep:
            raise ConfigError(f"--ros-args -p {args[i + 1]!r}: expected NAME:=VALUE")
        if name not in PARAMETER_OPTIONS:
            raise ConfigError(f"--ros-args -p {name}: not a parameter of the ros2 backend; its parameters: "
                              f"{', '.join(PARAMETER_OPTIONS)} (the policy node's others: run python -m "
                              f"robot_rl.hardware.ros2_policy_node)")
        try:
            given[name] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--ros-args -p {name}: cannot read {text!r}: {err}") from None
    checked = coerce_parameters({**PARAMETERS, **given})  # types and ranges, naming the parameter
    return {name: checked[name] for name in given}
