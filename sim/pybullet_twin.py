"""MJCF -> PyBullet: the same robot in a second simulator, with MuJoCo's compiled parameters carried across.

`pybullet.loadMJCF` reads the Gymnasium models' bodies, geoms and joints, but not what the physics
needs: it ignores `<actuator>`, `<default>` classes (so damping and armature become 0, and masses
come from a density of 1000 on its own geometry: the Ant weighs 182 kg instead of 0.9 kg),
`settotalmass`, a geom's offset when computing the inertia, and it misplaces a body whose slide joints
carry a `pos` (the Hopper's torso starts at twice its height). `PyBulletTwin` therefore loads a
rewritten copy of the MJCF and then sets every physical parameter from the compiled `mujoco.MjModel`:

- masses, inertias and inertial frames (body_mass, body_inertia, body_ipos, body_iquat): an explicit
  `<inertial>` per body (PyBullet takes its pose from there) and `changeDynamics` for mass and the
  principal inertia (PyBullet recomputes that from its geometry otherwise); slide joints' `pos`
  (physically meaningless) is zeroed, which removes the misplacement;
- joint coordinates: PyBullet's zero is not MuJoCo's (a joint's `ref`, the misplacement above), so
  each joint gets `pb_q = sign * mj_q + offset`, solved from the world poses of the bodies and then
  checked at random configurations (a TransferError if any body's pose differs);
- damping (dof_damping -> jointDamping), joint friction (dof_frictionloss -> a velocity motor with
  that force limit, PyBullet's idiom for dry friction), limits (jnt_range), springs (jnt_stiffness,
  qpos_spring: applied as torques each physics step), link damping set to 0 (PyBullet's default is
  0.04);
- armature (dof_armature): PyBullet has none. Each such joint gets a *rotor*: a small body on the
  parent, spinning about the joint axis, geared to the joint by a gear constraint of ratio N with
  inertia armature / N^2, so the joint feels the reflected inertia N^2 * J = armature exactly as a
  geared motor's rotor. It differs from MuJoCo's armature only by terms of order 1/N (the rotor
  also turns with its parent); N = 1000 here;
- actuators: PyBullet applies none, so `step` applies gear * (gain * ctrl + bias) as a joint torque,
  ctrl clipped to ctrlrange, forces to forcerange; the bias is MuJoCo's affine one (b0 + b1 * length +
  b2 * velocity: a position servo's -kp q - kv q'), recomputed from the state every physics step
  (motors and position/velocity servos; no activation dynamics);
- contacts: collisions filtered by MuJoCo's contype/conaffinity rule; a link's friction is chosen so
  that PyBullet's product rule gives MuJoCo's max rule against the world's geoms;
- gravity, timestep (model.opt) and the frame skip (the caller's `nstep`) are the same.

What is not (and cannot simply be) carried across is the remaining *transfer gap*: MuJoCo's RK4 or
implicit-damping Euler integrator versus PyBullet's semi-implicit Euler, MuJoCo's soft contacts and
limits (solref/solimp, margin) versus PyBullet's, torsional/rolling friction, self-collisions between
non-adjacent links (PyBullet's are off), tendons and equality constraints (refused).

Imports pybullet and mujoco on use, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import RobotRLError

ROTOR_RATIO = 1000.0
"""Gear ratio N of the rotors that carry armature: the error against MuJoCo's armature is O(1/N)."""
ROTOR_PREFIX = "__rotor_"
_MAX_JOINT_VELOCITY = 1e9  # rad/s or m/s: no cap (PyBullet's default, 100, would clamp the rotors)
_POSE_TOL = 1e-6  # m and rad: how exactly PyBullet's body poses must match MuJoCo's


class TransferError(RobotRLError):
    """The model uses something that cannot be carried to PyBullet, or the transfer did not hold."""


@dataclass(frozen=True)
class JointLink:
    """A MuJoCo joint and its PyBullet joint: `pb_q = sign * mj_q + offset` (hinge, slide)."""

    name: str
    mj_id: int
    kind: str
    """"hinge", "slide" or "free" (a floating base: `index` -1)."""
    qposadr: int
    dofadr: int
    body: int
    """PyBullet body unique id."""
    index: int
    """PyBullet joint index (= the index of the link it moves)."""
    sign: float
    offset: float


@dataclass(frozen=True)
class Rotor:
    """The armature rotor of one joint: PyBullet joint `index` of `body`, geared to `joint`."""

    joint: str
    body: int
    index: int
    ratio: float
    inertia: float
    constraint: int


