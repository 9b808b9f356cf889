"""Which tasks the simulated backends take, found through the registry and declared types (the engine's
task list, `DmControlEnv`), never by probing an env's attributes."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.hardware.mujoco_robot import MujocoRobot
from robot_rl.hardware.pybullet_robot import PyBulletRobot
from robot_rl.hardware.robot import HardwareError


def test_a_dm_control_task_runs_on_the_mujoco_backend_through_its_physics():
    robot = MujocoRobot("dmc:cartpole-swingup", realtime=False)
    robot.configure()
    try:
        first = robot.activate()
        assert set(first.fields) == set(robot.spec.state_fields)
        for _ in range(20):
            sent = robot.write_command(np.array([1.0]))
        state = robot.read_state()
        assert sent.tolist() == [1.0] and state.timestamp > first.timestamp
        assert not np.allclose(state.joint_positions, first.joint_positions)  # the cart was pushed
        robot.deactivate()
    finally:
        robot.close()


@pytest.mark.parametrize(("cls", "task", "error", "message"), [
    (MujocoRobot, "CartPole-v1", HardwareError, "not a MuJoCo task"),
    (PyBulletRobot, "dmc:cartpole-swingup", HardwareError, "engine's tasks only"),
    (MujocoRobot, "Hopper-v6", ConfigError, "unknown task 'Hopper-v6'"),
])
def test_a_task_the_backend_cannot_run_is_refused_at_configure(cls, task, error, message):
    robot = cls(task, realtime=False)
    with pytest.raises(error, match=message):
        robot.configure()
    robot.close()
