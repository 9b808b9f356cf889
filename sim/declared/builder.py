"""A declared task (sim.declared.config) -> an `EngineTask` on the batched engine.

The model is loaded through `mujoco.MjSpec` (MJCF or URDF), given a free joint on its root body when
the task asks for a floating base, and given one actuator per policy joint as `control` says (the
model's own actuators are replaced, so the launch file is the one place the actuation is stated). The
result is written as MJCF into a cache folder named by its content, which the engine then loads.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import mujoco
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.spec import ActionSpec, ObsTerm

from ..engine.task import EngineTask, StepBatch
from . import terms
from .config import BASE_TERMS, DeclaredTask, Term
from .state import COMMAND_FIELD, DeclaredState, Plan

_PERIOD_RTOL = 1e-9


def _load_spec(task: DeclaredTask) -> mujoco.MjSpec:
    if not os.path.isfile(task.model):
        raise ConfigError(f"task.model: file {task.model!r} does not exist")
    try:
        mujoco.MjSpec.from_file(task.model).compile()  # a compile fuses static bodies in its spec
        spec = mujoco.MjSpec.from_file(task.model)
    except ValueError as err:  # MuJoCo's compiler message (a missing mesh file, a bad element ...)
        raise ConfigError(f"task.model: {task.model!r} does not compile: {err}") from None
    return spec


def _per_joint(value: float | Mapping[str, float] | None, joint: str, key: str,
               joints: Sequence[str]) -> float | None:
    if value is None or not isinstance(value, Mapping):
        return value
    unknown = [j for j in value if j not in joints]
    if unknown:
        raise ConfigError(f"task.control.{key}: joint {unknown[0]!r} is not a policy joint; "
                          f"valid: {', '.join(joints)}")
    if joint not in value:
        raise ConfigError(f"task.control.{key}: no value for joint {joint!r}; give every joint of "
                          f"{', '.join(joints)}")
    return value[joint]


def _policy_joints(task: DeclaredTask, spec: mujoco.MjSpec) -> tuple[str, ...]:
    kinds = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
    movable = [j.name for j in spec.joints if j.type in kinds]
    if task.joints is None:
        if not movable:
            raise ConfigError(f"task.model: {task.model!r} has no hinge or slide joint to control")
        return tuple(movable)
    for j in task.joints:
        if j not in movable:
            raise ConfigError(f"task.joints: the model has no hinge or slide joint {j!r}; "
                              f"valid: {', '.join(movable)}")
    return task.joints


def _actuate(task: DeclaredTask, spec: mujoco.MjSpec, joints: tuple[str, ...]) -> None:
    for act in list(spec.actuators):
        spec.delete(act)
    c = task.control
    by_name = {j.name: j for j in spec.joints}
    for name in joints:
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        kd = _per_joint(c.kd, name, "kd", joints) or 0.0
        limit = _per_joint(c.torque_limit, name, "torque_limit", joints)
        if c.kind == "position":
            kp = _per_joint(c.kp, name, "kp", joints)
            act.set_to_position(kp=float(kp or 0.0), kv=float(kd))
            joint = by_name[name]
            limited = joint.limited == mujoco.mjtLimited.mjLIMITED_TRUE or (
                joint.limited == mujoco.mjtLimited.mjLIMITED_AUTO and joint.range[0] < joint.range[1])
            lo, hi = joint.range if limited else (-math.pi, math.pi)
            span = _per_joint(c.action_scale, name, "action_scale", joints)
            if span is not None:  # default ± span, inside the joint's range
                if span <= 0:
                    raise ConfigError(f"task.control.action_scale: must be positive, got {span} for {name!r}")
                home = task.default_pose.get(name, 0.0)
                lo, hi = max(lo, home - span), min(hi, home + span)
            act.ctrlrange = [lo, hi]
        else:
            act.set_to_motor()
            act.ctrlrange = [-float(limit), float(limit)]  # type: ignore[arg-type]  # config requires it
            if kd:
                by_name[name].damping = float(kd)
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        if limit is not None:
            act.forcerange = [-float(limit), float(limit)]
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE


def compile_model(task: DeclaredTask) -> tuple[str, mujoco.MjModel, tuple[str, ...]]:
    """(path of the generated MJCF, its compiled model, the policy joints), every name checked."""
    spec = _load_spec(task)
    joints = _policy_joints(task, spec)
    for j in task.default_pose:
        if j not in joints:
            raise ConfigError(f"task.default_pose: {j!r} is not a policy joint; valid: {', '.join(joints)}")
    if task.floating_base and not any(j.type == mujoco.mjtJoint.mjJNT_FREE for j in spec.joints):
        root = spec.worldbody.first_body()
        if root is None:
            raise ConfigError(f"task.floating_base: {task.model!r} has no body to float")
        root.add_freejoint()
        spec.compiler.fusestatic = False  # URDF's default fuses the jointless root link into the world
    _actuate(task, spec, joints)
    spec.meshdir = os.path.join(os.path.dirname(task.model), spec.meshdir or "")
    try:
        model = spec.compile()
        xml = spec.to_xml()
    except ValueError as err:
        raise ConfigError(f"task.control: the actuated model does not compile: {err}") from None
    # a cache, not a temporary file: kept under the user's cache folder (a launcher's TMPDIR stays clean)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(cache, "robot_rl", "declared")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha256(xml.encode()).hexdigest()[:16] + ".xml")
    # Always written (a file found under the name is not trusted); atomic, so a concurrent builder of the
    # same task never reads half a file.
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(xml)
    os.replace(tmp, path)
    return path, model, joints


def layout_of(task: DeclaredTask, model: mujoco.MjModel, joints: Sequence[str]) -> terms.Layout:
    """Where the policy joints and the floating base live in this model's qpos / qvel."""
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in joints]
    free = [i for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_FREE]
    limited = np.array([bool(model.jnt_limited[i]) for i in ids])
    ranges = np.array([model.jnt_range[i] for i in ids])
    return terms.Layout(qpos_index=np.array([model.jnt_qposadr[i] for i in ids], dtype=np.intp),
                        dof_index=np.array([model.jnt_dofadr[i] for i in ids], dtype=np.intp),
                        default_pose=np.array([task.default_pose.get(j, 0.0) for j in joints]),
                        base_qpos=int(model.jnt_qposadr[free[0]]) if free else None,
                        base_dof=int(model.jnt_dofadr[free[0]]) if free else None,
                        lower=np.where(limited, ranges[:, 0], -np.inf),
                        upper=np.where(limited, ranges[:, 1], np.inf))