class PyBulletTwin:
    """`model` (compiled from `xml_path`) loaded in its own PyBullet physics client.

    `set_state(qpos, qvel)` and `get_state()` speak MuJoCo's layout (`(nq,)`, `(nv,)`); `step(ctrl,
    nstep)` applies the actuators and advances `nstep` physics steps of `model.opt.timestep`.
    """

    def __init__(self, model: Any, xml_path: str | Path, rotor_ratio: float = ROTOR_RATIO) -> None:
        import mujoco

        with quiet_stdout():  # PyBullet prints its build time on import, and warnings on load
            import pybullet

        self.model = model
        self.rotor_ratio = float(rotor_ratio)
        self._pb = pybullet
        self._mj = mujoco
        _check_supported(model)
        self.client = pybullet.connect(pybullet.DIRECT)
        try:
            self._load(Path(xml_path))
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ state
    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Put PyBullet in MuJoCo's state (qpos `(nq,)`, qvel `(nv,)`); rotors spin with their joints."""
        pb, c = self._pb, self.client
        qpos, qvel = np.asarray(qpos, dtype=np.float64), np.asarray(qvel, dtype=np.float64)
        for j in self.joints:
            if j.kind == "free":
                pos, orn, lin, ang = self._free_to_pybullet(j, qpos, qvel)
                pb.resetBasePositionAndOrientation(j.body, pos, orn, physicsClientId=c)
                pb.resetBaseVelocity(j.body, lin, ang, physicsClientId=c)
            else:
                pb.resetJointState(j.body, j.index, j.sign * qpos[j.qposadr] + j.offset,
                                   j.sign * qvel[j.dofadr], physicsClientId=c)
        for r in self.rotors:
            j = self._by_name[r.joint]
            pb.resetJointState(r.body, r.index, 0.0, r.ratio * j.sign * qvel[j.dofadr], physicsClientId=c)

    def get_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(qpos `(nq,)`, qvel `(nv,)`) in MuJoCo's layout, read from PyBullet."""
        pb, c = self._pb, self.client
        qpos, qvel = np.zeros(self.model.nq), np.zeros(self.model.nv)
        for body, joints in self._by_body.items():
            states = pb.getJointStates(body, [j.index for j in joints], physicsClientId=c)
            for j, (q, v, _, _) in zip(joints, states, strict=True):
                qpos[j.qposadr] = (q - j.offset) / j.sign
                qvel[j.dofadr] = v / j.sign
        for j in self._free:
            self._free_from_pybullet(j, qpos, qvel)
        return qpos, qvel

    # ------------------------------------------------------------------ stepping
    def step(self, ctrl: np.ndarray, nstep: int = 1) -> None:
        """Apply the actuators' torques for `ctrl` `(nu,)` and advance `nstep` physics steps."""
        m, pb, c = self.model, self._pb, self.client
        ctrl = np.asarray(ctrl, dtype=np.float64)
        gained = np.zeros(m.nu)
        if m.nu:
            ctrl = np.where(m.actuator_ctrllimited.astype(bool),
                            np.clip(ctrl, m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1]), ctrl)
            gained = m.actuator_gainprm[:, 0] * ctrl
        tau = self._actuator_torques(gained) if m.nu else np.zeros(m.nv)
        biased = bool(m.nu) and bool(self._affine.any())
        for _ in range(int(nstep)):
            total = tau
            if biased:  # a servo's bias follows the state within the control period
                total = tau = self._actuator_torques(gained, *self.get_state())
            if self._springs:
                qpos, _ = self.get_state()
                total = tau.copy()
                for j, k, ref in self._springs:
                    total[j.dofadr] -= k * (qpos[j.qposadr] - ref)
            for body, joints in self._by_body.items():
                pb.setJointMotorControlArray(body, [j.index for j in joints], pb.TORQUE_CONTROL,
                                             forces=[j.sign * total[j.dofadr] for j in joints],
                                             physicsClientId=c)
            pb.stepSimulation(physicsClientId=c)

    def _actuator_torques(self, gained: np.ndarray, qpos: np.ndarray | None = None,
                          qvel: np.ndarray | None = None) -> np.ndarray:
        """Joint torques `(nv,)` of the actuators: gain * ctrl (given) plus the affine bias at (qpos, qvel)
        for the actuators that have one, clipped to forcerange, times the gear."""
        m = self.model
        force = gained
        if qpos is not None and qvel is not None:
            gear = m.actuator_gear[:, 0]
            length, velocity = gear * qpos[self._actuated_qpos], gear * qvel[self._actuated_dofs]
            b = m.actuator_biasprm
            force = gained + np.where(self._affine, b[:, 0] + b[:, 1] * length + b[:, 2] * velocity, 0.0)
        force = np.where(m.actuator_forcelimited.astype(bool),
                         np.clip(force, m.actuator_forcerange[:, 0], m.actuator_forcerange[:, 1]), force)
        tau = np.zeros(m.nv)
        np.add.at(tau, self._actuated_dofs, m.actuator_gear[:, 0] * force)
        return tau

    def close(self) -> None:
        """Disconnect the physics client. Idempotent."""
        if getattr(self, "client", None) is not None and self._pb.isConnected(self.client):
            self._pb.disconnect(self.client)
        self.client = None

    # ------------------------------------------------------------------ what was carried (for tests)
    def link_of(self, mj_body: int) -> tuple[int, int]:
        """(PyBullet body id, link index; -1 for a base) of a MuJoCo body."""
        return self._links[mj_body]

    def dynamics(self, mj_body: int) -> dict[str, np.ndarray | float]:
        """PyBullet's own view of a body: mass (kg), principal inertia (kg m^2), COM world position
        (m) and inertial-frame world rotation matrix `(3, 3)`, at the current state."""
        pb, c = self._pb, self.client
        body, link = self._links[mj_body]
        info = pb.getDynamicsInfo(body, link, physicsClientId=c)
        pos, orn = self._com_pose(body, link)
        return {"mass": float(info[0]), "inertia": np.array(info[2]), "com": pos,
                "frame": _matrix_xyzw(orn)}

    def joint_limits(self, name: str) -> tuple[float, float]:
        """PyBullet's (lower, upper) limit of a MuJoCo joint, in MuJoCo's coordinates."""
        j = self._by_name[name]
        info = self._pb.getJointInfo(j.body, j.index, physicsClientId=self.client)
        lo, hi = sorted(((info[8] - j.offset) / j.sign, (info[9] - j.offset) / j.sign))
        return lo, hi

    def max_pose_error(self, qpos: np.ndarray) -> float:
        """Largest difference (m, or rad) between MuJoCo's and PyBullet's body COM frames at `qpos`."""
        self.set_state(qpos, np.zeros(self.model.nv))
        return self._pose_error(np.asarray(qpos, dtype=np.float64))

    # ------------------------------------------------------------------ loading
    def _load(self, xml_path: Path) -> None:
        pb, c, m = self._pb, self.client, self.model
        self.rotors: list[Rotor] = []
        text, rotor_specs = _rewrite(m, xml_path, self.rotor_ratio)
        with tempfile.TemporaryDirectory(prefix="robot_rl_pybullet_") as tmp:
            path = Path(tmp) / xml_path.name
            path.write_text(text)
            try:
                with quiet_stdout():
                    uids = pb.loadMJCF(str(path), physicsClientId=c)
            except pb.error as err:
                raise TransferError(f"{xml_path}: PyBullet cannot load it: {err}") from None
        pb.setGravity(*m.opt.gravity.tolist(), physicsClientId=c)
        pb.setPhysicsEngineParameter(fixedTimeStep=float(m.opt.timestep), numSubSteps=0, physicsClientId=c)
        self._map(uids)
        self._set_dynamics()
        self._set_collisions()
        self._solve_offsets()
        self._set_joints()
        self._add_rotors(rotor_specs)
        self._actuated_dofs = np.array([m.jnt_dofadr[m.actuator_trnid[i, 0]] for i in range(m.nu)],
                                       dtype=np.intp)
        self._actuated_qpos = np.array([m.jnt_qposadr[m.actuator_trnid[i, 0]] for i in range(m.nu)],
                                       dtype=np.intp)
        self._affine = m.actuator_biastype == 1  # mujoco.mjtBias.mjBIAS_AFFINE
        self._springs = [(self._by_name[j.name], float(m.jnt_stiffness[j.mj_id]),
                          float(m.qpos_spring[j.qposadr])) for j in self.joints
                         if j.kind != "free" and m.jnt_stiffness[j.mj_id] != 0]
        # verify the kinematics at random configurations (within limits where there are limits)
        rng = np.random.default_rng(0)
        for trial in range(4):
            qpos = m.qpos0.copy() if trial == 0 else _random_qpos(m, rng)
            error = self.max_pose_error(qpos)
            if error > _POSE_TOL:
                raise TransferError(f"PyBullet's kinematics differ from MuJoCo's by {error:.2e} at qpos "
                                    f"{np.round(qpos, 3).tolist()}; the model cannot be transferred")
        self.set_state(m.qpos0, np.zeros(m.nv))

    def _map(self, uids: tuple[int, ...]) -> None:
        """Match PyBullet's bodies, links and joints to MuJoCo's by name."""
        pb, c, m = self._pb, self.client, self.model
        links: dict[str, tuple[int, int]] = {}
        joints: dict[str, tuple[int, int]] = {}
        self._uids = list(uids)
        for uid in uids:
            links.setdefault(pb.getBodyInfo(uid, physicsClientId=c)[0].decode(), (uid, -1))
            for i in range(pb.getNumJoints(uid, physicsClientId=c)):
                info = pb.getJointInfo(uid, i, physicsClientId=c)
                links[info[12].decode()] = (uid, i)
                if info[2] != pb.JOINT_FIXED:
                    joints[info[1].decode()] = (uid, i)
        self._pb_joints, self._pb_links = joints, links
        self._links: dict[int, tuple[int, int]] = {}
        for b in range(1, m.nbody):
            name = body_name(m, b)
            if name not in links:
                raise TransferError(f"PyBullet has no link for MuJoCo body {name!r}")
            self._links[b] = links[name]
        self.joints: list[JointLink] = []
        for j in range(m.njnt):
            name = joint_name(m, j)
            kind = _JOINT_KINDS[int(m.jnt_type[j])]
            if kind == "free":
                uid, link = self._links[int(m.jnt_bodyid[j])]
                if link != -1:
                    raise TransferError(f"free joint {name!r}: PyBullet did not make its body a "
                                        f"floating base")
            else:
                if name not in joints:
                    raise TransferError(f"PyBullet has no joint named {name!r}")
                uid, link = joints[name]
            self.joints.append(JointLink(name, j, kind, int(m.jnt_qposadr[j]), int(m.jnt_dofadr[j]),
                                         uid, link, 1.0, 0.0))
        # PyBullet bases of bodies without joints on the world (MuJoCo welds them there)
        self._welded = {b for b, (_, link) in self._links.items()
                        if link == -1 and m.body_jntnum[b] == 0 and m.body_parentid[b] == 0}
        self._index()

    def _index(self) -> None:
        self._by_name = {j.name: j for j in self.joints}
        self._by_body: dict[int, list[JointLink]] = {}
        for j in self.joints:
            if j.kind != "free":
                self._by_body.setdefault(j.body, []).append(j)
        self._free = [j for j in self.joints if j.kind == "free"]

    def _set_dynamics(self) -> None:
        """Masses, inertias, friction; no link damping; no joint-velocity cap."""
        pb, c, m = self._pb, self.client, self.model
        for uid in self._uids:
            for link in range(-1, pb.getNumJoints(uid, physicsClientId=c)):
                pb.changeDynamics(uid, link, linearDamping=0.0, angularDamping=0.0,
                                  maxJointVelocity=_MAX_JOINT_VELOCITY, physicsClientId=c)
        world = [g for g in range(m.ngeom) if m.geom_bodyid[g] == 0]
        world_friction = max((float(m.geom_friction[g, 0]) for g in world), default=1.0)
        robot_links = set(self._links.values())
        for uid in self._uids:  # the world's geoms: friction 1, so a product rule gives the link's own
            if (uid, -1) not in robot_links:
                pb.changeDynamics(uid, -1, lateralFriction=1.0, physicsClientId=c)
        for b, (uid, link) in self._links.items():
            geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] == b]
            friction = max([float(m.geom_friction[g, 0]) for g in geoms] + [world_friction])
            if b in self._welded:  # welded to the world in MuJoCo: static (mass 0) in PyBullet
                pb.changeDynamics(uid, link, mass=0.0, lateralFriction=friction, physicsClientId=c)
                continue
            pb.changeDynamics(uid, link, mass=float(m.body_mass[b]),
                              localInertiaDiagonal=m.body_inertia[b].tolist(),
                              lateralFriction=friction, physicsClientId=c)

    def _set_collisions(self) -> None:
        """Disable the link pairs MuJoCo would not collide (contype/conaffinity; world geoms by name)."""
        pb, c, m, mj = self._pb, self.client, self.model, self._mj
        owners: dict[tuple[int, int], list[int]] = {}
        for g in range(m.ngeom):
            body = int(m.geom_bodyid[g])
            if body:
                owners.setdefault(self._links[body], []).append(g)
            else:
                name = mj.mj_id2name(m, mj.mjtObj.mjOBJ_GEOM, g)
                if name in self._pb_links:
                    owners.setdefault(self._pb_links[name], []).append(g)
        items = list(owners.items())
        for i, (a, ga) in enumerate(items):
            for b, gb in items[i + 1:]:
                if a[0] == b[0]:
                    continue  # within one multibody: PyBullet's self-collision is off anyway
                if not any(_collides(m, x, y) for x in ga for y in gb):
                    pb.setCollisionFilterPair(a[0], b[0], a[1], b[1], 0, physicsClientId=c)

    def _solve_offsets(self) -> None:
        """Each joint's sign and offset, body by body from the root, from the bodies' world poses."""
        m, mj = self.model, self._mj
        data = mj.MjData(m)
        data.qpos[:] = m.qpos0
        mj.mj_kinematics(m, data)
        for b in self._welded:  # PyBullet places a base by its inertial offset: put it where MuJoCo has it
            uid, _ = self._links[b]
            self._pb.resetBasePositionAndOrientation(uid, data.xipos[b].tolist(),
                                                     _quat_xyzw(data.ximat[b].reshape(3, 3)),
                                                     physicsClientId=self.client)
        self.set_state(m.qpos0, np.zeros(m.nv))
        joints = list(self.joints)
        for b in range(1, m.nbody):
            ids = [j for j in range(m.njnt)
                   if m.jnt_bodyid[j] == b and _JOINT_KINDS[int(m.jnt_type[j])] != "free"]
            if not ids:
                continue
            for j in ids:  # signs: PyBullet's axis against MuJoCo's, in the world frame
                link = joints[j]
                dot = float(self._axis_world(link) @ data.xaxis[j])
                if abs(abs(dot) - 1) > 1e-6:
                    raise TransferError(f"joint {link.name!r}: PyBullet's axis is not MuJoCo's "
                                        f"(cos {dot:.4f})")
                joints[j] = JointLink(**{**link.__dict__, "sign": math.copysign(1.0, dot)})
            self.joints = joints
            self._index()
            for _ in range(3):  # hinges fix the orientation, then slides the position
                self.set_state(m.qpos0, np.zeros(m.nv))
                pos, frame = self._com_pose(*self._links[b])
                rot = _rotvec(data.ximat[b].reshape(3, 3) @ _matrix_xyzw(frame).T)
                for j in ids:
                    if joints[j].kind == "hinge":
                        angle = float(rot @ data.xaxis[j])
                        joints[j] = _shift(joints[j], joints[j].sign * angle)
                self.joints = joints
                self._index()
                self.set_state(m.qpos0, np.zeros(m.nv))
                pos, frame = self._com_pose(*self._links[b])
                slides = [j for j in ids if joints[j].kind == "slide"]
                if slides:
                    axes = np.stack([data.xaxis[j] for j in slides], axis=1)
                    step = np.linalg.lstsq(axes, data.xipos[b] - pos, rcond=None)[0]
                    for j, d in zip(slides, step, strict=True):
                        joints[j] = _shift(joints[j], joints[j].sign * float(d))
                self.joints = joints
                self._index()

    def _set_joints(self) -> None:
        """Damping, dry friction and limits of every hinge and slide, in PyBullet's coordinates."""
        pb, c, m = self._pb, self.client, self.model
        for j in self.joints:
            if j.kind == "free":
                continue
            pb.changeDynamics(j.body, j.index, jointDamping=float(m.dof_damping[j.dofadr]), physicsClientId=c)
            pb.setJointMotorControl2(j.body, j.index, pb.VELOCITY_CONTROL, targetVelocity=0.0,
                                     force=float(m.dof_frictionloss[j.dofadr]), physicsClientId=c)
            if m.jnt_limited[j.mj_id]:
                lo, hi = sorted(j.sign * m.jnt_range[j.mj_id] + j.offset)
            else:
                lo, hi = 1.0, -1.0  # lower > upper: no limit
            pb.changeDynamics(j.body, j.index, jointLowerLimit=float(lo), jointUpperLimit=float(hi),
                              physicsClientId=c)

    def _add_rotors(self, specs: list[tuple[str, float]]) -> None:
        pb, c = self._pb, self.client
        for joint, inertia in specs:
            j = self._by_name[joint]
            body, index = self._pb_joints[ROTOR_PREFIX + joint]
            pb.changeDynamics(body, index, mass=inertia, localInertiaDiagonal=[inertia] * 3,
                              jointDamping=0.0, physicsClientId=c)
            pb.setJointMotorControl2(body, index, pb.VELOCITY_CONTROL, force=0.0, physicsClientId=c)
            # the gear row is  v_rotor + ratio * v_joint = 0 : ratio -N makes the rotor turn N times faster
            cid = pb.createConstraint(body, index, j.body, j.index, pb.JOINT_GEAR, [0, 0, 1], [0, 0, 0],
                                      [0, 0, 0], physicsClientId=c)
            pb.changeConstraint(cid, gearRatio=-self.rotor_ratio, maxForce=1e12, erp=0.0, physicsClientId=c)
            self.rotors.append(Rotor(joint, body, index, self.rotor_ratio, inertia, cid))

    # ------------------------------------------------------------------ geometry helpers
    def _com_pose(self, body: int, link: int) -> tuple[np.ndarray, tuple[float, ...]]:
        pb, c = self._pb, self.client
        if link == -1:
            pos, orn = pb.getBasePositionAndOrientation(body, physicsClientId=c)
        else:
            pos, orn = pb.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=c)[:2]
        return np.array(pos), tuple(orn)

    def _axis_world(self, j: JointLink) -> np.ndarray:
        pb, c = self._pb, self.client
        axis = np.array(pb.getJointInfo(j.body, j.index, physicsClientId=c)[13])
        frame = pb.getLinkState(j.body, j.index, computeForwardKinematics=True, physicsClientId=c)[5]
        return _matrix_xyzw(frame) @ (axis / np.linalg.norm(axis))

    def _pose_error(self, qpos: np.ndarray) -> float:
        m, mj = self.model, self._mj
        data = mj.MjData(m)
        data.qpos[:] = qpos
        mj.mj_kinematics(m, data)
        worst = 0.0
        for b, (body, link) in self._links.items():
            pos, frame = self._com_pose(body, link)
            worst = max(worst, float(np.abs(pos - data.xipos[b]).max()),
                        float(np.linalg.norm(_rotvec(data.ximat[b].reshape(3, 3) @ _matrix_xyzw(frame).T))))
        return worst

    def _free_to_pybullet(self, j: JointLink, qpos: np.ndarray, qvel: np.ndarray) -> tuple[Any, ...]:
        """A free joint's (position, quat wxyz) and (linear world, angular local) velocity -> the base's
        COM pose (PyBullet's quat xyzw) and COM velocity, angular in world."""
        m = self.model
        b = int(m.jnt_bodyid[j.mj_id])
        p, q = qpos[j.qposadr:j.qposadr + 3], qpos[j.qposadr + 3:j.qposadr + 7]
        rot = _matrix_wxyz(q / np.linalg.norm(q))
        com = p + rot @ m.body_ipos[b]
        frame = rot @ _matrix_wxyz(m.body_iquat[b])
        w_world = rot @ qvel[j.dofadr + 3:j.dofadr + 6]
        v_com = qvel[j.dofadr:j.dofadr + 3] + np.cross(w_world, rot @ m.body_ipos[b])
        return com.tolist(), _quat_xyzw(frame), v_com.tolist(), w_world.tolist()

    def _free_from_pybullet(self, j: JointLink, qpos: np.ndarray, qvel: np.ndarray) -> None:
        pb, c, m = self._pb, self.client, self.model
        b = int(m.jnt_bodyid[j.mj_id])
        com, orn = pb.getBasePositionAndOrientation(j.body, physicsClientId=c)
        v_com, w_world = pb.getBaseVelocity(j.body, physicsClientId=c)
        rot = _matrix_xyzw(orn) @ _matrix_wxyz(m.body_iquat[b]).T
        offset = rot @ m.body_ipos[b]
        qpos[j.qposadr:j.qposadr + 3] = np.array(com) - offset
        qpos[j.qposadr + 3:j.qposadr + 7] = _quat_wxyz(rot)
        qvel[j.dofadr:j.dofadr + 3] = np.array(v_com) - np.cross(w_world, offset)
        qvel[j.dofadr + 3:j.dofadr + 6] = rot.T @ np.array(w_world)


