"""Gymnasium's discrete-action tasks (CartPole-v1, Acrobot-v1, MountainCar-v0, LunarLander-v3), seen
through a task spec.

As `locomotion.py` does for MuJoCo, `ClassicControlEnv` drives Gymnasium's own environment (its
dynamics, reward, termination and reset distribution are kept, so results compare with everyone
else's), but returns the observation built by `ObservationBuilder` from `robot_state()`: named fields
of the simulator's state, through terms that reproduce Gymnasium's observation. The conformance tests
hold the two equal (Gymnasium rounds its observation to float32; ours is float64).

State fields, in SI units where the task has them:
- CartPole: qpos = (cart position m, pole angle rad), qvel = (m/s, rad/s); 0.02 s per step.
- Acrobot: qpos = (θ1, θ2) rad, qvel = (θ̇1, θ̇2) rad/s; observed as cos/sin of the angles; 0.2 s.
- MountainCar: qpos = position, qvel = velocity, in the task's own units (it has no clock: one step
  is taken as 1 s).
- LunarLander: position (m, relative to the landing pad's centre at leg height), velocity (m/s),
  angle (rad), angular_velocity (rad/s), leg_contact (0/1 per leg); observed with Gymnasium's scales;
  1/50 s per step.

The action is discrete (`ActionSpec.discrete(n)`): `step` takes the action index (an int, or a
float/array holding a whole number, as `evaluate` passes it); the spec maps it to the command.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.spec import ActionSpec, ObsTerm, TaskSpec

from .spec_env import SpecEnv, discrete_index


@dataclass(frozen=True)
class _Task:
    """How one Gymnasium task is seen: its state fields, observation terms and clock."""

    fields: dict[str, int]
    terms: tuple[ObsTerm, ...]
    state: Callable[[Any], dict[str, np.ndarray]]
    """The named state of Gymnasium's unwrapped env (fresh arrays)."""
    control_period: float
    """Seconds per step."""


def _split_state(sim: Any) -> dict[str, np.ndarray]:
    """CartPole, Acrobot, MountainCar: `sim.state` is (positions…, velocities…)."""
    state = np.asarray(sim.state, dtype=np.float64)
    half = state.size // 2
    return {"qpos": state[:half].copy(), "qvel": state[half:].copy()}


def _cartpole_state(sim: Any) -> dict[str, np.ndarray]:
    x, x_dot, theta, theta_dot = np.asarray(sim.state, dtype=np.float64)  # Gymnasium's order
    return {"qpos": np.array([x, theta]), "qvel": np.array([x_dot, theta_dot])}


def _lunar_lander_state(sim: Any) -> dict[str, np.ndarray]:
    from gymnasium.envs.box2d.lunar_lander import LEG_DOWN, SCALE, VIEWPORT_W

    pos, vel = sim.lander.position, sim.lander.linearVelocity
    pad = (VIEWPORT_W / SCALE / 2, sim.helipad_y + LEG_DOWN / SCALE)
    return {"position": np.array([pos.x - pad[0], pos.y - pad[1]]),
            "velocity": np.array([vel.x, vel.y]),
            "angle": np.array([sim.lander.angle]),
            "angular_velocity": np.array([sim.lander.angularVelocity]),
            "leg_contact": np.array([float(leg.ground_contact) for leg in sim.legs])}


def _lunar_lander() -> _Task:
    from gymnasium.envs.box2d.lunar_lander import FPS, SCALE, VIEWPORT_H, VIEWPORT_W

    half_w, half_h = VIEWPORT_W / SCALE / 2, VIEWPORT_H / SCALE / 2  # metres
    terms = (ObsTerm("x", "position", (0,), scale=1.0 / half_w),
             ObsTerm("y", "position", (1,), scale=1.0 / half_h),
             ObsTerm("vx", "velocity", (0,), scale=half_w / FPS),
             ObsTerm("vy", "velocity", (1,), scale=half_h / FPS),
             ObsTerm("angle", "angle"),
             ObsTerm("angular_velocity", "angular_velocity", scale=20.0 / FPS),
             ObsTerm("leg_contact", "leg_contact"))
    fields = {"position": 2, "velocity": 2, "angle": 1, "angular_velocity": 1, "leg_contact": 2}
    return _Task(fields, terms, _lunar_lander_state, 1.0 / FPS)


