"""The Gymnasium v5 MuJoCo tasks on the engine, on Gymnasium's own XML files.

Each definition restates, over `(N, ...)` arrays, what Gymnasium's `step`, `_get_rew`, `is_healthy` and
`reset_model` compute with their default arguments (gymnasium/envs/mujoco/*_v5.py); the observation
terms are the ones the Gymnasium-stepped path uses (`sim.locomotion.OBSERVATIONS`), so both build the
same spec. The conformance tests hold every world equal to Gymnasium's env, step by step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..locomotion import GOALS, OBSERVATIONS
from .task import EngineTask, StepBatch

Array = np.ndarray


def _ctrl_cost(batch: StepBatch, weight: float) -> Array:
    return weight * np.sum(np.square(batch.ctrl), axis=1)


def _x_velocity(batch: StepBatch) -> Array:
    return (batch.now["qpos"][:, 0] - batch.before["qpos"][:, 0]) / batch.dt


def _inside(x: Array, low: float, high: float) -> Array:
    return (low < x) & (x < high)


# ---------------------------------------------------------------------------------------- outcomes


def _hopper(batch: StepBatch) -> tuple[Array, Array]:
    qpos, qvel = batch.now["qpos"], batch.now["qvel"]
    state = np.concatenate([qpos[:, 2:], qvel], axis=1)
    healthy = (_inside(state, -100.0, 100.0).all(axis=1) & _inside(qpos[:, 1], 0.7, np.inf)
               & _inside(qpos[:, 2], -0.2, 0.2))
    reward = (1.0 * _x_velocity(batch) + healthy * 1.0) - _ctrl_cost(batch, 1e-3)
    return reward, ~healthy


def _walker2d(batch: StepBatch) -> tuple[Array, Array]:
    qpos = batch.now["qpos"]
    healthy = _inside(qpos[:, 1], 0.8, 2.0) & _inside(qpos[:, 2], -1.0, 1.0)
    reward = (1.0 * _x_velocity(batch) + healthy * 1.0) - _ctrl_cost(batch, 1e-3)
    return reward, ~healthy


def _half_cheetah(batch: StepBatch) -> tuple[Array, Array]:
    reward = 1.0 * _x_velocity(batch) - _ctrl_cost(batch, 0.1)
    return reward, np.zeros(len(reward), dtype=bool)


def _ant(batch: StepBatch) -> tuple[Array, Array]:
    now = batch.now
    x_velocity = (now["xpos"][:, 1, 0] - batch.before["xpos"][:, 1, 0]) / batch.dt  # main body: the torso
    state = np.concatenate([now["qpos"], now["qvel"]], axis=1)
    healthy = np.isfinite(state).all(axis=1) & (0.2 <= state[:, 2]) & (state[:, 2] <= 1.0)
    contact = 5e-4 * np.sum(np.square(np.clip(now["cfrc_ext"], -1.0, 1.0)), axis=(1, 2))
    reward = (x_velocity * 1.0 + healthy * 1.0) - (_ctrl_cost(batch, 0.5) + contact)
    return reward, ~healthy


def _mass_center_x(mass: Array, xipos: Array) -> Array:
    return np.einsum("nb,nb->n", mass, xipos[:, :, 0]) / mass.sum(axis=1)


def _humanoid(batch: StepBatch) -> tuple[Array, Array]:
    now, mass = batch.now, batch.body_mass
    x_velocity = (_mass_center_x(mass, now["xipos"]) - _mass_center_x(mass, batch.before["xipos"])) / batch.dt
    healthy = _inside(now["qpos"][:, 2], 1.0, 2.0)
    contact = np.minimum(5e-7 * np.sum(np.square(now["cfrc_ext"]), axis=(1, 2)), 10.0)
    reward = (1.25 * x_velocity + healthy * 5.0) - (_ctrl_cost(batch, 0.1) + contact)
    return reward, ~healthy


def _inverted_pendulum(batch: StepBatch) -> tuple[Array, Array]:
    qpos, qvel = batch.now["qpos"], batch.now["qvel"]
    finite = np.isfinite(qpos).all(axis=1) & np.isfinite(qvel).all(axis=1)
    terminated = ~finite | (np.abs(qpos[:, 1]) > 0.2)
    return (~terminated).astype(np.float64), terminated


def _inverted_double_pendulum(batch: StepBatch) -> tuple[Array, Array]:
    tip = batch.now["site_xpos"][:, 0]
    x, y = tip[:, 0], tip[:, 2]
    v1, v2 = batch.now["qvel"][:, 1], batch.now["qvel"][:, 2]
    terminated = y <= 1
    dist_penalty = 0.01 * x**2 + (y - 2) ** 2
    vel_penalty = 1e-3 * v1**2 + 5e-3 * v2**2
    return 10.0 * ~terminated - dist_penalty - vel_penalty, terminated


def _body_distance(xpos: Array, a: int, b: int) -> Array:
    return np.linalg.norm(xpos[:, a] - xpos[:, b], axis=1)


def _reacher(batch: StepBatch) -> tuple[Array, Array]:
    fingertip, target = 3, 4  # body ids in reacher.xml
    distance = _body_distance(batch.now["xpos"], fingertip, target)
    reward = -distance * 1.0 + (-np.square(batch.ctrl).sum(axis=1) * 1.0)
    return reward, np.zeros(len(reward), dtype=bool)


def _swimmer(batch: StepBatch) -> tuple[Array, Array]:
    reward = 1.0 * _x_velocity(batch) - _ctrl_cost(batch, 1e-4)
    return reward, np.zeros(len(reward), dtype=bool)


def _pusher(batch: StepBatch) -> tuple[Array, Array]:
    tips_arm, obj, goal = 10, 11, 12  # body ids in pusher_v5.xml
    xpos = batch.now["xpos"]
    near = -_body_distance(xpos, obj, tips_arm) * 0.5
    dist = -_body_distance(xpos, obj, goal) * 1.0
    reward = dist + (-np.square(batch.ctrl).sum(axis=1) * 0.1) + near
    return reward, np.zeros(len(reward), dtype=bool)


# ---------------------------------------------------------------------------------------- resets


def _uniform(scale: float) -> Callable[[np.random.Generator, Array, Array], tuple[Array, Array]]:
    """qpos and qvel each plus U(-scale, scale) (Hopper, Walker2d, Humanoid, Swimmer, InvertedPendulum)."""
    def draw(rng: np.random.Generator, qpos0: Array, qvel0: Array) -> tuple[Array, Array]:
        qpos = qpos0 + rng.uniform(low=-scale, high=scale, size=qpos0.size)
        return qpos, qvel0 + rng.uniform(low=-scale, high=scale, size=qvel0.size)
    return draw


def _uniform_normal(scale: float) -> Callable[[np.random.Generator, Array, Array], tuple[Array, Array]]:
    """qpos plus U(-scale, scale), qvel plus scale * N(0, 1) (HalfCheetah, Ant, InvertedDoublePendulum)."""
    def draw(rng: np.random.Generator, qpos0: Array, qvel0: Array) -> tuple[Array, Array]:
        qpos = qpos0 + rng.uniform(low=-scale, high=scale, size=qpos0.size)
        return qpos, qvel0 + scale * rng.standard_normal(qvel0.size)
    return draw


def _reacher_reset(rng: np.random.Generator, qpos0: Array, qvel0: Array) -> tuple[Array, Array]:
    qpos = rng.uniform(low=-0.1, high=0.1, size=qpos0.size) + qpos0
    while True:  # a target in the disc of radius 0.2
        goal = rng.uniform(low=-0.2, high=0.2, size=2)
        if np.linalg.norm(goal) < 0.2:
            break
    qpos[-2:] = goal
    qvel = qvel0 + rng.uniform(low=-0.005, high=0.005, size=qvel0.size)
    qvel[-2:] = 0
    return qpos, qvel


def _pusher_reset(rng: np.random.Generator, qpos0: Array, qvel0: Array) -> tuple[Array, Array]:
    qpos, goal = qpos0.copy(), np.zeros(2)
    while True:  # the object at least 0.17 m from the goal
        cylinder = np.concatenate([rng.uniform(low=-0.3, high=0, size=1),
                                   rng.uniform(low=-0.2, high=0.2, size=1)])
        if np.linalg.norm(cylinder - goal) > 0.17:
            break
    qpos[-4:-2] = cylinder
    qpos[-2:] = goal
    qvel = qvel0 + rng.uniform(low=-0.005, high=0.005, size=qvel0.size)
    qvel[-4:] = 0
    return qpos, qvel


# ---------------------------------------------------------------------------------------- the tasks


def _task(name: str, xml: str, frame_skip: int, outcome, reset, steps: int = 1000,
          fields: tuple[str, ...] = ()) -> EngineTask:
    return EngineTask(name=name, mjcf=f"gymnasium:{xml}", frame_skip=frame_skip,
                      observation=OBSERVATIONS[name], outcome=outcome, reset=reset, max_episode_steps=steps,
                      outcome_fields=fields, goals=GOALS.get(name, {}))


TASKS: dict[str, EngineTask] = {t.name: t for t in (
    _task("InvertedPendulum-v5", "inverted_pendulum.xml", 2, _inverted_pendulum, _uniform(0.01)),
    _task("InvertedDoublePendulum-v5", "inverted_double_pendulum.xml", 5, _inverted_double_pendulum,
          _uniform_normal(0.1), fields=("site_xpos",)),
    _task("Hopper-v5", "hopper.xml", 4, _hopper, _uniform(5e-3)),
    _task("HalfCheetah-v5", "half_cheetah.xml", 5, _half_cheetah, _uniform_normal(0.1)),
    _task("Walker2d-v5", "walker2d_v5.xml", 4, _walker2d, _uniform(5e-3)),
    _task("Ant-v5", "ant.xml", 5, _ant, _uniform_normal(0.1), fields=("xpos",)),
    _task("Humanoid-v5", "humanoid.xml", 5, _humanoid, _uniform(1e-2), fields=("xipos",)),
    _task("Reacher-v5", "reacher.xml", 2, _reacher, _reacher_reset, steps=50),
    _task("Swimmer-v5", "swimmer.xml", 4, _swimmer, _uniform(0.1)),
    _task("Pusher-v5", "pusher_v5.xml", 5, _pusher, _pusher_reset, steps=100),
)}
