"""The emulator's plant: one world of the task's batched MuJoCo engine, stepped one physics step at a time.

The plant is the task's engine definition (`robot_rl.sim.registry.engine_task`) as a single world
(`BatchedEngine`, `autoreset=False`), used through the engine's declared interface: `world.model`,
`world.data`, the engine's spec, its reset (`reset`: the task's own reset distribution, goals drawn,
Gymnasium's initial-state noise for the Gymnasium tasks) and `world_state` (the goals). So every task
on the engine (Reacher-v5, Swimmer-v5, ... and any added later) is a plant, with no task-specific
code here. The firmware integrates one physics step per call (its control law runs at the physics
rate, not at the task's control period), so the plant steps the world's model and data with
`mj_step` itself, exactly as the engine steps a world within a period, rather than through
`step_controls` (a whole period, plus the task's reward and observation the firmware has no use for:
three times `mj_step`'s cost per physics step, measured on Hopper, in a real-time loop).

Position servos (MuJoCo `<position>` actuators, e.g. the cube hand's): the servo's own loop is in the
plant, so a POSITION setpoint is the actuator's control as it is (no PD of the firmware's), and such a
device takes POSITION commands only. A free joint that no actuator drives (the cube) is not a motor:
its seven qpos entries (position m, quaternion w x y z, in the palm = world frame) and six qvel entries
are what an external pose sensor (motion capture, vision) reports, sampled into STATE with the joints'.
A task whose host supplies part of the state (a relative action's `joint_targets`/`last_action`, the
goal of a task with host-side goals such as the cube's) does not offer those fields.

The only emulator module that imports MuJoCo (inside `MujocoPlant.__init__`); the protocol side is
plain Python and numpy.
"""

from __future__ import annotations

import math

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.hardware import protocol as P
from robot_rl.hardware.goal_tracker import host_fields

PD_FREQUENCY_HZ = 10.0
"""Natural frequency of the emulator's position/damping loops (critically damped)."""


