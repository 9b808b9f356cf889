"""The simulation bridge node `robot_rl_sim_bridge`: a task's MuJoCo model standing in for a robot driver.

    python -m robot_rl.hardware.ros2_sim_bridge --ros-args -p bundle:=zoo:Hopper-v5_ppo -p episodes:=1

The plant is the MuJoCo backend (`MujocoRobot`, i.e. `robot_rl.sim.make_env(task)`: the model the
policy was trained in, stepped exactly as `robot-rl deploy --backend mujoco` steps it), paced in real
time by a timer at the control period. Each tick applies the latest command, advances the physics by
one control period and publishes the new state, so a command computed from state k within the period
acts on step k, as in the MuJoCo backend.

Topics (relative names; remap with `-r`):
- `joint_states` (sensor_msgs/JointState, out): every joint of the model, named after the MuJoCo
  joint, in model order, position = its qpos and velocity = its qvel. The arrays are therefore the
  model's generalized coordinates `qpos`/`qvel` (what the gymnasium tasks' observations read). A free
  joint J is the seven entries `J:x J:y J:z J:qw J:qx J:qy J:qz` (velocities: its six qvel on the
  entries other than `J:qw`, whose velocity is 0 and unused); a ball joint the four `J:qw .. J:qz`.
  Header stamp: this node's ROS clock. QoS: best effort, depth 1, offered deadline (`deadline`).
- `imu` (sensor_msgs/Imu, out, only for a model with a free joint): the first free joint's
  orientation and angular velocity (body frame, rad/s); no linear acceleration (covariance[0] = -1).
- `commands` (std_msgs/Float64MultiArray, in): one value per actuated joint in the task spec's joint
  order (a forward_command_controller's `joints`), robot units. Reliable, depth 1. A command of the
  wrong length or with NaN/Inf is refused and counted; the driver-side watchdog applies the safe
  command (zero torque or velocity, or hold position) when none came for `command_timeout`.
- `diagnostics` (diagnostic_msgs/DiagnosticArray, out): the episode report when an episode ends.

Until the first command arrives the robot holds (`hold_until_command`): the state is published every
period but the physics does not advance, so an episode starts when its controller does. When an
episode ends (termination, the task's time limit, or `max_steps`) its report (episode, seed, steps,
return, whether it terminated, root x at start and end, commands refused and control periods without
a fresh command) is printed as one JSON line, logged and published; then the next episode starts
(seed + 1), or after `episodes` episodes the node exits (exit code 0).
"""

from __future__ import annotations

import array
import json
import sys
import time
from typing import Any

import numpy as np

from robot_rl.errors import RobotRLError
from robot_rl.hardware.ros2_robot import check_ranges, command_qos, count_range, seconds_range, state_qos

PARAMETERS: dict[str, Any] = {
    "bundle": "",
    "task": "",
    "seed": 0,
    "period": 0.0,
    "episodes": 0,
    "max_steps": 0,
    "hold_until_command": True,
    "command_timeout": 0.0,
    "deadline": -1.0,
    "state_topic": "joint_states",
    "imu_topic": "imu",
    "command_topic": "commands",
    "diagnostics_topic": "diagnostics",
}
"""Parameter defaults. `bundle` or `task` picks the model (`task` wins); `period` 0: the task's control
period; `episodes` 0: forever; `max_steps` 0: the task's own time limit; `command_timeout` 0: three
periods; `deadline` (offered on the state topic) -1: 1.5 periods, 0: none."""
RANGES = {
    "seed": count_range("the first seed"),
    "period": seconds_range("the task's control period"),
    "episodes": count_range("forever"),
    "max_steps": count_range("the task's own time limit"),
    "command_timeout": seconds_range("three periods"),
    "deadline": seconds_range("none", "1.5 periods"),
}


