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

from .spec_env import SpecEnv

# mjData arrays a task's observation may read, with their size per model.
_FIELD_SIZES: dict[str, Callable[[Any], int]] = {
    "qpos": lambda m: m.nq,
    "qvel": lambda m: m.nv,
    "qfrc_constraint": lambda m: m.nv,
    "qfrc_actuator": lambda m: m.nv,
    "cfrc_ext": lambda m: m.nbody * 6,
    "cinert": lambda m: m.nbody * 10,
    "cvel": lambda m: m.nbody * 6,
}

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


# Task id -> observation terms (Gymnasium's `_get_obs` with default arguments) for its model.
OBSERVATIONS: dict[str, Callable[[Any], list[ObsTerm]]] = {
    "InvertedPendulum-v5": _pendulum,
    "InvertedDoublePendulum-v5": _double_pendulum,
    "Hopper-v5": _planar(clip_velocity=True),
    "HalfCheetah-v5": _planar(clip_velocity=False),
    "Walker2d-v5": _planar(clip_velocity=True),
    "Ant-v5": _ant,
    "Humanoid-v5": _humanoid,
}


def locomotion_spec(task_id: str, model: Any, frame_skip: int) -> TaskSpec:
    """The spec of a Gymnasium v5 task, read from its MuJoCo model (joint order = actuator order)."""
    names, limits = [], []
    for i in range(model.nu):
        if model.actuator_trntype[i] != mujoco.mjtTrn.mjTRN_JOINT:
            raise ValueError(f"{task_id}: actuator {i} does not drive a joint")
        j = int(model.actuator_trnid[i, 0])
        names.append(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j))
        lo, hi = model.jnt_range[j] if model.jnt_limited[j] else (-np.inf, np.inf)
        limits.append((float(lo), float(hi)))
    terms = OBSERVATIONS[task_id](model)
    ctrl = model.actuator_ctrlrange
    return TaskSpec(
        name=task_id,
        joint_names=tuple(names),
        observation=tuple(terms),
        action=ActionSpec.from_bounds("torque", ctrl[:, 0], ctrl[:, 1]),
        joint_limits=tuple(limits),
        control_period=float(model.opt.timestep) * frame_skip,
        physics_dt=float(model.opt.timestep),
        state_fields={t.source: _FIELD_SIZES[t.source](model) for t in terms},
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
        self._fields = tuple(self.task_spec.state_fields)
        self._delay_range = (0, 0)
        self.actuation_delay_steps = 0
        """Physics steps at the start of each env step during which the previous command still acts."""
        self._held_ctrl = np.zeros(self.simulator.model.nu)
        self._simulate: Callable[[np.ndarray, int], None] | None = None  # the nominal do_simulation
        self._setup(seed)

    def set_actuation_delay_range(self, low_steps: int, high_steps: int) -> None:
        """Domain randomization (sim/randomization.py): each episode draws its actuation delay, in
        physics steps, uniformly from [low_steps, high_steps] (at most the steps of one control period)."""
        if not 0 <= low_steps <= high_steps <= self.simulator.frame_skip:
            raise ValueError(f"actuation delay of [{low_steps}, {high_steps}] physics steps: must lie in "
                             f"[0, {self.simulator.frame_skip}] (one control period) with low <= high")
        self._delay_range = (int(low_steps), int(high_steps))
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

    def _after_reset(self, first: Any) -> None:
        self._held_ctrl = np.zeros(self.simulator.model.nu)  # actuators start unpowered
        low, high = self._delay_range
        self.actuation_delay_steps = int(self.np_random.integers(low, high + 1)) if high else 0

    def robot_state(self) -> dict[str, np.ndarray]:
        """Copies of the mjData arrays the observation reads, flattened (name -> `(size,)`)."""
        data = self.simulator.data
        return {name: getattr(data, name).ravel().copy() for name in self._fields}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
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
        return obs, float(reward), bool(terminated), bool(truncated), info
