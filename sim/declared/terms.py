"""The library of declared-task terms, each written once over all worlds: `(N, ...)` arrays in, `(N, k)`
observations, `(N,)` rewards or `(N,)` bool terminations out.

Conventions: MuJoCo's quaternions (w x y z); a floating base is a free joint whose qpos starts with
position (m, world frame) then orientation, and whose qvel starts with linear velocity (m/s, world frame)
then angular velocity (rad/s, already in the base's own frame: MuJoCo's convention for free joints).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from robot_rl.spec import gravity_in_frame, rotate_into_frame

Array = np.ndarray


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a declared task's joints and base live in qpos / qvel."""

    qpos_index: np.ndarray
    """`(J,)` qpos address of each policy joint, in policy order."""
    dof_index: np.ndarray
    """`(J,)` qvel address of each policy joint."""
    default_pose: np.ndarray
    """`(J,)` the default joint positions (rad or m)."""
    base_qpos: int | None = None
    """qpos address of the floating base's free joint (None: a fixed-base robot)."""
    base_dof: int | None = None
    """qvel address of the floating base's free joint."""
    lower: np.ndarray | None = None
    """`(J,)` joint lower limits (rad or m; -inf where unlimited); None: every joint unlimited."""
    upper: np.ndarray | None = None
    """`(J,)` joint upper limits (+inf where unlimited)."""


# --------------------------------------------------------------------------------------------------
# Rotations


def rotate_inverse(quat: Array, v: Array) -> Array:
    """`v` `(N, 3)` (world frame) expressed in the frame of `quat` `(N, 4)`: R(quat)^T v, per world (the
    spec's rotation, so a robot's observation rotates exactly as the engine's)."""
    return rotate_into_frame(quat, v)


def _base_quat(qpos: Array, layout: Layout) -> Array:
    assert layout.base_qpos is not None  # the builder refuses base terms for a fixed-base robot
    return qpos[:, layout.base_qpos + 3:layout.base_qpos + 7]


# --------------------------------------------------------------------------------------------------
# Observations


def joint_pos(qpos: Array, layout: Layout) -> Array:
    """Joint positions relative to the default pose `(N, J)`."""
    return qpos[:, layout.qpos_index] - layout.default_pose


def joint_vel(qvel: Array, layout: Layout) -> Array:
    """Joint velocities `(N, J)`."""
    return qvel[:, layout.dof_index]


def projected_gravity(qpos: Array, layout: Layout) -> Array:
    """The unit gravity direction (0, 0, -1) in the base frame `(N, 3)`: (0, 0, -1) when upright."""
    return gravity_in_frame(_base_quat(qpos, layout))


def base_lin_vel(qpos: Array, qvel: Array, layout: Layout) -> Array:
    """The base's linear velocity in its own frame `(N, 3)` (m/s)."""
    assert layout.base_dof is not None
    return rotate_inverse(_base_quat(qpos, layout), qvel[:, layout.base_dof:layout.base_dof + 3])


def base_ang_vel(qvel: Array, layout: Layout) -> Array:
    """The base's angular velocity in its own frame `(N, 3)` (rad/s; MuJoCo stores it so)."""
    assert layout.base_dof is not None
    return qvel[:, layout.base_dof + 3:layout.base_dof + 6]


# --------------------------------------------------------------------------------------------------
# Rewards (unweighted; the task multiplies each by its weight and sums)


def alive(n: int) -> Array:
    """1 per world and step: the reward for not having terminated."""
    return np.ones(n)


def joint_pos_deviation(qpos: Array, layout: Layout) -> Array:
    """Sum of squared joint deviations from the default pose (rad²); weight it negative."""
    return np.sum(np.square(joint_pos(qpos, layout)), axis=1)


def action_rate(ctrl: Array, ctrl_before: Array) -> Array:
    """Sum of squared changes of the command since the previous control period (robot units²)."""
    return np.sum(np.square(ctrl - ctrl_before), axis=1)


def torque(qfrc_actuator: Array, layout: Layout) -> Array:
    """Sum of squared actuator forces on the policy joints (N·m²)."""
    return np.sum(np.square(qfrc_actuator[:, layout.dof_index]), axis=1)


def base_height(qpos: Array, layout: Layout, target: float) -> Array:
    """Squared error of the base height from `target` (m²); weight it negative."""
    assert layout.base_qpos is not None
    return np.square(qpos[:, layout.base_qpos + 2] - target)


