"""The Shadow Hand block tasks of gymnasium-robotics through robot_rl's task API, for comparison with our
own hand (sim/cube_task.py): `HandManipulateBlockRotateZ-v1` (turn the block about the vertical to a goal
yaw) and `HandManipulateBlock-v1` (goal position and orientation on SO(3)), on the mujoco bindings, each
also with gymnasium-robotics' dense reward (`...Dense-v1`: minus the orientation error in rad, plus ten
times the position error in m; the sparse ids reward -1 per step until the goal is met).

- Observation, through the spec's terms: the 24 hand joint positions (rad) and velocities (rad/s), the
  block's velocity (6: linear m/s, angular rad/s) and pose (7: position m, quaternion w x y z), and the
  goal as goal terms: the block-to-goal orientation error (quaternion conj(goal) * block, w >= 0) and,
  where the goal has a position (`HandManipulateBlock`), the block-minus-goal position. The goal-
  conditioned dict observation is thus flattened through the spec; the goal (desired_goal, 7) is a goal
  state field, as a robot would be handed it.
- Action: 20 normalised position targets over the actuators' ctrlrange (their `relative_control=False`:
  ctrl = centre + action * half-range, what the spec's "position" mapping computes). The joints are the
  actuators' joints or tendons (the coupled finger joints are driven through tendons).
- Success: gymnasium-robotics' own `is_success` in each step's info (within 0.1 rad, and 1 cm where the
  position counts); `evaluate` reads it at an episode's last step, so `eval --json` reports
  `success_rate` (the block at its goal when the 100-step episode ends).
- Episodes: 100 steps of 40 ms (20 physics steps of 2 ms); no termination (the block may drop).
- Not here: domain randomization (the env declares no `model`/`data`, so `randomize:` refuses it by
  name; their model is `env.simulator.model`), the batched engine, a hardware deployment.

The mujoco 3.17 fix: gymnasium-robotics 1.4.2's joint accessors (`mujoco_utils.get_joint_qpos`,
`get_joint_qvel`, `set_joint_qpos`, `set_joint_qvel`, and `robot_get_obs` through them) assert
`model.jnt_type[j] in (mjJNT_HINGE, mjJNT_SLIDE)`. The tuple test compares `mjtJoint.X == np.int32(t)`
with the enum on the left, which mujoco 3.17's enum answers False for any numpy integer, so every hinge
joint fails the assertion. The env reads these functions through its instance attribute `_utils`, set to
the module in `MujocoRobotEnv.__init__` (before its first `_get_obs`). `ShadowBlockSimulator` subclasses
their env with `_utils` as a class property that always returns `FIXED_UTILS` (the module's functions,
with the five above replaced by ones that compare `int(jnt_type)`) and ignores the assignment. Nothing
installed is edited and nothing global is patched: other users of gymnasium_robotics see it unchanged.
"""

from __future__ import annotations

import functools
import types
import warnings
from typing import Any

import gymnasium
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.spec import ActionSpec, ObservationBuilder, ObsTerm, TaskSpec

TASK_IDS = ("HandManipulateBlockRotateZ-v1", "HandManipulateBlockRotateZDense-v1",
            "HandManipulateBlock-v1", "HandManipulateBlockDense-v1")
"""The registered Shadow Hand ids (gymnasium-robotics' own)."""
NQ_HAND = 24
"""The hand's joints (wrist 2, fingers 4 x 4 + thumb 5 + little finger's metacarpal 1)."""


def _robotics() -> Any:
    """gymnasium_robotics, imported on first use (its import registers every one of its envs)."""
    try:
        with warnings.catch_warnings():  # its import warns about Adroit reward versions
            warnings.simplefilter("ignore")
            import gymnasium_robotics
    except ImportError:
        raise ConfigError("the Shadow Hand tasks need gymnasium-robotics: pip install 'robot-rl[robotics]' "
                          "(gymnasium-robotics==1.4.2)") from None
    return gymnasium_robotics


# ---------------------------------------------------------------------------------------- the fix


