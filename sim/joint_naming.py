"""How a MuJoCo model's joints are named on a robot's JointState: one convention, one place.

The task spec's `state_joints` (what a bundle tells a driver to publish), the sim bridge's
`joint_states` and the ROS 2 decoder all use it, so a bundle exported from a task reads the bridge's
JointState by name. Every joint in model order; a hinge or slide joint is one entry under its own name
(position = its qpos, velocity = its qvel); a free joint J is the seven entries
`J:x J:y J:z J:qw J:qx J:qy J:qz` and a ball joint the four `J:qw .. J:qz` (its qpos in that order;
velocities: its qvel on the entries other than `J:qw`, whose velocity is unused). The entries are
therefore the model's generalized coordinates `qpos`, and without the `:qw` entries its `qvel`.
An unnamed joint is `joint<id>`.

mujoco is imported on use: the ROS 2 bridge's module imports this without it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

#: The entries of a free joint (position x y z, orientation quaternion w x y z) and of a ball joint.
FREE_PARTS = ("x", "y", "z", "qw", "qx", "qy", "qz")
BALL_PARTS = ("qw", "qx", "qy", "qz")


class JointLayout(NamedTuple):
    """A model's JointState entries and where each one's values live in mjData."""

    names: list[str]
    """Entry names, model order (the convention of the module docstring)."""
    qpos: np.ndarray
    """`(len(names),)` the qpos address of each entry."""
    qvel: np.ndarray
    """`(len(names),)` the qvel address of each entry, -1 for a quaternion's `:qw` (no velocity)."""
    free: tuple[int, int] | None
    """(qpos, qvel) addresses of the first free joint, None without one."""


def joint_layout(model: Any) -> JointLayout:
    """The JointState layout of a `mujoco.MjModel`: entry names, qpos and qvel addresses."""
    import mujoco

    names: list[str] = []
    qpos: list[int] = []
    qvel: list[int] = []
    free: tuple[int, int] | None = None
    parts: tuple[str, ...]
    for j in range(model.njnt):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
        kind, qa, va = int(model.jnt_type[j]), int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])
        if kind == mujoco.mjtJoint.mjJNT_FREE:
            free = (qa, va) if free is None else free
            parts = FREE_PARTS
            vels = [va, va + 1, va + 2, -1, va + 3, va + 4, va + 5]
        elif kind == mujoco.mjtJoint.mjJNT_BALL:
            parts = BALL_PARTS
            vels = [-1, va, va + 1, va + 2]
        else:
            names.append(name)
            qpos.append(qa)
            qvel.append(va)
            continue
        names += [f"{name}:{p}" for p in parts]
        qpos += list(range(qa, qa + len(parts)))
        qvel += vels
    return JointLayout(names, np.array(qpos, dtype=np.intp), np.array(qvel, dtype=np.intp), free)


def state_joint_names(model: Any) -> tuple[str, ...]:
    """A task spec's `state_joints` for a model: every entry a driver publishes, in qpos order."""
    return tuple(joint_layout(model).names)


def spec_state_joints(model: Any, state_fields: Any) -> tuple[str, ...]:
    """`state_joints` for a spec over `model` reading `state_fields`: the model's entries when the
    observation reads `qpos` or `qvel` (a driver must publish them), else none."""
    return state_joint_names(model) if {"qpos", "qvel"} & set(state_fields) else ()
