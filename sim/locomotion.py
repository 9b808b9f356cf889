"""Gymnasium MuJoCo v5 tasks whose observations are built through the task spec.

`LocomotionEnv` drives Gymnasium's own environment (its physics, reward, termination and reset noise
are kept, for comparable training), but the observation it returns is built by `ObservationBuilder`
from `robot_state()` (named mjData arrays), through terms that reproduce Gymnasium's `_get_obs` with
its default arguments. The conformance tests hold the two equal, step by step.

The policy acts in [-1, 1]; the spec maps that onto each actuator's `ctrlrange` (MuJoCo control
units: the joint torque or force is `gear * ctrl`), exactly as a robot maps it with `action_to_robot`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import mujoco
import numpy as np

from robot_rl.spec import ActionSpec, ObsTerm, TaskSpec, action_to_robot

from .engine.task import FIELD_SIZES, joint_actions
from .joint_naming import spec_state_joints
from .randomization import Randomizer
from .spec_env import SpecEnv

_FIELD_SIZES = FIELD_SIZES  # mjData arrays a task's observation may read, with their size per model

# Warnings after which MuJoCo has reset the state itself: the step is a physics failure.
_FAILURE_WARNINGS = np.array([int(getattr(mujoco.mjtWarning, f"mjWARN_{w}")) for w in
                              ("BADQPOS", "BADQVEL", "BADQACC", "BADCTRL")])


def _tail(m: Any, field: str, skip: int) -> tuple[int, ...]:
    """Indices of the flattened field from `skip` to the end (Gymnasium's `x[skip:]`)."""
    return tuple(range(skip, _FIELD_SIZES[field](m)))


def _pendulum(m: Any) -> list[ObsTerm]:
    return [ObsTerm("qpos", "qpos"), ObsTerm("qvel", "qvel")]


def _double_pendulum(m: Any) -> list[ObsTerm]:
    hinges = _tail(m, "qpos", 1)
    return [ObsTerm("cart_pos", "qpos", (0,)),
            ObsTerm("hinge_sin", "qpos", hinges, transform="sin"),
            ObsTerm("hinge_cos", "qpos", hinges, transform="cos"),
            ObsTerm("qvel", "qvel", clip=(-10.0, 10.0)),
            ObsTerm("cart_constraint_force", "qfrc_constraint", (0,), clip=(-10.0, 10.0))]


def _planar(clip_velocity: bool) -> Callable[[Any], list[ObsTerm]]:
    """Hopper, Walker2d (velocities clipped to ±10) and HalfCheetah: qpos without root x, qvel."""
    def terms(m: Any) -> list[ObsTerm]:
        return [ObsTerm("qpos", "qpos", _tail(m, "qpos", 1)),
                ObsTerm("qvel", "qvel", clip=(-10.0, 10.0) if clip_velocity else None)]
    return terms


def _ant(m: Any) -> list[ObsTerm]:
    return [ObsTerm("qpos", "qpos", _tail(m, "qpos", 2)),
            ObsTerm("qvel", "qvel"),
            ObsTerm("contact_forces", "cfrc_ext", _tail(m, "cfrc_ext", 6), clip=(-1.0, 1.0))]


def _humanoid(m: Any) -> list[ObsTerm]:
    return [ObsTerm("qpos", "qpos", _tail(m, "qpos", 2)),
            ObsTerm("qvel", "qvel"),
            ObsTerm("com_inertia", "cinert", _tail(m, "cinert", 10)),
            ObsTerm("com_velocity", "cvel", _tail(m, "cvel", 6)),
            ObsTerm("actuator_forces", "qfrc_actuator", _tail(m, "qfrc_actuator", 6)),
            ObsTerm("contact_forces", "cfrc_ext", _tail(m, "cfrc_ext", 6))]


def _body_xyz(m: Any, body: str, axes: int = 3) -> tuple[int, ...]:
    """Indices of a body's position (its first `axes` coordinates) in the flattened `xpos`."""
    b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, body)
    if b < 0:
        raise ValueError(f"the model has no body {body!r}")
    return tuple(range(3 * b, 3 * b + axes))