def _joint_slice(model: Any, name: str, address: Any, free: int, ball: int) -> slice:
    """qpos/qvel slice of joint `name`: `free` or `ball` entries for those types, 1 for hinge and slide."""
    import mujoco

    j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if j == -1:
        raise ValueError(f"joint {name!r} is not part of the model")
    kind = int(model.jnt_type[j])  # int(): the enum == numpy-integer comparison is what fails on 3.17
    width = {int(mujoco.mjtJoint.mjJNT_FREE): free, int(mujoco.mjtJoint.mjJNT_BALL): ball}.get(kind, 1)
    start = int(address[j])
    return slice(start, start + width)


def get_joint_qpos(model: Any, data: Any, name: str) -> np.ndarray:
    return data.qpos[_joint_slice(model, name, model.jnt_qposadr, 7, 4)].copy()


def get_joint_qvel(model: Any, data: Any, name: str) -> np.ndarray:
    return data.qvel[_joint_slice(model, name, model.jnt_dofadr, 6, 3)].copy()


def set_joint_qpos(model: Any, data: Any, name: str, value: Any) -> None:
    data.qpos[_joint_slice(model, name, model.jnt_qposadr, 7, 4)] = value


def set_joint_qvel(model: Any, data: Any, name: str, value: Any) -> None:
    data.qvel[_joint_slice(model, name, model.jnt_dofadr, 6, 3)] = value


def robot_get_obs(model: Any, data: Any, joint_names: Any) -> tuple[np.ndarray, np.ndarray]:
    """Their `robot_get_obs` over the fixed accessors: positions and velocities of the `robot*` joints."""
    names = [n for n in joint_names if n.startswith("robot")]
    if data.qpos is None or not names:
        return np.zeros(0), np.zeros(0)
    return (np.squeeze(np.array([get_joint_qpos(model, data, n) for n in names])),
            np.squeeze(np.array([get_joint_qvel(model, data, n) for n in names])))


@functools.cache
def fixed_utils() -> types.SimpleNamespace:
    """gymnasium_robotics' `mujoco_utils` with the joint accessors above in place of its own."""
    _robotics()
    from gymnasium_robotics.utils import mujoco_utils

    names = {k: v for k, v in vars(mujoco_utils).items() if not k.startswith("__")}
    names.update(get_joint_qpos=get_joint_qpos, get_joint_qvel=get_joint_qvel, set_joint_qpos=set_joint_qpos,
                 set_joint_qvel=set_joint_qvel, robot_get_obs=robot_get_obs)
    return types.SimpleNamespace(**names)


@functools.cache
def simulator_class() -> type:
    """`ShadowBlockSimulator`: their `MujocoHandBlockEnv` reading `fixed_utils()` (see the module doc)."""
    _robotics()
    from gymnasium_robotics.envs.shadow_dexterous_hand.manipulate_block import MujocoHandBlockEnv

    def get(self: Any) -> types.SimpleNamespace:
        return fixed_utils()

    def ignore(self: Any, value: Any) -> None:  # MujocoRobotEnv.__init__ assigns the broken module
        pass

    return type("ShadowBlockSimulator", (MujocoHandBlockEnv,), {"_utils": property(get, ignore)})


# ---------------------------------------------------------------------------------------- the spec


def _actuated(model: Any) -> tuple[tuple[str, ...], tuple[tuple[float, float], ...]]:
    """(joint or tendon name, its limits) per actuator, in actuator order."""
    import mujoco

    names, limits = [], []
    for i in range(model.nu):
        target = int(model.actuator_trnid[i, 0])
        if model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT:
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, target)
            limited, bounds = model.jnt_limited[target], model.jnt_range[target]
        else:  # the coupled distal joints: a tendon over two joints
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_TENDON, target)
            limited, bounds = model.tendon_limited[target], model.tendon_range[target]
        names.append(name)
        limits.append((float(bounds[0]), float(bounds[1])) if limited else (-np.inf, np.inf))
    return tuple(names), tuple(limits)