def _cartpole() -> _Task:
    terms = (ObsTerm("cart_position", "qpos", (0,)), ObsTerm("cart_velocity", "qvel", (0,)),
             ObsTerm("pole_angle", "qpos", (1,)), ObsTerm("pole_angular_velocity", "qvel", (1,)))
    return _Task({"qpos": 2, "qvel": 2}, terms, _cartpole_state, 0.02)


def _acrobot() -> _Task:
    terms = (ObsTerm("cos_theta1", "qpos", (0,), transform="cos"),
             ObsTerm("sin_theta1", "qpos", (0,), transform="sin"),
             ObsTerm("cos_theta2", "qpos", (1,), transform="cos"),
             ObsTerm("sin_theta2", "qpos", (1,), transform="sin"),
             ObsTerm("joint_velocities", "qvel"))
    return _Task({"qpos": 2, "qvel": 2}, terms, _split_state, 0.2)


def _mountain_car() -> _Task:
    terms = (ObsTerm("position", "qpos"), ObsTerm("velocity", "qvel"))
    return _Task({"qpos": 1, "qvel": 1}, terms, _split_state, 1.0)


TASKS: dict[str, Callable[[], _Task]] = {
    "CartPole-v1": _cartpole,
    "Acrobot-v1": _acrobot,
    "MountainCar-v0": _mountain_car,
    "LunarLander-v3": _lunar_lander,
}


def box2d_available() -> bool:
    """LunarLander needs Gymnasium's box2d extra (`pip install "gymnasium[box2d]"`)."""
    try:
        import Box2D  # noqa: F401
    except ImportError:
        return False
    return True


def classic_control_spec(task_id: str, num_actions: int) -> TaskSpec:
    task = TASKS[task_id]()
    period = task.control_period
    return TaskSpec(name=task_id, joint_names=("action",), observation=task.terms,
                    action=ActionSpec.discrete(num_actions), joint_limits=((-math.inf, math.inf),),
                    control_period=period, physics_dt=period, state_fields=task.fields)


class ClassicControlEnv(SpecEnv):
    """A Gymnasium discrete-action task seen through its spec: obs `(obs_dim,)` float64, Discrete(n).

    `simulator` is Gymnasium's own unwrapped env. No time limit here: `make_env` adds Gymnasium's
    registered one (`max_episode_steps`), so reaching it is a truncation, not a termination.
    """

    def __init__(self, task_id: str, seed: int | None = None, render_mode: str | None = None) -> None:
        if task_id not in TASKS:
            raise ValueError(f"{task_id!r} is not a discrete Gymnasium task; known: {', '.join(TASKS)}")
        if task_id == "LunarLander-v3" and not box2d_available():
            raise ConfigError('task LunarLander-v3 needs Box2D: pip install "gymnasium[box2d]"')
        self.simulator = gymnasium.make(task_id, render_mode=render_mode, disable_env_checker=True).unwrapped
        self.max_episode_steps: int | None = gymnasium.spec(task_id).max_episode_steps
        self.task_spec = classic_control_spec(task_id, int(self.simulator.action_space.n))
        self._state = TASKS[task_id]().state
        self.render_mode = render_mode
        self.metadata = {"render_modes": self.simulator.metadata.get("render_modes", []),
                         "render_fps": self.simulator.metadata.get("render_fps")}
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.task_spec.obs_dim,), np.float64)
        self.action_space = gymnasium.spaces.Discrete(self.task_spec.action.num_actions, seed=seed)
        self._setup(seed)

    def robot_state(self) -> dict[str, np.ndarray]:
        """The simulator's state as named fields (see the module docstring)."""
        return self._state(self.simulator)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        index = discrete_index(self.task_spec, action)
        _, reward, terminated, truncated, info = self.simulator.step(index)
        return self.observe(), float(reward), bool(terminated), bool(truncated), info
