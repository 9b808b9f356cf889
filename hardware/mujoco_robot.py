"""The MuJoCo backend: the task's own simulated model used as a robot, through the `Robot` interface.

The plant is the task the policy was trained on, with its own physics, reset and rules, so a
deployment here is the reference the other backends are measured against. Each activation starts a
new episode, reset with seed `seed + i` for the i-th activation (the convention of
`robot_rl.evaluation.evaluate`), and each `write_command` advances the physics by one control period.
`RobotState.fields` holds the spec's state fields (e.g. `qpos`, `qvel`, and goals);
`joint_positions`/`joint_velocities` are the commanded joints' coordinates; the timestamp is the
simulated time (s) and the sequence counts control steps. `last_reward` and `episode_over` report the
task's reward and its termination or time limit.

`realtime=True` lets a control loop pace the steps to the wall clock (the plant then advances one
control period per tick, as a robot would); `realtime=False` runs as fast as possible.

A task on the batched MuJoCo engine (`robot_rl.sim.registry.engine_task_names()`) is one engine world
used through the engine's declared interface: `world.model`, `world.data`, the engine's spec and its
state fields; the robot-unit command is applied as the world's control (`step_controls`), with the
engine's physics-failure rule and time limit, and no autoreset (an ended episode waits for the next
activation). dm_control tasks (off the engine) run through their env (`DmControlEnv`: its declared
`dm_env.physics`, `task_spec` and `robot_state()`) with the command mapped back to the normalised
action; any other task is refused before an env is made. The PyBullet backend keeps the engine world
and replaces its physics through the engine's `physics` hook (`_world_physics`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_rl.hardware.robot import HardwareError, Robot, RobotState
from robot_rl.spec import TaskSpec

OPTIONS = ("task", "seed", "realtime", "port")


class MujocoRobot(Robot):
    """A simulated robot: `task`'s MuJoCo model. Not thread-safe beyond the base class's lock."""

    backend = "mujoco"

    def __init__(self, task: str, seed: int = 0, realtime: bool = True) -> None:
        super().__init__()
        self.task = task
        self.seed = int(seed)
        self.realtime = bool(realtime)
        self.episodes = 0
        """Activations so far; episode i was reset with seed `seed + i`."""
        self.spec: TaskSpec | None = None
        self._env: Any = None
        self._engine: Any = None
        self._max_steps: int | None = None
        """The task's time limit in control steps (None: the task ends its own episodes)."""
        self._sequence = 0
        self._steps = 0

    # ------------------------------------------------------------------ hooks
    def _configure(self) -> None:
        from robot_rl.sim.registry import is_engine_task, resolve

        resolve(self.task)  # an unknown id: the registry's error, listing the valid ones
        if is_engine_task(self.task):
            self._attach_engine()
        else:
            self._attach_dm_control()

    def _attach_engine(self) -> None:
        """One world of the batched engine, through its declared interface (model, data, spec)."""
        from robot_rl.sim.engine.batched import BatchedEngine
        from robot_rl.sim.registry import engine_task

        engine = BatchedEngine(engine_task(self.task), 1, seed=self.seed, threads=1, autoreset=False,
                               physics=self._world_physics())
        try:
            world = engine.worlds[0]
            self._model, self._data = world.model, world.data
            self._use_spec(engine.spec)
            self._max_steps = engine.max_episode_steps
            self._engine = engine
            self._attach_world(world)
            engine.reset(seed=self.seed)  # a defined state to read before the first activation
        except BaseException:
            engine.close()
            self._engine = None
            raise

    def _world_physics(self) -> Any:
        """What steps the world's physics (None: MuJoCo's own `mj_step`; a twin simulator replaces it)."""
        return None

    def _attach_world(self, world: Any) -> None:
        """Called once the engine world exists, before its first reset."""

    def _use_spec(self, spec: TaskSpec) -> None:
        if spec.action.command_kind not in ("torque", "position", "velocity"):
            raise HardwareError(f"{self.task}: a {spec.action.kind} action is not a joint command")
        self._qadr, self._dadr = _coordinates(self._model, spec.joint_names, self.task)
        self.spec = spec
        self.joint_names = spec.joint_names
        self.command_kind = spec.action.command_kind  # a relative action's robot takes its targets
        scale, offset, low, high = spec.action.targets().arrays
        self._scale, self._offset, self._low, self._high = scale, offset, low, high

    def _attach_dm_control(self) -> None:
        """A dm_control task (off the engine): its env, through its declared physics and spec."""
        import gymnasium

        from robot_rl.sim import make_env
        from robot_rl.sim.dm_control_tasks import DmControlEnv

        env = make_env(self.task, seed=self.seed)
        try:
            inner = env.unwrapped
            if not isinstance(inner, DmControlEnv):
                raise HardwareError(f"{self.task} is not a MuJoCo task; the {self.backend} backend runs "
                                    f"the MuJoCo engine's tasks and dm_control tasks")
            physics = inner.dm_env.physics
            self._model, self._data = physics.model.ptr, physics.data.ptr
            self._use_spec(inner.task_spec)
            limited = isinstance(env, gymnasium.wrappers.TimeLimit)
            self._max_steps = env._max_episode_steps if limited else None
            self._env, self._inner = env, inner
            env.reset(seed=self.seed)  # a defined state to read before the first activation (resets again)
        except BaseException:
            env.close()
            self._env = None
            raise

    def _activate(self) -> RobotState:
        if self._engine is not None:
            self._engine.reset(seed=self.seed + self.episodes)
        else:
            self._env.reset(seed=self.seed + self.episodes)
        self.episodes += 1
        self._steps = 0
        self.last_reward = None
        self.episode_over = False
        self._sequence += 1
        return self._read_state()

    def _read_state(self) -> RobotState:
        data = self._data
        return RobotState(joint_positions=_values(data, "qpos", self._qadr),
                          joint_velocities=_values(data, "qvel", self._dadr),
                          timestamp=float(data.time), sequence=self._sequence,
                          fields=self._engine.world_state(0) if self._engine is not None
                          else self._inner.robot_state())

    def _write_command(self, command: np.ndarray) -> np.ndarray:
        if command.shape != self._low.shape:
            raise HardwareError(f"command has shape {command.shape}; {self.task} takes {self._low.shape}")
        if not np.isfinite(command).all():
            raise HardwareError(f"refused a non-finite command {command.tolist()}")
        if self.episode_over:
            raise HardwareError(f"{self.task}: the episode has ended; deactivate and activate again "
                                f"for a new one")
        sent = np.minimum(np.maximum(command, self._low), self._high)  # the actuators' own ctrlrange
        if self._engine is not None:
            _, rewards, terminated_, truncated_, _ = self._engine.step_controls(sent[None])
            reward, terminated, truncated = rewards[0], terminated_[0], truncated_[0]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                action = np.where(self._scale != 0, (sent - self._offset) / self._scale, 0.0)
            _, reward, terminated, truncated, _ = self._env.step(action)
        self._sequence += 1
        self.last_reward = float(reward)
        self.episode_over = bool(terminated or truncated)
        return sent

    def _deactivate(self) -> None:
        self._zero_controls()

    def _estop(self) -> None:
        self._zero_controls()

    def _close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._env is not None:
            self._env.close()
            self._env = None

    def clock(self) -> float:
        """Simulated time (s): the clock of this robot's timestamps."""
        return float(self._data.time) if self._plant_open else 0.0

    @property
    def _plant_open(self) -> bool:
        return self._env is not None or self._engine is not None

    # ------------------------------------------------------------------ internals
    def _zero_controls(self) -> None:
        if self._plant_open:
            self._data.ctrl[:] = 0.0