def shadow_spec(task_id: str, sim: Any) -> TaskSpec:
    """The spec of a built Shadow block env: joints as actuated, observation terms over its state fields."""
    model = sim.model
    names, limits = _actuated(model)
    ctrl = model.actuator_ctrlrange
    terms = [ObsTerm("joint_pos", "robot_qpos"),
             ObsTerm("joint_vel", "robot_qvel"),
             ObsTerm("block_vel", "object_qvel"),
             ObsTerm("block_pose", "object_pose"),
             ObsTerm("block_to_goal", "object_pose", indices=(3, 4, 5, 6), relative="orientation_quat",
                     goal="goal", goal_indices=(3, 4, 5, 6))]
    if sim.target_position != "ignore":
        terms.append(ObsTerm("block_to_goal_pos", "object_pose", indices=(0, 1, 2), relative="position",
                             goal="goal", goal_indices=(0, 1, 2)))
    return TaskSpec(name=task_id, joint_names=names, observation=tuple(terms),
                    action=ActionSpec.from_bounds("position", ctrl[:, 0].copy(), ctrl[:, 1].copy()),
                    joint_limits=limits, control_period=float(sim.dt), physics_dt=float(model.opt.timestep),
                    state_fields={"robot_qpos": NQ_HAND, "robot_qvel": NQ_HAND, "object_qvel": 6,
                                  "object_pose": 7, "goal": 7},
                    goal_fields=("goal",))


# ---------------------------------------------------------------------------------------- the env


class ShadowBlockEnv(gymnasium.Env):
    """A Shadow Hand block task as a robot_rl task env: obs `(obs_dim,)` float64 built through the spec
    from `robot_state()`, action `(20,)` in [-1, 1]; `info["is_success"]` each step (theirs)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # noqa: RUF012

    def __init__(self, task_id: str, seed: int | None = None, render_mode: str | None = None) -> None:
        if task_id not in TASK_IDS:
            raise ConfigError(f"task: {task_id!r} is not a Shadow Hand block task; valid: "
                              f"{', '.join(TASK_IDS)}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array'")
        _robotics()
        registered = gymnasium.spec(task_id)
        self.simulator = simulator_class()(**registered.kwargs, render_mode=render_mode)
        self.max_episode_steps = int(registered.max_episode_steps or 100)  # theirs: 100 for every block id
        self.task_spec = shadow_spec(task_id, self.simulator)
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.task_spec.obs_dim,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.task_spec.act_dim,), np.float32, seed=seed)
        self._builder = ObservationBuilder(self.task_spec)
        self._seed = seed
        self._last: dict[str, np.ndarray] | None = None

    def robot_state(self) -> dict[str, np.ndarray]:
        """The state fields, from the latest dict observation (field -> flat float64 copy)."""
        if self._last is None:
            raise RuntimeError("call reset() before robot_state()")
        flat = np.asarray(self._last["observation"], dtype=np.float64)
        n = NQ_HAND
        return {"robot_qpos": flat[:n].copy(), "robot_qvel": flat[n:2 * n].copy(),
                "object_qvel": flat[2 * n:2 * n + 6].copy(),
                "object_pose": np.asarray(self._last["achieved_goal"], dtype=np.float64).copy(),
                "goal": np.asarray(self._last["desired_goal"], dtype=np.float64).copy()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None:  # make_env(seed=...) seeds the first reset only
            seed = self._seed
        self._seed = None
        super().reset(seed=seed)
        self._last, info = self.simulator.reset(seed=seed, options=options)
        self._builder.reset()
        return self._builder.build(self.robot_state()), dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(self.task_spec.act_dim)
        # their env maps [-1, 1] onto the ctrlrange as the spec's position action does (and clips)
        self._last, reward, terminated, truncated, info = self.simulator.step(np.clip(a, -1.0, 1.0))
        obs = self._builder.build(self.robot_state())
        return obs, float(reward), bool(terminated), bool(truncated), {"is_success": bool(info["is_success"])}

    def render(self) -> Any:
        return self.simulator.render() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self.simulator.close()


def robotics_available() -> bool:
    """Whether gymnasium-robotics is installed (the `robotics` extra), without importing it."""
    import importlib.util

    return importlib.util.find_spec("gymnasium_robotics") is not None
