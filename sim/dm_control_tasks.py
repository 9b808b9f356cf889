"""dm_control suite tasks behind the Gymnasium API, their observations built through the task spec.

Each key of the task's observation dict is a state field; the observation is their flattened
concatenation in the dict's own order (what dm_control's `flatten_observation` gives). The policy acts
in [-1, 1], mapped onto `action_spec()`'s bounds by the spec (suite bounds are [-1, 1] except a few,
e.g. quadruped; bounds of 1e6 or more, as in `lqr`, count as unbounded and map one to one).

Episode ends follow dm_control's discount: a last step with discount 0 is `terminated`; one with
discount 1 (the time limit) is `truncated`, and the agent should bootstrap from it. A `PhysicsError`
ends the episode as `terminated` with `info["physics_failure"] = True` and the last good observation.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium
import mujoco
import numpy as np

from robot_rl.spec import ActionSpec, ObservationBuilder, ObsTerm, TaskSpec, action_to_robot

from .randomization import Randomizer

_UNBOUNDED = 1e6  # an action bound at least this large means "no bound"


def load_suite_env(domain: str, task: str, seed: int | None = None) -> Any:
    """`suite.load(domain, task)` seeded through `task_kwargs={"random": seed}`."""
    with warnings.catch_warnings():  # glfw complains when there is no display; rendering is not needed
        warnings.simplefilter("ignore")
        from dm_control import suite
    return suite.load(domain, task, task_kwargs={"random": seed})


def suite_tasks() -> tuple[tuple[str, str], ...]:
    """Every (domain, task) pair of the dm_control suite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from dm_control import suite
    return tuple(suite.ALL_TASKS)


def _actuator_kind(model: Any, i: int) -> str:
    """torque (no bias), position servo (bias -kp·q) or velocity servo (bias -kv·qdot)."""
    if model.actuator_biastype[i] == mujoco.mjtBias.mjBIAS_NONE:
        return "torque"
    gain, bias = model.actuator_gainprm[i, 0], model.actuator_biasprm[i, :3]
    if model.actuator_biastype[i] == mujoco.mjtBias.mjBIAS_AFFINE and bias[0] == 0:
        if bias[1] == -gain:
            return "position"
        if bias[1] == 0 and bias[2] == -gain:
            return "velocity"
    raise ValueError(f"actuator {i}: unrecognised bias, neither a motor nor a position or velocity servo")


def dm_control_spec(task_id: str, env: Any) -> TaskSpec:
    """The spec of a loaded dm_control environment; joints are the actuated joints (or tendons)."""
    model = env.physics.model
    names, limits, kinds = [], [], set()
    for i in range(model.nu):
        target = int(model.actuator_trnid[i, 0])
        if model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT:
            name = model.id2name(target, "joint")
            limited, bounds = model.jnt_limited[target], model.jnt_range[target]
        elif model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_TENDON:
            name = model.id2name(target, "tendon")
            limited, bounds = model.tendon_limited[target], model.tendon_range[target]
        else:
            raise ValueError(f"{task_id}: actuator {i} drives neither a joint nor a tendon")
        names.append(name or model.id2name(i, "actuator") or f"actuator_{i}")
        limits.append((float(bounds[0]), float(bounds[1])) if limited else (-np.inf, np.inf))
        kinds.add(_actuator_kind(model, i))
    if len(kinds) != 1:
        raise ValueError(f"{task_id}: actuators of mixed kinds {sorted(kinds)}")
    act = env.action_spec()
    low = np.broadcast_to(act.minimum, act.shape).astype(np.float64)
    high = np.broadcast_to(act.maximum, act.shape).astype(np.float64)
    bounded = (np.abs(low) < _UNBOUNDED) & (np.abs(high) < _UNBOUNDED)
    scale = np.where(bounded, (high - low) / 2, 1.0)
    offset = np.where(bounded, (high + low) / 2, 0.0)
    fields = {key: int(np.prod(spec.shape, dtype=np.int64)) for key, spec in env.observation_spec().items()}
    return TaskSpec(
        name=task_id,
        joint_names=tuple(names),
        observation=tuple(ObsTerm(key, key) for key in fields),
        action=ActionSpec(kind=kinds.pop(), low=tuple(low.tolist()), high=tuple(high.tolist()),
                          scale=tuple(scale.tolist()), offset=tuple(offset.tolist())),
        joint_limits=tuple(limits),
        control_period=float(env.control_timestep()),
        physics_dt=float(env.physics.timestep()),
        state_fields=fields,
    )


def episode_end(timestep: Any) -> tuple[bool, bool]:
    """(terminated, truncated) of a dm_env TimeStep: discount 0 terminates, any other last step truncates."""
    if not timestep.last():
        return False, False
    terminated = timestep.discount == 0
    return bool(terminated), not terminated


