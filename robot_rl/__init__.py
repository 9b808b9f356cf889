"""robot_rl: reinforcement learning from the MDP to the robot.

Importing this package does no work and pulls in no heavy dependency (no torch, no mujoco): a robot
computer imports `robot_rl.policies` and `robot_rl.hardware` with numpy alone.
"""

from robot_rl.errors import ConfigError, RobotRLError

__version__ = "0.1.0"
__all__ = ["ConfigError", "RobotRLError", "__version__"]