# --------------------------------------------------------------------------------------------------
# The rewritten MJCF

_JOINT_KINDS = {0: "free", 1: "ball", 2: "slide", 3: "hinge"}


def _check_supported(m: Any) -> None:
    import mujoco

    bad = []
    for j in range(m.njnt):
        kind = _JOINT_KINDS[int(m.jnt_type[j])]
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint {j}"
        if kind == "ball":
            bad.append(f"ball joint {name!r}")
        elif kind == "free" and m.body_parentid[m.jnt_bodyid[j]] != 0:
            bad.append(f"free joint {name!r} below another body")
        elif kind != "free" and m.dof_armature[m.jnt_dofadr[j]] > 0 and m.body_parentid[m.jnt_bodyid[j]] == 0:
            bad.append(f"armature of {name!r} (a joint on the world: no body to carry its rotor)")
    for i in range(m.nu):
        if m.actuator_trntype[i] != mujoco.mjtTrn.mjTRN_JOINT:
            bad.append(f"actuator {i} (not on a joint)")
        elif (m.actuator_gaintype[i] != mujoco.mjtGain.mjGAIN_FIXED
              or int(m.actuator_biastype[i]) not in (int(mujoco.mjtBias.mjBIAS_NONE),
                                                     int(mujoco.mjtBias.mjBIAS_AFFINE))
              or m.actuator_dyntype[i] != mujoco.mjtDyn.mjDYN_NONE):
            bad.append(f"actuator {i} (not a motor or an affine servo)")
        elif _JOINT_KINDS[int(m.jnt_type[m.actuator_trnid[i, 0]])] == "free":
            bad.append(f"actuator {i} (on a free joint)")
    if m.ntendon:
        bad.append(f"{m.ntendon} tendon(s)")
    if m.neq:
        bad.append(f"{m.neq} equality constraint(s)")
    if m.nmesh or m.nhfield:
        bad.append("mesh or height-field geometry")
    if bad:
        raise TransferError(f"cannot carry to PyBullet: {'; '.join(bad)}")


