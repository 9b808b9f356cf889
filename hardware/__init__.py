"""The hardware-abstraction layer: one `Robot` interface, a safety filter, a fixed-rate control loop.

    from robot_rl.hardware import ControlLoop
    from robot_rl.hardware.mujoco_robot import make_robot     # or pybullet_robot, serial_robot
    stats = ControlLoop(make_robot(policy.spec, {}), policy).run(duration=10.0)

Backends (`robot-rl deploy --backend NAME`): `mujoco_robot` (the task's own model), `pybullet_robot`
(the same robot in PyBullet, `robot_rl.sim.pybullet_twin`), `serial_robot` (a microcontroller over
a serial link, `protocol`, `serial_link`; the `emulator` plays the device in hardware-in-the-loop tests).

Nothing is imported until used (module `__getattr__`): the serial path imports numpy, pyyaml and
pyserial only, never mujoco, pybullet or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Robot": "robot", "RobotState": "robot", "HardwareError": "robot", "Lifecycle": "robot",
    "SafetyConfig": "safety", "SafetyFilter": "safety",
    "ControlLoop": "control_loop", "LoopStats": "control_loop", "joint_mapping": "control_loop",
    "MujocoRobot": "mujoco_robot", "PyBulletRobot": "pybullet_robot",
    "SerialRobot": "serial_robot",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
