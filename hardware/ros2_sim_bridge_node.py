"""The `robot_rl_sim_bridge` node class (imports rclpy: loaded only where rclpy is; the entry point,
parameters and plant live in `ros2_sim_bridge`, which does not need it; the joint-state layout in
`robot_rl.sim.joint_naming`)."""

from __future__ import annotations

import array
import json
import sys
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray

from robot_rl.hardware.ros2_robot import check_ranges, command_qos, state_qos
from robot_rl.hardware.ros2_sim_bridge import PARAMETERS, RANGES, make_plant
from robot_rl.sim.joint_naming import joint_layout


def free_joint_address(model: Any, name: str) -> int | None:
    """qpos address of the free joint `name` (None: the model has no free joint of that name)."""
    import mujoco

    j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if j < 0 or int(model.jnt_type[j]) != mujoco.mjtJoint.mjJNT_FREE:
        return None
    return int(model.jnt_qposadr[j])


class SimBridge(Node):
    """A task's MuJoCo model behind ROS 2 topics, paced by a timer (see `ros2_sim_bridge`). `done` and
    `exit_code` tell the spinning caller when to stop."""

    def __init__(self, context: Any = None) -> None:
        super().__init__("robot_rl_sim_bridge", context=context)
        for key, value in PARAMETERS.items():
            self.declare_parameter(key, value, ParameterDescriptor(dynamic_typing=False))
        p = {key: self.get_parameter(key).value for key in PARAMETERS}
        check_ranges(p, RANGES)
        self.p = p
        self.done = False
        self.exit_code = 0
        self.robot = make_plant(p)
        spec = self.robot.spec
        self.spec = spec
        self.period = p["period"] or spec.control_period
        self.command_timeout = p["command_timeout"] or 3 * self.period
        self.names, self.qpos_index, self.qvel_index, self.free = joint_layout(self.robot._model)
        self._vel_used = self.qvel_index >= 0
        self._vel_buf = np.zeros(len(self.names))
        deadline = 1.5 * self.period if p["deadline"] < 0 else p["deadline"]
        self.state_pub = self.create_publisher(JointState, p["state_topic"], state_qos(deadline))
        self.imu_pub = (self.create_publisher(Imu, p["imu_topic"], state_qos(deadline))
                        if self.free is not None and p["imu_topic"] else None)
        self.diag_pub = self.create_publisher(DiagnosticArray, p["diagnostics_topic"], 10)
        self.pose_qpos = free_joint_address(self.robot._model, p["pose_joint"]) if p["pose_topic"] else None
        self.pose_pub = (self.create_publisher(PoseStamped, p["pose_topic"], state_qos(deadline))
                         if self.pose_qpos is not None else None)
        self._pose_msg = PoseStamped()
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
        self.late_run = self.longest_late_run = 0
        self.first_held: int | None = None  # the first step the command had timed out (the safe hold)
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
                  "commands_refused": self.refused, "periods_without_fresh_command": self.late,
                  "longest_run_without_fresh_command": self.longest_late_run,
                  "first_step_held": self.first_held}
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
            if self.first_held is None:
                self.first_held = self.steps + 1
        else:
            command = self._command
        if not self._fresh:
            self.late += 1
            self.late_run += 1
            self.longest_late_run = max(self.longest_late_run, self.late_run)
        else:
            self.late_run = 0
        self._fresh = False
        self.robot.write_command(command)
        self.steps += 1
        self.ret += float(self.robot.last_reward or 0.0)
        self._publish_state()
        if self.robot.episode_over or self.steps >= self._limit():
            self._end_episode()

    def _safe(self) -> np.ndarray:
        n = self.spec.act_dim
        if self.spec.action.command_kind != "position":
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
        if self.pose_pub is not None and self.pose_qpos is not None:
            pose, x = self._pose_msg, data.qpos[self.pose_qpos:self.pose_qpos + 7]
            pose.header.stamp = msg.header.stamp
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = map(float, x[:3])
            o = pose.pose.orientation
            o.w, o.x, o.y, o.z = map(float, x[3:])
            self.pose_pub.publish(pose)
        if self.imu_pub is not None and self.free is not None:
            (qa, va), imu = self.free, self._imu_msg
            q, a = data.qpos[qa + 3:qa + 7], data.qvel[va + 3:va + 6]
            imu.header.stamp = msg.header.stamp
            imu.orientation.w, imu.orientation.x, imu.orientation.y, imu.orientation.z = map(float, q)
            imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = map(float, a)
            self.imu_pub.publish(imu)