def _rewrite(m: Any, xml_path: Path, ratio: float) -> tuple[str, list[tuple[str, float]]]:
    """The MJCF text PyBullet loads, and the rotors `(joint name, rotor inertia)` it holds."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as err:
        raise TransferError(f"{xml_path}: cannot read the MJCF: {err}") from None
    if root.find(".//include") is not None:
        raise TransferError(f"{xml_path}: <include> is not supported; give the model as one file")
    for element in list(root.iter()):  # visual-only elements PyBullet warns about
        for visual in [c for c in element if c.tag in ("light", "camera")]:
            element.remove(visual)
    world = root.find("worldbody")
    compiler = root.find("compiler")
    degrees = compiler is None or compiler.get("angle", "degree") == "degree"
    elements = list(world.iter("body")) if world is not None else []
    if len(elements) != m.nbody - 1:
        raise TransferError(f"{xml_path}: {len(elements)} <body> elements, but the compiled model has "
                            f"{m.nbody - 1} bodies")
    for b, el in enumerate(elements, start=1):
        name = body_name(m, b)
        if el.get("name", name) != name:
            raise TransferError(f"{xml_path}: body {b} is {el.get('name')!r} in the file but {name!r} in "
                                f"the compiled model; PyBullet's links are matched by name")
        el.set("name", name)  # unnamed bodies get their id as a name
        for old in el.findall("inertial"):
            el.remove(old)
        el.insert(0, ET.Element("inertial", pos=_fmt(m.body_ipos[b]), quat=_fmt(m.body_iquat[b]),
                                mass=repr(float(m.body_mass[b])), diaginertia=_fmt(m.body_inertia[b])))
        joint_elements = [e for e in el if e.tag in ("joint", "freejoint")]
        ids = range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b])
        for j, e in zip(ids, joint_elements, strict=False):
            jname = joint_name(m, j)
            if e.get("name", jname) != jname:
                raise TransferError(f"{xml_path}: joint {j} is {e.get('name')!r} in the file but {jname!r} "
                                    f"in the compiled model")
            e.set("name", jname)
            _inline_joint(m, j, e, degrees)
            if _JOINT_KINDS[int(m.jnt_type[j])] == "slide":
                e.set("pos", "0 0 0")  # a slide's anchor is physically meaningless; PyBullet misplaces it
        geoms = range(m.body_geomadr[b], m.body_geomadr[b] + m.body_geomnum[b])
        for g, e in zip(geoms, [e for e in el if e.tag == "geom"], strict=False):
            _inline_geom(m, g, e)
    rotors = []
    for j in range(m.njnt):
        kind = _JOINT_KINDS[int(m.jnt_type[j])]
        armature = float(m.dof_armature[m.jnt_dofadr[j]])
        if kind == "free" or armature <= 0:
            continue
        child = int(m.jnt_bodyid[j])
        parent = int(m.body_parentid[child])
        rot = _matrix_wxyz(m.body_quat[child])
        anchor = m.body_pos[child] + rot @ m.jnt_pos[j]
        axis = rot @ m.jnt_axis[j]
        name = joint_name(m, j)
        inertia = armature / ratio**2
        rotor = ET.SubElement(elements[parent - 1], "body", name=ROTOR_PREFIX + name, pos=_fmt(anchor))
        ET.SubElement(rotor, "joint", name=ROTOR_PREFIX + name, type=kind, axis=_fmt(axis), pos="0 0 0",
                      limited="false", damping="0", armature="0")
        ET.SubElement(rotor, "inertial", pos="0 0 0", mass=repr(inertia), diaginertia=_fmt([inertia] * 3))
        rotors.append((name, inertia))
    return ET.tostring(root, encoding="unicode"), rotors


# PyBullet's MJCF reader knows no `<default>` classes: what a joint or geom takes from one is written
# on the element itself, from the compiled model (MuJoCo geom type ids -> MJCF names).
_GEOM_TYPES = {0: "plane", 2: "sphere", 3: "capsule", 4: "ellipsoid", 5: "cylinder", 6: "box"}


def _inline_joint(m: Any, j: int, e: ET.Element, degrees: bool) -> None:
    """Type, axis and range of joint j on its element where a default class gave them."""
    kind = _JOINT_KINDS[int(m.jnt_type[j])]
    e.attrib.pop("class", None)
    if e.tag != "joint":
        return
    e.set("type", e.get("type", kind))
    if kind in ("hinge", "slide"):
        if "axis" not in e.attrib:
            e.set("axis", _fmt(m.jnt_axis[j]))
        if "range" not in e.attrib and m.jnt_limited[j]:
            lo, hi = m.jnt_range[j]
            scale = 180.0 / math.pi if degrees and kind == "hinge" else 1.0
            e.set("range", _fmt([lo * scale, hi * scale]))
            e.set("limited", "true")


def _inline_geom(m: Any, g: int, e: ET.Element) -> None:
    """Type and size of geom g on its element where a default class gave them (no fromto there)."""
    if "class" not in e.attrib:
        return
    e.attrib.pop("class")
    kind = _GEOM_TYPES.get(int(m.geom_type[g]))
    if kind is not None and "type" not in e.attrib:
        e.set("type", kind)
    if "size" not in e.attrib and "fromto" not in e.attrib:
        e.set("size", _fmt(m.geom_size[g]))


# --------------------------------------------------------------------------------------------------
# Small geometry


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence what C code writes to file descriptors 1 and 2 (PyBullet's banner and load warnings),
    so `--json` output stays JSON and a terminal stays readable. Errors still arrive as exceptions."""
    fds = []
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
            fds.append(stream.fileno())
        except (AttributeError, OSError, ValueError):  # not a real file (captured): leave it
            pass
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
        yield
    finally:
        _flush_c_stdio()  # C's buffered output must reach /dev/null before the fds are restored
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def body_name(m: Any, b: int) -> str:
    """A MuJoCo body's name, or `__body_<id>` for an unnamed one (so PyBullet's link can be found)."""
    import mujoco

    return mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or f"__body_{b}"