class MujocoPlant:
    """One engine world of `task`, stepped one physics step (`dt`) at a time.

    State fields offered: the task spec's `state_fields` (e.g. qpos, qvel, cfrc_ext, and goal fields
    such as Reacher's target_pos), plus qpos and qvel, which hold the actuated joints' positions and
    velocities (the joint map points into them).
    """

    def __init__(self, task: str, seed: int = 0, physics_dt: float | None = None) -> None:
        import mujoco

        from robot_rl.sim.engine.batched import BatchedEngine
        from robot_rl.sim.engine.task import POST_CONSTRAINT_FIELDS
        from robot_rl.sim.registry import engine_task, engine_task_names, is_engine_task, resolve

        resolve(task)  # an unknown id: the registry's error, listing the valid ones
        if not is_engine_task(task):
            raise ConfigError(f"task {task!r} has no MuJoCo engine world to emulate; the emulator runs the "
                              f"engine's tasks: {', '.join(engine_task_names())}")
        self._mujoco = mujoco
        self.engine = BatchedEngine(engine_task(task), 1, seed=seed, threads=1, autoreset=False)
        world = self.engine.worlds[0]
        self.task = task
        self.model, self.data = world.model, world.data
        self.spec = spec = self.engine.spec
        host = set(host_fields(spec))  # what the host's control loop supplies (the cube's goals ...);
        # other goals (a legged robot's velocity command) the device offers: the episode's, from its reset
        kept = [f for f in spec.state_fields if f not in host and f not in spec.goal_fields
                and not hasattr(world.data, f)]
        if kept:  # a task state the engine keeps that neither a sensor nor the host supplies
            self.engine.close()
            raise ConfigError(f"task {task!r} cannot be emulated: its observation reads {', '.join(kept)}, "
                              f"which the engine's task state keeps and a device does not measure")
        self._goals: dict[str, np.ndarray] = {}
        m = self.model
        if physics_dt is not None:
            if not 0 < physics_dt <= m.opt.timestep:
                raise ConfigError(f"physics_dt: {physics_dt} s must be in (0, {m.opt.timestep}] "
                                  f"(the model's own step)")
            m.opt.timestep = physics_dt
        self.dt = float(m.opt.timestep)
        """Physics step, seconds."""

        names = [f for f in spec.state_fields if f not in host]
        for required in ("qpos", "qvel"):
            if required not in names:
                names.append(required)
        sizes = {"qpos": m.nq, "qvel": m.nv, **dict(spec.state_fields)}
        self.fields: tuple[tuple[str, int], ...] = tuple((n, int(sizes[n])) for n in names)
        qpos_field, qvel_field = names.index("qpos"), names.index("qvel")

        joints, dofs, qadr = [], [], []
        for i in range(m.nu):
            j = int(m.actuator_trnid[i, 0])
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
            lo, hi = (float(v) for v in m.jnt_range[j]) if m.jnt_limited[j] else (-math.inf, math.inf)
            clo, chi = (float(v) for v in m.actuator_ctrlrange[i]) if m.actuator_ctrllimited[i] \
                else (-math.inf, math.inf)
            joints.append(P.JointInfo(name, qpos_field, int(m.jnt_qposadr[j]), qvel_field,
                                      int(m.jnt_dofadr[j]), (lo, hi), (clo, chi)))
            dofs.append(int(m.jnt_dofadr[j]))
            qadr.append(int(m.jnt_qposadr[j]))
        self.joints = tuple(joints)
        self._dof = np.array(dofs, dtype=np.intp)
        self._qadr = np.array(qadr, dtype=np.intp)
        self.position_low = np.array([j.position_limits[0] for j in joints])
        self.position_high = np.array([j.position_limits[1] for j in joints])
        self.command_low = np.array([j.command_limits[0] for j in joints])
        self.command_high = np.array([j.command_limits[1] for j in joints])
        gear = m.actuator_gear[:, 0].copy()
        inertia = m.dof_M0[self._dof]
        w = min(2 * math.pi * PD_FREQUENCY_HZ, 0.5 / self.dt)  # stable at the physics step
        self.kp = inertia * w * w / gear  # control units per rad (or m)
        self.kd = 2 * inertia * w / gear   # control units per rad/s
        self.servo = ((m.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE)
                      & (m.actuator_gainprm[:, 0] > 0)
                      & (m.actuator_biasprm[:, 1] == -m.actuator_gainprm[:, 0]))
        """Per joint: a position servo (MuJoCo `<position>`), whose control is its target position."""
        self.command_kinds = ((P.CommandKind.POSITION,) if self.servo.all() else
                              (P.CommandKind.TORQUE, P.CommandKind.POSITION, P.CommandKind.VELOCITY))
        """What the device takes: position servos, position only; torque motors, all three."""
        self._post_constraint = frozenset(POST_CONSTRAINT_FIELDS & set(names))
        self.reset(seed)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def reset(self, seed: int | None = None) -> None:
        """A new start from the task's reset distribution (the engine's reset of the world), seeded."""
        self.engine.reset(seed=seed)
        self._goals = {g: v for g, v in self.engine.world_state(0).items() if g in self.spec.goal_fields}

    def positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def velocities(self) -> np.ndarray:
        return self.data.qvel[self._dof].copy()

    def step(self, ctrl: np.ndarray) -> None:
        """One physics step (`dt`) with the actuators' controls `ctrl` (num_joints,), robot units."""
        self.data.ctrl[:] = ctrl
        self._mujoco.mj_step(self.model, self.data)

    def sample(self, names: list[str]) -> np.ndarray:
        """The named fields (the world's state fields and the episode's goals), flattened and
        concatenated, float32."""
        if self._post_constraint.intersection(names):
            self._mujoco.mj_rnePostConstraint(self.model, self.data)
        return np.concatenate([self._goals[n] if n in self._goals else getattr(self.data, n).ravel()
                               for n in names]).astype(np.float32)