def _obs_term(term: Term, layout: terms.Layout, model: mujoco.MjModel) -> ObsTerm:
    """The spec term of an observation term: what a robot's builder reads from its measured state."""
    if term.name == "joint_pos":
        return ObsTerm("joint_pos", "qpos", indices=tuple(int(i) for i in layout.qpos_index),
                       offset=tuple(float(v) for v in layout.default_pose))
    if term.name == "joint_vel":
        return ObsTerm("joint_vel", "qvel", indices=tuple(int(i) for i in layout.dof_index))
    if term.name == "last_action":
        return ObsTerm("last_action", "ctrl", indices=tuple(range(model.nu)))
    if term.name == "command":
        return ObsTerm("command", COMMAND_FIELD)
    if term.name == "body_pos":
        body = _body(model, term.options["body"], "observations.body_pos.body")
        return ObsTerm("body_pos", "xpos", indices=(3 * body, 3 * body + 1, 3 * body + 2))
    assert layout.base_qpos is not None and layout.base_dof is not None  # build_task checks
    quat = tuple(range(layout.base_qpos + 3, layout.base_qpos + 7))
    if term.name == "projected_gravity":
        return ObsTerm("projected_gravity", "qpos", indices=quat, transform="gravity")
    if term.name == "base_lin_vel":
        return ObsTerm("base_lin_vel", "qvel", indices=tuple(range(layout.base_dof, layout.base_dof + 3)),
                       frame="qpos", frame_indices=quat)
    assert term.name == "base_ang_vel"
    return ObsTerm("base_ang_vel", "qvel", indices=tuple(range(layout.base_dof + 3, layout.base_dof + 6)))


def _body(model: mujoco.MjModel, name: str, key: str) -> int:
    body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    if body < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(1, model.nbody)]
        raise ConfigError(f"task.{key}: the model has no body {name!r}; valid: {', '.join(names)}")
    return body