def make_robot(spec: TaskSpec, options: dict[str, Any] | None = None) -> MujocoRobot:
    """The MuJoCo robot for `spec`'s task. Options: `task` (another task's model, e.g. to test a
    mismatch), `seed` (default 0), `realtime` (default True); `port` must be None."""
    return make_simulated(MujocoRobot, spec, options)


def make_simulated(cls: type[MujocoRobot], spec: TaskSpec, options: dict[str, Any] | None) -> Any:
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise HardwareError(f"unknown {cls.backend} backend option(s) {unknown}; valid: {', '.join(OPTIONS)}")
    if options.get("port") is not None:
        raise HardwareError(f"--port applies to the serial backend, not {cls.backend}")
    realtime = options.get("realtime")
    return cls(options.get("task") or spec.name, seed=int(options.get("seed") or 0),
               realtime=True if realtime is None else bool(realtime))


def _coordinates(model: Any, names: tuple[str, ...], task: str) -> tuple[Any, Any]:
    """qpos and qvel addresses of the named joints; ("ten", ids) for tendons (dm_control)."""
    import mujoco

    joints = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in names]
    if all(j >= 0 for j in joints):
        return (np.array([model.jnt_qposadr[j] for j in joints], dtype=np.intp),
                np.array([model.jnt_dofadr[j] for j in joints], dtype=np.intp))
    tendons = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_TENDON, n) for n in names]
    if all(t >= 0 for t in tendons):
        ids = np.array(tendons, dtype=np.intp)
        return ("ten_length", ids), ("ten_velocity", ids)
    missing = [n for n, j in zip(names, joints, strict=True) if j < 0]
    raise HardwareError(f"{task}: no joint or tendon named {', '.join(missing)} in the model")


def _values(data: Any, field: str, address: Any) -> np.ndarray:
    if isinstance(address, tuple):
        field, address = address
    return np.array(getattr(data, field)[address], dtype=np.float64)