class DmControlEnv(gymnasium.Env):
    """A dm_control suite task as a Gymnasium env: obs `(obs_dim,)` float64, action in [-1, 1].

    `dm_env` is the dm_control environment; `timestep` its latest TimeStep. Seeded on construction
    (`task_kwargs={"random": seed}`) and again by `reset(seed=...)`.
    """

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012

    def __init__(self, domain: str, task: str, seed: int | None = None,
                 render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported by dm_control tasks; "
                             "use 'rgb_array'")
        self.dm_env = load_suite_env(domain, task, seed)
        self.task_spec = dm_control_spec(f"dmc:{domain}-{task}", self.dm_env)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.task_spec.control_period)}
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.task_spec.obs_dim,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.task_spec.act_dim,), np.float32, seed=seed)
        self._builder = ObservationBuilder(self.task_spec)
        self.timestep: Any = None
        self._obs: np.ndarray | None = None
        self.randomizer: Randomizer | None = None
        """Domain randomization (`use_randomizer`), or None: the nominal model."""
        self.randomization: dict[str, Any] = {}
        """This episode's draws (also the reset's `info["randomization"]`)."""
        self._rng = np.random.default_rng(seed)  # the randomizer's; reseeded by reset(seed=...)
        self._held_ctrl = np.zeros(self.model.nu)
        self._physics_step: Any = None  # dm_control's own physics.step, once delays are possible

    @property
    def model(self) -> Any:
        """This world's `mujoco.MjModel` (the one the randomizer writes)."""
        return self.dm_env.physics.model.ptr

    @property
    def data(self) -> Any:
        """This world's `mujoco.MjData`."""
        return self.dm_env.physics.data.ptr

    def use_randomizer(self, randomizer: Randomizer) -> None:
        """Randomize every later episode (sim/randomization): model terms and reset noise after the
        task's own reset, action and observation noise each step, the actuation delay in the physics."""
        self.randomizer = randomizer
        if self._physics_step is None:
            self._physics_step = self.dm_env.physics.step
            self.dm_env.physics.step = self._delayed_step  # dm_control's step calls it after before_step

    def _delayed_step(self, nstep: int = 1) -> None:
        """The first `actuation_delay_steps` physics steps with the previous control, then the new one."""
        data = self.data
        ctrl = data.ctrl.copy()
        delay = min(int(self.randomization.get("actuation_delay_steps", 0)), nstep)
        if delay:
            data.ctrl[:] = self._held_ctrl
            self._physics_step(delay)
            data.ctrl[:] = ctrl
        if nstep > delay:
            self._physics_step(nstep - delay)
        self._held_ctrl = ctrl

    def robot_state(self) -> dict[str, np.ndarray]:
        """The latest dm_control observation dict, each value flattened (name -> `(size,)`)."""
        if self.timestep is None:
            raise RuntimeError("call reset() before robot_state()")
        observation = self.timestep.observation
        return {k: np.asarray(v, dtype=np.float64).ravel().copy() for k, v in observation.items()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.dm_env.task.random.seed(seed)
            self._rng = np.random.default_rng(seed)
        self.timestep = self.dm_env.reset()
        info: dict[str, Any] = {}
        if self.randomizer is not None:  # after the task's reset state, then the first observation again
            self.randomization = self.randomizer.reset_world(self.model, self.data, self._rng)
            self._held_ctrl = np.zeros(self.model.nu)
            physics = self.dm_env.physics
            physics.forward()
            self.timestep = self.timestep._replace(observation=self.dm_env.task.get_observation(physics))
            info["randomization"] = self.randomization
        self._builder.reset()
        self._obs = self._builder.build(self.robot_state())
        return self._noisy(self._obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        from dm_control.rl.control import PhysicsError

        if self.timestep is None or self.timestep.last() or self._obs is None:
            raise RuntimeError("the episode has ended (or not begun): call reset() before step()")
        if self.randomizer is not None:
            action = self.randomizer.perturb_actions(np.asarray(action, dtype=np.float64)[None], self._rng)[0]
        try:
            self.timestep = self.dm_env.step(action_to_robot(self.task_spec, action))
        except PhysicsError as err:
            self.timestep = None  # the dm_control env must be reset
            return (self._noisy(self._obs), 0.0, True, False,
                    {"physics_failure": True, "physics_error": str(err)})
        self._obs = self._builder.build(self.robot_state())
        terminated, truncated = episode_end(self.timestep)
        info: dict[str, Any] = {"discount": float(self.timestep.discount)}
        return self._noisy(self._obs), float(self.timestep.reward or 0.0), terminated, truncated, info

    def _noisy(self, obs: np.ndarray) -> np.ndarray:
        """A copy of `obs`, with observation noise when randomized."""
        if self.randomizer is None:
            return obs.copy()
        return self.randomizer.perturb_observations(obs[None], self._rng)[0].copy()

    def render(self) -> Any:
        if self.render_mode != "rgb_array":
            return None
        return self.dm_env.physics.render(height=480, width=640, camera_id=0)

    def close(self) -> None:
        self.dm_env.close()