def _resolved(t: Term, group: str, model: mujoco.MjModel, layout: terms.Layout) -> dict[str, Any]:
    """A term's options with body names replaced by body ids (the floating base's body by default)."""
    opts = dict(t.options)
    if "body" in opts:
        if opts["body"] is None:  # base_contact's default: the body the free joint moves
            assert layout.base_dof is not None  # BASE terms on a fixed base are refused before
            free = int(np.flatnonzero(model.jnt_dofadr == layout.base_dof)[0])
            opts["body"] = int(model.jnt_bodyid[free])
        else:
            opts["body"] = _body(model, opts["body"], f"{group}.{t.name}.body")
    if "feet" in opts:
        feet = [_body(model, f, f"{group}.{t.name}.feet") for f in opts["feet"]]
        opts["feet"] = np.array(feet, dtype=np.intp)
    return opts


def _plan(task: DeclaredTask, model: mujoco.MjModel, layout: terms.Layout) -> Plan:
    rewards = tuple((t.name, t.weight, _resolved(t, "rewards", model, layout)) for t in task.rewards)
    ends = tuple((t.name, _resolved(t, "terminations", model, layout)) for t in task.terminations
                 if t.name != "timeout")
    ctrl = model.actuator_ctrlrange
    feet = [opts["feet"] for name, _, opts in rewards if name == "feet_air_time"]
    c = task.commands
    return Plan(layout=layout, rewards=rewards, terminations=ends,
                action=ActionSpec.from_bounds(task.control.kind, ctrl[:, 0], ctrl[:, 1]),
                dt=task.control.period,
                command_ranges=None if c is None else np.array(c.ranges(), dtype=np.float64),
                resample_steps=0 if c is None else max(1, round(c.resample_seconds / task.control.period)),
                feet=feet[0] if feet else np.zeros(0, dtype=np.intp), reward_floor=task.reward_floor)


def _fields(task: DeclaredTask) -> tuple[str, ...]:
    """mjData fields the outcome reads: the joints and base always, contact forces and body positions
    where a term reads them."""
    names = {t.name for t in (*task.rewards, *task.terminations)}
    fields = ["qpos", "qvel", "ctrl", "qfrc_actuator"]
    if names & {"feet_air_time", "base_contact"}:
        fields.append("cfrc_ext")
    if "body_distance" in names:
        fields.append("xpos")
    return tuple(fields)


def build_task(task: DeclaredTask, name: str = "declared") -> EngineTask:
    """The engine task for `task`; every mistake a ConfigError naming its key, before any world exists."""
    path, model, joints = compile_model(task)
    layout = layout_of(task, model, joints)
    for t in (*task.observations, *task.rewards, *task.terminations):
        if t.name in BASE_TERMS and layout.base_qpos is None:
            raise ConfigError(f"task: term {t.name!r} reads the floating base, but {task.model!r} has none; "
                              f"set floating_base: true or drop the term")
    steps = task.control.period / model.opt.timestep
    if abs(steps - round(steps)) > _PERIOD_RTOL * steps or round(steps) < 1:
        raise ConfigError(f"task.control.period: {task.control.period} s is not a whole multiple of the "
                          f"model's timestep {model.opt.timestep} s")
    frame_skip = round(steps)
    max_steps = max(1, round(task.episode_seconds / task.control.period))
    observations = tuple(_obs_term(t, layout, model) for t in task.observations)
    plan = _plan(task, model, layout)
    default_qpos = layout.default_pose.copy()
    qpos_index = layout.qpos_index

    def reset(rng: np.random.Generator, qpos: np.ndarray, qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        qpos = qpos.copy()
        qpos[qpos_index] = default_qpos
        return qpos, qvel.copy()

    goals = {} if task.commands is None else {COMMAND_FIELD: lambda m, d: np.zeros(3)}  # drawn per world
    return EngineTask(name=name, mjcf=path, frame_skip=frame_skip, observation=lambda m: observations,
                      outcome=_no_outcome, reset=reset, max_episode_steps=max_steps,
                      outcome_fields=_fields(task), action_kind=task.control.kind, goals=goals,
                      state=functools.partial(_state, plan=plan))


def _state(num_worlds: int, model: Any, plan: Plan) -> DeclaredState:
    """The engine's per-world task state of a declared task (a module-level factory)."""
    return DeclaredState(num_worlds, plan)


def _no_outcome(batch: StepBatch) -> tuple[np.ndarray, np.ndarray]:
    """Never called: a declared task's outcome is its state's (DeclaredState.outcome)."""
    raise AssertionError("a declared task's outcome is DeclaredState.outcome")