def joint_limit(qpos: Array, layout: Layout) -> Array:
    """Summed distance past the joint limits (rad or m; 0 inside them); weight it negative."""
    q = qpos[:, layout.qpos_index]
    n = len(q)
    if layout.lower is None or layout.upper is None:
        return np.zeros(n)
    below = np.where(np.isfinite(layout.lower), np.maximum(layout.lower - q, 0.0), 0.0)
    above = np.where(np.isfinite(layout.upper), np.maximum(q - layout.upper, 0.0), 0.0)
    return np.sum(below + above, axis=1)


def orientation(qpos: Array, layout: Layout) -> Array:
    """Squared tilt: the horizontal part of the projected gravity, squared (0 upright); weight negative."""
    return np.sum(np.square(projected_gravity(qpos, layout)[:, :2]), axis=1)


# --------------------------------------------------------------------------------------------------
# Terminations (the time limit is a truncation, set by the task's episode length, not a term here)


def base_height_below(qpos: Array, layout: Layout, height: float) -> Array:
    """True where the base is lower than `height` (m): fallen."""
    assert layout.base_qpos is not None
    return qpos[:, layout.base_qpos + 2] < height


def orientation_beyond(qpos: Array, layout: Layout, limit: float) -> Array:
    """True where the base is tilted more than `limit` radians from upright."""
    g = projected_gravity(qpos, layout)
    return np.arccos(np.clip(-g[:, 2], -1.0, 1.0)) > limit


# --------------------------------------------------------------------------------------------------
# Velocity commands and the legged terms (legged_gym's reward set, its kernels and thresholds)


def draw_commands(rng: np.random.Generator, ranges: Array) -> Array:
    """One command (forward m/s, lateral m/s, yaw rate rad/s) `(3,)`, uniform in `ranges` `(3, 2)`."""
    return rng.uniform(ranges[:, 0], ranges[:, 1])


def track_lin_vel_xy(qpos: Array, qvel: Array, layout: Layout, command: Array, sigma: float) -> Array:
    """exp(-|command_xy - v_xy|² / sigma), v in the base frame (m/s): 1 when tracking exactly."""
    error = np.sum(np.square(command[:, :2] - base_lin_vel(qpos, qvel, layout)[:, :2]), axis=1)
    return np.exp(-error / sigma)


def track_ang_vel_z(qvel: Array, layout: Layout, command: Array, sigma: float) -> Array:
    """exp(-(command_yaw - ω_z)² / sigma), ω in the base frame (rad/s)."""
    return np.exp(-np.square(command[:, 2] - base_ang_vel(qvel, layout)[:, 2]) / sigma)


def lin_vel_z(qpos: Array, qvel: Array, layout: Layout) -> Array:
    """Squared vertical velocity of the base in its frame (m²/s²): bouncing; weight it negative."""
    return np.square(base_lin_vel(qpos, qvel, layout)[:, 2])


def ang_vel_xy(qvel: Array, layout: Layout) -> Array:
    """Squared roll and pitch rates of the base (rad²/s²): rocking; weight it negative."""
    return np.sum(np.square(base_ang_vel(qvel, layout)[:, :2]), axis=1)


def contact(cfrc_ext: Array, bodies: Array, force: float) -> Array:
    """`(N, B)` True where the upward contact force on each body exceeds `force` (N); `cfrc_ext`
    `(N, nbody, 6)` is MuJoCo's external wrench per body (torque, then force, world frame)."""
    return cfrc_ext[:, bodies, 5] > force


def feet_air_time(touching: Array, last_touching: Array, air_time: Array, dt: float, command: Array,
                  threshold: float) -> tuple[Array, Array, Array]:
    """Reward for steps longer than `threshold` seconds, paid at touchdown (legged_gym's feet_air_time),
    zero while the commanded planar speed is under 0.1 m/s.

    `touching`, `last_touching` `(N, F)` bool (this and the previous control period), `air_time` `(N, F)`
    seconds each foot has been off the ground. Returns (reward `(N,)`, new air time, new last touching).
    A contact in either of the last two periods counts (MuJoCo's contacts flicker on a touchdown).
    """
    touched = touching | last_touching
    first = (air_time > 0.0) & touched
    air = air_time + dt
    reward = np.sum((air - threshold) * first, axis=1)
    reward *= np.linalg.norm(command[:, :2], axis=1) > 0.1
    return reward, np.where(touched, 0.0, air), touching.copy()


def body_distance(xpos: Array, body: int, target: Array) -> Array:
    """Distance of a body's origin from `target` (m, world frame); weight it negative."""
    return np.linalg.norm(xpos[:, body] - target, axis=1)


def base_contact(cfrc_ext: Array, body: int, force: float) -> Array:
    """True where the contact force on `body` exceeds `force` (N): the trunk touched the ground."""
    return np.linalg.norm(cfrc_ext[:, body, 3:], axis=1) > force
