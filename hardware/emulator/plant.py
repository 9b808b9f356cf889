"""The emulator's plant: the task's own MuJoCo model, stepped one physics step at a time.

The only emulator module that imports MuJoCo (inside `MujocoPlant.__init__`); the protocol side is
plain Python and numpy.
"""

from __future__ import annotations

import math

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.hardware import protocol as P

PD_FREQUENCY_HZ = 10.0
"""Natural frequency of the emulator's position/damping loops (critically damped)."""


class MujocoPlant:
    """The task's MuJoCo model (from `robot_rl.sim.make_env(task).unwrapped`) stepped one tick at a time.

    State fields offered: the task spec's `state_fields` (e.g. qpos, qvel, cfrc_ext), plus qpos and
    qvel, which hold the actuated joints' positions and velocities (the joint map points into them).
    """

    def __init__(self, task: str, seed: int = 0, physics_dt: float | None = None) -> None:
        import mujoco

        from robot_rl.sim import get_spec, make_env

        self._mujoco = mujoco
        env = make_env(task, seed=seed).unwrapped
        simulator = getattr(env, "simulator", env)
        if not hasattr(simulator, "model") or not hasattr(simulator, "data"):
            raise ConfigError(f"task {task!r} has no MuJoCo model to emulate; the emulator runs the "
                              f"Gymnasium MuJoCo tasks (InvertedPendulum-v5, Hopper-v5, ...)")
        self.task = task
        self.env, self.simulator = env, simulator
        self.model, self.data = simulator.model, simulator.data
        spec = get_spec(task)
        self.spec = spec
        m = self.model
        if physics_dt is not None:
            if not 0 < physics_dt <= m.opt.timestep:
                raise ConfigError(f"physics_dt: {physics_dt} s must be in (0, {m.opt.timestep}] "
                                  f"(the model's own step)")
            m.opt.timestep = physics_dt
        self.dt = float(m.opt.timestep)
        """Physics step, seconds."""

        names = list(spec.state_fields)
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
        self._initial = (self.data.qpos.copy(), self.data.qvel.copy())
        self._wants_contact_forces = "cfrc_ext" in names
        self.reset(seed)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def reset(self, seed: int | None = None) -> None:
        """Gymnasium's own reset (its initial-state noise), seeded."""
        self.simulator.reset(seed=seed)
        self.data.ctrl[:] = 0.0
        self._mujoco.mj_forward(self.model, self.data)

    def positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def velocities(self) -> np.ndarray:
        return self.data.qvel[self._dof].copy()

    def step(self, ctrl: np.ndarray) -> None:
        """One physics step (`dt`) with the actuators' controls `ctrl` (num_joints,)."""
        self.data.ctrl[:] = ctrl
        self._mujoco.mj_step(self.model, self.data)

    def sample(self, names: list[str]) -> np.ndarray:
        """The named fields, flattened and concatenated, float32."""
        if self._wants_contact_forces and "cfrc_ext" in names:
            self._mujoco.mj_rnePostConstraint(self.model, self.data)
        return np.concatenate([getattr(self.data, n).ravel() for n in names]).astype(np.float32)
