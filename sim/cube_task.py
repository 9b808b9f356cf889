"""The cube tasks on the batched engine: `cube:rotate-z` and `cube:reorient` with robot_rl's three-finger
hand (sim/assets/cube_hand.xml), palm up, a 6 cm cube resting on the palm between the fingertips.

- Action: 9 normalised joint-position *offsets* in [-1, 1], added to the current joint targets:
  `target += action * ACTION_RATE * (high - low)` (a full action moves a target by 7.5 % of its joint's
  range per 50 ms control step), clipped to the ctrlrange. The targets start at the reset pose, so the
  fingers start against the cube (the prototype learned nothing with absolute targets and fingers
  starting away from the cube). The spec's action is "position_delta" (scale: the 7.5 % per step, target
  bounds: the ctrlrange), integrated by `robot_rl.spec.TargetIntegrator`, the same code a deployment's
  control loop integrates with.
- Observation (spec terms, 55 values): finger joint positions (rad) and velocities (rad/s, clipped to
  ±20), the cube's position in the palm frame (m; the palm is the world frame here: fixed at the
  origin, unrotated), the cube-to-goal orientation error (the goal term: quaternion conj(goal) * cube,
  w ≥ 0), the current joint targets (rad) and the last action. Joint positions are absolute, not
  relative to home: the observation normaliser removes the mean either way, and absolute angles are
  what a servo reports.
- Goals, success and drops: `robot_rl.goals` (±90° about z per goal for rotate-z, uniform on SO(3) for
  reorient; within 0.4 rad for 5 steps = 0.25 s, then a new goal at once; a drop terminates).
  Reorient's goal curriculum (`adr.goal_angle`, sim/adr_randomizer.py): ADR hands each episode a
  `goal_angle` (`CubeState.set_episode_parameters`) and its goals are drawn uniformly on SO(3) within
  that angle of the cube's orientation, beyond the tolerance; without it, the task's own goals.
- Reward per step (`CubeReward`): progress toward the goal (rad of error removed), a small alignment
  term, a success bonus per goal reached, a drop penalty, an action-rate penalty, and the prototype's
  shaping: fingertips kept at the cube (metres beyond touching) and, for rotate-z, the cube kept upright.
- Metrics: each ended episode's `final_info["successes"]` (goals reached in a row); an episode is a
  success when it is >= 1 (`success_rate`), and its mean is `consecutive_successes`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.goals import (
    GOAL_MODES,
    HoldAndAdvance,
    SuccessRule,
    dropped,
    goals_within,
    next_goals,
    quat_error,
    rotation_angle,
)
from robot_rl.spec import ActionSpec, ObsTerm, TargetIntegrator

from .engine.task import EngineTask, StepBatch

HAND_XML = os.path.join(os.path.dirname(__file__), "assets", "cube_hand.xml")
JOINTS = tuple(f"f{f}_{j}" for f in (1, 2, 3) for j in ("abd", "flex1", "flex2"))
"""The hand's joints, in actuator (= action) order; the hand XML must have exactly these."""
NJ = len(JOINTS)
CUBE_POS = slice(NJ, NJ + 3)  # qpos of the cube's free joint: x y z, then w x y z
CUBE_QUAT = slice(NJ + 3, NJ + 7)
TIP_SITES = (1, 2, 3)  # site ids of f1_tip, f2_tip, f3_tip (palm_centre is 0, cube_centre 4)
ACTION_RATE = 0.075
"""Fraction of a joint's range one full action moves its target, per control step."""
TOUCH = 0.03 + 0.01 + 0.005
"""Fingertip-to-cube-centre distance (m) counted as touching: half an edge, the tip radius, 5 mm slack."""


@dataclass(frozen=True)
class CubeReward:
    """The reward's weights (per control step)."""

    progress: float = 10.0
    """Per radian of orientation error removed since the previous step."""
    alignment: float = 0.1
    """Times (1 - error / pi): a small steady pull toward the goal."""
    success: float = 5.0
    """Per goal reached (held for the rule's steps)."""
    drop: float = 20.0
    """Subtracted once when the cube leaves the palm (the episode ends)."""
    action_rate: float = 0.005
    """Times the squared change of the normalised action."""
    contact: float = 2.0
    """Times the mean fingertip distance beyond touching the cube (m)."""
    tilt: float = 1.0
    """Times 1 - (cube's up axis · vertical), rotate-z only (the cube should stay upright)."""