def _reacher(m: Any) -> list[ObsTerm]:
    arm = (0, 1)
    return [ObsTerm("arm_cos", "qpos", arm, transform="cos"),
            ObsTerm("arm_sin", "qpos", arm, transform="sin"),
            ObsTerm("target_qpos", "qpos", _tail(m, "qpos", 2)),
            ObsTerm("arm_qvel", "qvel", arm),
            ObsTerm("fingertip_to_target", "xpos", _body_xyz(m, "fingertip", 2), relative="position",
                    goal="target_pos")]


def _swimmer(m: Any) -> list[ObsTerm]:
    return [ObsTerm("qpos", "qpos", _tail(m, "qpos", 2)), ObsTerm("qvel", "qvel")]


def _pusher(m: Any) -> list[ObsTerm]:
    arm = tuple(range(7))
    return [ObsTerm("arm_qpos", "qpos", arm), ObsTerm("arm_qvel", "qvel", arm),
            ObsTerm("tips_arm", "xpos", _body_xyz(m, "tips_arm")),
            ObsTerm("object", "xpos", _body_xyz(m, "object")),
            ObsTerm("goal", "xpos", _body_xyz(m, "goal"))]


def _reacher_target(m: Any, d: Any) -> np.ndarray:
    """Reacher's goal: the target's x, y in the world (m), drawn by its reset and fixed for the episode."""
    return d.xpos[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "target"), :2].copy()


# Task id -> goal field -> its values read from (model, data) (the spec's goal_fields).
GOALS: dict[str, dict[str, Callable[[Any, Any], np.ndarray]]] = {
    "Reacher-v5": {"target_pos": _reacher_target},
}

# Task id -> observation terms (Gymnasium's `_get_obs` with default arguments) for its model.
OBSERVATIONS: dict[str, Callable[[Any], list[ObsTerm]]] = {
    "InvertedPendulum-v5": _pendulum,
    "InvertedDoublePendulum-v5": _double_pendulum,
    "Hopper-v5": _planar(clip_velocity=True),
    "HalfCheetah-v5": _planar(clip_velocity=False),
    "Walker2d-v5": _planar(clip_velocity=True),
    "Ant-v5": _ant,
    "Humanoid-v5": _humanoid,
    "Reacher-v5": _reacher,
    "Swimmer-v5": _swimmer,
    "Pusher-v5": _pusher,
}


def locomotion_spec(task_id: str, model: Any, frame_skip: int) -> TaskSpec:
    """The spec of a Gymnasium v5 task, read from its MuJoCo model (joint order = actuator order)."""
    names, limits, low, high = joint_actions(task_id, model)
    terms = OBSERVATIONS[task_id](model)
    goals = GOALS.get(task_id, {})
    fields = {t.source: _FIELD_SIZES[t.source](model) for t in terms}
    data = mujoco.MjData(model)
    fields.update({g: int(np.asarray(get(model, data)).size) for g, get in goals.items()})
    return TaskSpec(
        name=task_id,
        joint_names=names,
        observation=tuple(terms),
        action=ActionSpec.from_bounds("torque", low, high),
        joint_limits=limits,
        control_period=float(model.opt.timestep) * frame_skip,
        physics_dt=float(model.opt.timestep),
        state_fields=fields,
        state_joints=spec_state_joints(model, fields),
        goal_fields=tuple(goals),
    )