def joint_state_layout(model: Any) -> tuple[list[str], np.ndarray, np.ndarray, tuple[int, int] | None]:
    """(names, qpos index, qvel index with -1 for unused entries, (qpos, qvel) addresses of the first
    free joint or None) of a MuJoCo model, in the convention of the module docstring."""
    import mujoco

    names: list[str] = []
    qpos: list[int] = []
    qvel: list[int] = []
    free: tuple[int, int] | None = None
    for j in range(model.njnt):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
        kind, qa, va = int(model.jnt_type[j]), int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])
        if kind == mujoco.mjtJoint.mjJNT_FREE:
            free = (qa, va) if free is None else free
            parts = ["x", "y", "z", "qw", "qx", "qy", "qz"]
            vels = [va, va + 1, va + 2, -1, va + 3, va + 4, va + 5]
        elif kind == mujoco.mjtJoint.mjJNT_BALL:
            parts = ["qw", "qx", "qy", "qz"]
            vels = [-1, va, va + 1, va + 2]
        else:
            names.append(name)
            qpos.append(qa)
            qvel.append(va)
            continue
        names += [f"{name}:{p}" for p in parts]
        qpos += list(range(qa, qa + len(parts)))
        qvel += vels
    return names, np.array(qpos, dtype=np.intp), np.array(qvel, dtype=np.intp), free