def joint_name(m: Any, j: int) -> str:
    """A MuJoCo joint's name, or `__joint_<id>` for an unnamed one."""
    import mujoco

    return mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) or f"__joint_{j}"


def _fmt(values: Any) -> str:
    return " ".join(repr(float(v)) for v in values)


def _shift(j: JointLink, delta: float) -> JointLink:
    return JointLink(**{**j.__dict__, "offset": j.offset + delta})


def _collides(m: Any, g1: int, g2: int) -> bool:
    """MuJoCo's contype/conaffinity rule."""
    return bool((m.geom_contype[g1] & m.geom_conaffinity[g2])
                or (m.geom_contype[g2] & m.geom_conaffinity[g1]))


def _random_qpos(m: Any, rng: np.random.Generator) -> np.ndarray:
    qpos = m.qpos0.copy()
    for j in range(m.njnt):
        a = m.jnt_qposadr[j]
        kind = _JOINT_KINDS[int(m.jnt_type[j])]
        if kind == "free":
            qpos[a:a + 3] += rng.uniform(-0.5, 0.5, 3)
            q = rng.normal(size=4)
            qpos[a + 3:a + 7] = q / np.linalg.norm(q)
        elif m.jnt_limited[j]:
            qpos[a] = rng.uniform(*m.jnt_range[j])
        else:
            qpos[a] += rng.uniform(-1.0, 1.0)
    return qpos


def _matrix_wxyz(q: Any) -> np.ndarray:
    w, x, y, z = (float(v) for v in q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _matrix_xyzw(q: Any) -> np.ndarray:
    x, y, z, w = q
    return _matrix_wxyz((w, x, y, z))


def _quat_wxyz(r: np.ndarray) -> np.ndarray:
    """The unit quaternion (w, x, y, z) of a rotation matrix."""
    import mujoco

    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(r, dtype=np.float64).reshape(9))
    return q


def _quat_xyzw(r: np.ndarray) -> list[float]:
    w, x, y, z = _quat_wxyz(r)
    return [x, y, z, w]


def _rotvec(r: np.ndarray) -> np.ndarray:
    """Axis * angle (rad) of a rotation matrix."""
    w, x, y, z = _quat_wxyz(r)
    s = math.sqrt(x * x + y * y + z * z)
    if s < 1e-12:
        return np.zeros(3)
    return np.array([x, y, z]) / s * 2 * math.atan2(s, w)