@functools.cache
def _home() -> tuple[np.ndarray, np.ndarray]:
    """The hand XML's `home` keyframe: (qpos, ctrl)."""
    import mujoco

    model = mujoco.MjModel.from_xml_path(HAND_XML)
    key = model.key("home")
    return key.qpos.copy(), key.ctrl.copy()


def check_hand(model: Any, task_id: str) -> None:
    """A ConfigError naming the joint if the hand model's joints are not the spec's `JOINTS` + the cube."""
    import mujoco

    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)]
    extra = [n for n in names if n not in JOINTS and n != "cube"]
    if extra:
        raise ConfigError(f"{task_id}: the hand model has joint {extra[0]!r}, which the spec does not name; "
                          f"the spec's joints: {', '.join(JOINTS)} (and the cube's free joint 'cube')")
    missing = [n for n in (*JOINTS, "cube") if n not in names]
    if missing:
        raise ConfigError(f"{task_id}: the hand model lacks joint {missing[0]!r}")


def _observation(model: Any) -> list[ObsTerm]:
    return [ObsTerm("joint_pos", "qpos", indices=tuple(range(NJ))),
            ObsTerm("joint_vel", "qvel", indices=tuple(range(NJ)), clip=(-20.0, 20.0), scale=0.1),
            ObsTerm("cube_pos", "qpos", indices=tuple(range(CUBE_POS.start, CUBE_POS.stop)), scale=10.0),
            ObsTerm("cube_to_goal", "qpos", indices=tuple(range(CUBE_QUAT.start, CUBE_QUAT.stop)),
                    relative="orientation_quat", goal="cube_goal"),
            ObsTerm("joint_targets", "joint_targets"),
            ObsTerm("last_action", "last_action")]


def _privileged(model: Any) -> list[ObsTerm]:
    """What the critic may see beyond the policy (asymmetric actor-critic; a robot measures none of it):
    the cube's velocity (m/s, rad/s), the fingertips' positions (m, palm frame), and the physical
    parameters the randomizer draws: the cube's mass (kg) and friction, the finger joints' damping and
    the servos' kp."""
    cube_body, cube_geom = int(model.body("cube").id), int(model.geom("cube").id)
    tips = tuple(3 * s + k for s in TIP_SITES for k in range(3))
    nv_hand = tuple(range(NJ))
    return [ObsTerm("cube_vel", "qvel", indices=tuple(range(NJ, NJ + 6)), clip=(-20.0, 20.0), scale=0.1),
            ObsTerm("fingertips", "site_xpos", indices=tips, scale=10.0),
            ObsTerm("cube_mass", "body_mass", indices=(cube_body,), scale=10.0),
            ObsTerm("cube_friction", "geom_friction", indices=(cube_geom,)),
            ObsTerm("joint_damping", "dof_damping", indices=nv_hand),
            ObsTerm("servo_kp", "actuator_gain", indices=tuple(range(model.nu)))]


PRIVILEGED = ("cube_vel", "fingertips", "cube_mass", "cube_friction", "joint_damping", "servo_kp")
"""The cube tasks' privileged term names (`_privileged`), for a launch file's `policy.critic_privileged`."""