def make_bridge(rclpy: Any, context: Any = None) -> Any:
    """The bridge node class (built here so that importing this module needs no rclpy)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.node import Node
    from sensor_msgs.msg import Imu, JointState
    from std_msgs.msg import Float64MultiArray

    class SimBridge(Node):
        def __init__(self) -> None:
            super().__init__("robot_rl_sim_bridge", context=context)
            for key, value in PARAMETERS.items():
                self.declare_parameter(key, value, ParameterDescriptor(dynamic_typing=False))
            p = {key: self.get_parameter(key).value for key in PARAMETERS}
            check_ranges(p, RANGES)
            self.p = p
            self.done = False
            self.exit_code = 0
            self.robot = _make_robot(p)
            spec = self.robot.spec
            self.spec = spec
            self.period = p["period"] or spec.control_period
            self.command_timeout = p["command_timeout"] or 3 * self.period
            self.names, self.qpos_index, self.qvel_index, self.free = joint_state_layout(self.robot._model)
            self._vel_used = self.qvel_index >= 0
            self._vel_buf = np.zeros(len(self.names))
            deadline = 1.5 * self.period if p["deadline"] < 0 else p["deadline"]
            self.state_pub = self.create_publisher(JointState, p["state_topic"], state_qos(deadline))
            self.imu_pub = (self.create_publisher(Imu, p["imu_topic"], state_qos(deadline))
                            if self.free is not None and p["imu_topic"] else None)
            self.diag_pub = self.create_publisher(DiagnosticArray, p["diagnostics_topic"], 10)
            self.create_subscription(Float64MultiArray, p["command_topic"], self._on_command,
                                     command_qos(None))
            self._state_msg = JointState(name=list(self.names))
            self._imu_msg = Imu()
            self._imu_msg.linear_acceleration_covariance[0] = -1.0
            self._command: np.ndarray | None = None
            self._command_time = 0.0
            self._fresh = False
            self.refused = 0
            self.episode = -1
            self.holding = bool(p["hold_until_command"])
            self._new_episode()
            self.timer = self.create_timer(self.period, self._tick)
            self.get_logger().info(f"{spec.name}: {len(self.names)} joint-state entries {self.names}; "
                                   f"commands for {list(spec.joint_names)} every {self.period * 1e3:g} ms")

        # ---------------------------------------------------------------- episodes
        def _new_episode(self) -> None:
            robot = self.robot
            if robot.lifecycle.value == "active":
                robot.deactivate()
            robot.activate()  # resets with seed + episode index
            self.episode += 1
            self.steps, self.ret, self.late, self.refused = 0, 0.0, 0, 0
            self.x_start = self._root_x()
            self._publish_state()

        def _root_x(self) -> float | None:
            return float(self.robot._data.qpos[0]) if self.names and (
                self.names[0].endswith(":x") or int(self.robot._model.jnt_type[0]) == 2) else None

        def _end_episode(self) -> None:
            report = {"event": "episode", "task": self.spec.name, "episode": self.episode,
                      "seed": self.robot.seed + self.episode, "steps": self.steps, "return": self.ret,
                      "terminated": bool(self.robot.episode_over and self.steps < self._limit()),
                      "x_start": self.x_start, "x_end": self._root_x(),
                      "commands_refused": self.refused, "periods_without_fresh_command": self.late}
            print(json.dumps(report), flush=True)
            self.get_logger().info(f"episode {self.episode}: return {self.ret:.3f} in {self.steps} steps")
            status = DiagnosticStatus(level=DiagnosticStatus.OK, name="robot_rl_sim_bridge: episode",
                                      message=f"episode {self.episode} return {self.ret:.3f}",
                                      hardware_id=self.spec.name,
                                      values=[KeyValue(key=k, value=str(v)) for k, v in report.items()])
            msg = DiagnosticArray(status=[status])
            msg.header.stamp = self.get_clock().now().to_msg()
            self.diag_pub.publish(msg)
            if self.p["episodes"] and self.episode + 1 >= self.p["episodes"]:
                self.done = True
                self.timer.cancel()
            else:
                self._new_episode()

        def _limit(self) -> int:
            limit = self.robot._max_steps or 0
            if self.p["max_steps"]:
                limit = min(limit, self.p["max_steps"]) if limit else self.p["max_steps"]
            return limit or sys.maxsize

        # ---------------------------------------------------------------- real time
        def _tick(self) -> None:
            if self.done:
                return
            if self.holding:
                if self._command is None:
                    self._publish_state()
                    return
                self.holding = False
            now = time.monotonic()
            if self._command is None or now - self._command_time > self.command_timeout:
                command = self._safe()
            else:
                command = self._command
            if not self._fresh:
                self.late += 1
            self._fresh = False
            self.robot.write_command(command)
            self.steps += 1
            self.ret += float(self.robot.last_reward or 0.0)
            self._publish_state()
            if self.robot.episode_over or self.steps >= self._limit():
                self._end_episode()

        def _safe(self) -> np.ndarray:
            n = self.spec.act_dim
            if self.spec.action.kind != "position":
                return np.zeros(n)
            return np.asarray(self.robot.read_state().joint_positions, dtype=np.float64)

        def _on_command(self, msg: Any) -> None:
            data = np.frombuffer(msg.data, dtype=np.float64) if isinstance(msg.data, array.array) \
                else np.asarray(msg.data, dtype=np.float64)
            if data.shape != (self.spec.act_dim,) or not np.isfinite(data).all():
                self.refused += 1
                self.get_logger().warning(f"refused a command {data.tolist()}: the bridge takes "
                                          f"{self.spec.act_dim} finite values", throttle_duration_sec=1.0)
                return
            self._command = data.copy()
            self._command_time = time.monotonic()
            self._fresh = True

        def _publish_state(self) -> None:
            data = self.robot._data
            msg = self._state_msg
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.position = array.array("d", data.qpos[self.qpos_index].tobytes())
            vel = self._vel_buf
            vel[self._vel_used] = data.qvel[self.qvel_index[self._vel_used]]
            msg.velocity = array.array("d", vel.tobytes())
            self.state_pub.publish(msg)
            if self.imu_pub is not None:
                (qa, va), imu = self.free, self._imu_msg
                q, a = data.qpos[qa + 3:qa + 7], data.qvel[va + 3:va + 6]
                imu.header.stamp = msg.header.stamp
                imu.orientation.w, imu.orientation.x, imu.orientation.y, imu.orientation.z = map(float, q)
                imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = map(float, a)
                self.imu_pub.publish(imu)

    return SimBridge


def _make_robot(p: dict[str, Any]) -> Any:
    from robot_rl.hardware.mujoco_robot import MujocoRobot

    task = p["task"]
    if not task:
        if not p["bundle"]:
            raise RobotRLError("robot_rl_sim_bridge: set the parameter task (e.g. Hopper-v5) or bundle")
        from robot_rl.hardware.hil import bundle_task

        task = bundle_task(p["bundle"])
    robot = MujocoRobot(task, seed=int(p["seed"]), realtime=False)
    robot.configure()
    return robot


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until its episodes are done, or SIGINT/SIGTERM; exit code 0, 2 on a bad setup."""
    import signal

    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from robot_rl.hardware.ros2_policy_node import make_executor

    argv = list(sys.argv if argv is None else argv)
    context = rclpy.Context()
    rclpy.init(args=argv, context=context, signal_handler_options=SignalHandlerOptions.NO)
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    node = None
    try:
        try:
            node = make_bridge(rclpy, context)()
        except RobotRLError as err:
            print(f"robot_rl_sim_bridge: error: {err}", file=sys.stderr)
            return 2
        # events in arrival order: a command that came before the next tick's deadline is applied at
        # that tick even when this process got the CPU late (a wait set would run the timer first)
        executor = make_executor("auto", context)
        executor.add_node(node)
        while not stop and not node.done:
            executor.spin_once(timeout_sec=0.1)
        return node.exit_code
    finally:
        if node is not None:
            node.robot.close()
            node.destroy_node()
        context.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