class LocomotionEnv(SpecEnv):
    """A Gymnasium v5 MuJoCo task seen through its spec: obs `(obs_dim,)` float64, action in [-1, 1].

    `simulator` is Gymnasium's own (unwrapped) environment. A physics failure (MuJoCo found a NaN or
    huge state and reset it) ends the episode: terminated, `info["physics_failure"] = True`, reward 0,
    non-finite observation entries zeroed. No time limit here: `make_env` adds a TimeLimit of
    `max_episode_steps` (Gymnasium's registered length).
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"]}  # noqa: RUF012

    def __init__(self, task_id: str, seed: int | None = None, render_mode: str | None = None) -> None:
        if task_id not in OBSERVATIONS:
            raise ValueError(f"{task_id!r} is not a Gymnasium locomotion task; "
                             f"known: {', '.join(OBSERVATIONS)}")
        self.simulator = gymnasium.make(task_id, render_mode=render_mode, disable_env_checker=True).unwrapped
        self.max_episode_steps: int | None = gymnasium.spec(task_id).max_episode_steps
        self.task_spec = locomotion_spec(task_id, self.simulator.model, self.simulator.frame_skip)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.simulator.metadata.get("render_fps")}
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.task_spec.obs_dim,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.task_spec.act_dim,), np.float32, seed=seed)
        self._goals = GOALS.get(task_id, {})
        self._fields = tuple(f for f in self.task_spec.state_fields if f not in self._goals)
        self.randomizer: Randomizer | None = None
        """Domain randomization (`use_randomizer`), or None: the nominal model."""
        self.randomization: dict[str, Any] = {}
        """This episode's draws (also the reset's `info["randomization"]`)."""
        self.actuation_delay_steps = 0
        """Physics steps at the start of each env step during which the previous command still acts."""
        self._held_ctrl = np.zeros(self.simulator.model.nu)
        self._simulate: Callable[[np.ndarray, int], None] | None = None  # the nominal do_simulation
        self._setup(seed)

    @property
    def model(self) -> Any:
        """This world's `mujoco.MjModel` (the one the randomizer writes)."""
        return self.simulator.model

    @property
    def data(self) -> Any:
        """This world's `mujoco.MjData`."""
        return self.simulator.data

    def use_randomizer(self, randomizer: Randomizer) -> None:
        """Randomize every later episode (sim/randomization): model terms and reset noise at each reset,
        from Gymnasium's seeded generator of this env; action and observation noise each step."""
        self.randomizer = randomizer
        if self._simulate is None:  # only a randomized env pays for the delayed stepping
            self._simulate = self.simulator.do_simulation
            self.simulator.do_simulation = self._delayed_simulation  # Gymnasium's step calls it

    def _delayed_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        simulate = self._simulate
        assert simulate is not None  # installed together with this method
        delay = min(self.actuation_delay_steps, n_frames)
        if delay:
            simulate(self._held_ctrl, delay)
        if n_frames > delay:
            simulate(ctrl, n_frames - delay)
        self._held_ctrl = np.array(ctrl, dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        if self.randomizer is None:
            return obs, info
        info["randomization"] = self.randomization
        return self._noisy(obs), info

    def _after_reset(self, first: Any) -> None:
        self._held_ctrl = np.zeros(self.simulator.model.nu)  # actuators start unpowered
        if self.randomizer is not None:  # after the task's reset state, before the first observation
            self.randomization = self.randomizer.reset_world(self.model, self.data, self.simulator.np_random)
            self.actuation_delay_steps = self.randomization["actuation_delay_steps"]
            mujoco.mj_forward(self.model, self.data)

    def _noisy(self, obs: np.ndarray) -> np.ndarray:
        assert self.randomizer is not None
        return self.randomizer.perturb_observations(obs[None], self.simulator.np_random)[0]

    def robot_state(self) -> dict[str, np.ndarray]:
        """Copies of the mjData arrays the observation reads, flattened (name -> `(size,)`)."""
        data = self.simulator.data
        state = {name: getattr(data, name).ravel().copy() for name in self._fields}
        for name, get in self._goals.items():  # the episode's target, as a robot is given it
            state[name] = get(self.simulator.model, data)
        return state

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.randomizer is not None:
            action = self.randomizer.perturb_actions(
                np.asarray(action, dtype=np.float64)[None], self.simulator.np_random)[0]
        ctrl = action_to_robot(self.task_spec, action)
        counts = self.simulator.data.warning.number  # a view of mjData's warning counters
        before = counts[_FAILURE_WARNINGS]
        _, reward, terminated, truncated, info = self.simulator.step(ctrl)
        obs = self.observe()
        failed = bool((counts[_FAILURE_WARNINGS] > before).any())
        if failed or not np.isfinite(obs).all():
            info["physics_failure"] = True
            terminated = True
            obs = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
            reward = 0.0  # computed across MuJoCo's own reset of the state: meaningless
        if self.randomizer is not None:
            obs = self._noisy(obs)
        return obs, float(reward), bool(terminated), bool(truncated), info