def _reset(rng: np.random.Generator, qpos0: np.ndarray, qvel0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The home grasp, fingers within ±0.03 rad of it, the cube turned by a yaw uniform on [-pi, pi)."""
    home, _ = _home()
    qpos = home.copy()
    qpos[:NJ] += rng.uniform(-0.03, 0.03, NJ)
    yaw = rng.uniform(-np.pi, np.pi)
    qpos[CUBE_QUAT] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    return qpos, qvel0.copy()


def _goal_placeholder(model: Any, data: Any) -> np.ndarray:
    """The goal's size for the spec; `CubeState.reset_world` draws the real one from the world's rng."""
    return np.array([1.0, 0.0, 0.0, 0.0])


class CubeState:
    """Per-world joint targets, last action, orientation error, hold counters and the goal switch."""

    def __init__(self, num_worlds: int, model: Any, mode: str, rule: SuccessRule, reward: CubeReward) -> None:
        self.mode, self.rule, self.weights = mode, rule, reward
        low, high = model.actuator_ctrlrange[:, 0].copy(), model.actuator_ctrlrange[:, 1].copy()
        self.integrator = TargetIntegrator(ActionSpec.position_delta(low, high, ACTION_RATE), num_worlds)
        self.targets, self.last_action = self.integrator.targets, self.integrator.last_action
        self._prev_action = np.zeros((num_worlds, model.nu))
        self.angle = np.zeros(num_worlds)
        """Each world's orientation error to its goal after the last step (rad)."""
        self.hold = HoldAndAdvance(num_worlds, rule)
        self.reached = np.zeros(num_worlds, dtype=bool)
        """Worlds that reached a goal on the last step."""
        self._rngs: list[np.random.Generator | None] = [None] * num_worlds
        self.fields: Mapping[str, np.ndarray] = self.integrator.fields()
        self.goal_angle = np.full(num_worlds, np.nan)
        """Each world's goal curriculum for this episode (`adr.goal_angle`, reorient only): its goals lie
        at most this many radians from the cube's orientation when drawn; NaN: the task's own goals."""
        self._next_goal_angle = np.nan

    def set_episode_parameters(self, values: Mapping[str, float]) -> None:
        """ADR's draw of the task's own parameters (`goal_angle`) for the world reset next: the engine
        resets a world right after its randomizer draws (sim/engine/batched.py `_reset_world`)."""
        unknown = sorted(set(values) - {"goal_angle"})
        if unknown or self.mode != "reorient":
            raise ConfigError(f"adr.{(unknown or ['goal_angle'])[0]}: cube:{self.mode} takes no such "
                              f"episode parameter; goal_angle is cube:reorient's goal curriculum")
        self._next_goal_angle = float(values.get("goal_angle", np.nan))

    def reset_world(self, i: int, model: Any, data: Any, rng: np.random.Generator,
                    goals: Mapping[str, np.ndarray]) -> None:
        self._rngs[i] = rng
        self.integrator.reset(i, data.qpos[:NJ])
        self.goal_angle[i], self._next_goal_angle = self._next_goal_angle, np.nan
        cube = np.asarray(data.qpos[CUBE_QUAT])[None]
        goals["cube_goal"][i] = self._next_goal(i, cube, cube, rng)
        if model.nmocap:  # the translucent goal cube beside the hand (visual only)
            data.mocap_quat[0] = goals["cube_goal"][i]
        self.angle[i] = rotation_angle(quat_error(cube, goals["cube_goal"][i:i + 1]))[0]
        mask = np.zeros(len(self.targets), dtype=bool)
        mask[i] = True
        self.hold.reset(mask)
        self.reached[i] = False

    def controls(self, actions: np.ndarray) -> np.ndarray:
        """Normalised offsets `(N, 9)` -> new joint targets (rad), integrated and clipped."""
        self._prev_action[...] = self.last_action
        self.integrator.step(actions)
        if not np.isfinite(actions).all():  # a NaN action still reaches MuJoCo: its physics-failure path
            bad = ~np.isfinite(actions).all(axis=1)
            out = self.targets.copy()
            out[bad] = np.nan
            return out
        return self.targets.copy()

    def outcome(self, batch: StepBatch, goals: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        w = self.weights
        qpos = batch.now["qpos"]
        goal = goals["cube_goal"]
        angle = rotation_angle(quat_error(qpos[:, CUBE_QUAT], goal))
        progress = self.angle - angle
        reached = self.hold.update(angle)
        fell = dropped(qpos[:, CUBE_POS], self.rule)
        tips = batch.now["site_xpos"][:, TIP_SITES]  # (N, 3, 3)
        gap = np.linalg.norm(tips - qpos[:, None, CUBE_POS], axis=2) - TOUCH
        reward = (w.progress * progress + w.alignment * (1.0 - angle / np.pi) + w.success * reached
                  - w.drop * fell
                  - w.action_rate * np.sum(np.square(self.last_action - self._prev_action), axis=1)
                  - w.contact * np.maximum(gap, 0.0).mean(axis=1))
        if self.mode == "rotate-z":
            q = qpos[:, CUBE_QUAT]
            up_z = 1.0 - 2.0 * (q[:, 1] ** 2 + q[:, 2] ** 2)  # z component of the cube's z axis
            reward -= w.tilt * (1.0 - up_z)
        for i in np.flatnonzero(reached):  # hold-and-advance: the next goal from this world's generator
            rng = self._rngs[i]
            assert rng is not None
            goal[i] = self._next_goal(int(i), goal[i:i + 1], qpos[i:i + 1, CUBE_QUAT], rng)
            angle[i] = rotation_angle(quat_error(qpos[i:i + 1, CUBE_QUAT], goal[i:i + 1]))[0]
        self.angle[...] = angle
        self.reached[...] = reached
        return reward, fell

    def _next_goal(self, i: int, previous: np.ndarray, cube: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
        """World i's next goal (4,): the task's own (`next_goals` after `previous`), or under the goal
        curriculum uniform within `goal_angle[i]` rad of the cube's orientation `cube` (1, 4), beyond the
        tolerance (a goal already reached is no goal)."""
        if np.isnan(self.goal_angle[i]):
            return next_goals(self.mode, previous, rng)[0]
        return goals_within(cube, self.rule.tolerance, self.goal_angle[i:i + 1], rng)[0]

    def episode_info(self, i: int) -> dict[str, Any]:
        count = int(self.hold.successes[i])
        return {"successes": count, "success": count >= 1}

    def successes(self) -> np.ndarray:
        """Goals reached so far in each world's episode `(N,)`."""
        return self.hold.successes.copy()


def cube_task(mode: str, max_episode_steps: int = 200, tolerance: float = 0.4, hold_steps: int = 5,
              reward: CubeReward | None = None, mjcf: str = HAND_XML) -> EngineTask:
    """The engine definition of `cube:<mode>` (20 Hz control: 10 physics steps of 5 ms); a goal is
    reached within `tolerance` rad held for `hold_steps` steps. Bad values are a ConfigError naming them."""
    if mode not in GOAL_MODES:
        raise ConfigError(f"cube task: goal mode {mode!r} is not valid; choose one of: "
                          f"{', '.join(GOAL_MODES)}")
    try:
        rule = SuccessRule(tolerance=tolerance, hold_steps=hold_steps)
    except ValueError as err:
        raise ConfigError(f"cube:{mode}: {err}") from None
    weights = reward or CubeReward()
    name = f"cube:{mode}"

    def state(num_worlds: int, model: Any) -> CubeState:
        check_hand(model, name)
        return CubeState(num_worlds, model, mode, rule, weights)

    return EngineTask(name=name, mjcf=mjcf, frame_skip=10, observation=_observation, outcome=_no_outcome,
                      reset=_reset, max_episode_steps=max_episode_steps, outcome_fields=("site_xpos",),
                      goals={"cube_goal": _goal_placeholder}, state=state, action_kind="position_delta",
                      action_rate=ACTION_RATE, privileged=_privileged)


def _no_outcome(batch: StepBatch) -> tuple[np.ndarray, np.ndarray]:
    """Never called: `CubeState.outcome` (it needs the goals and the hold counters) replaces it."""
    raise AssertionError("the cube tasks' outcome is their CubeState's")


TASKS: dict[str, EngineTask] = {}


def engine_tasks() -> dict[str, EngineTask]:
    """`cube:rotate-z` (200 steps = 10 s per episode) and `cube:reorient` (400 steps = 20 s), built once."""
    if not TASKS:
        TASKS["cube:rotate-z"] = cube_task("rotate-z", 200)
        TASKS["cube:reorient"] = cube_task("reorient", 400)
    return TASKS
