"""A task on the engine, as a declarative definition: which model, what the policy sees, what it is
rewarded for, when an episode ends, how it starts.

Everything a definition computes is over `(N, ...)` arrays of all worlds at once (the outcome), or
over one world's generator at its episode start (the reset draw: resets are rare, steps are not).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import mujoco
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.spec import ActionSpec, ObsTerm, SpecError, TaskSpec

from ..joint_naming import spec_state_joints

# mjData arrays a task may read (observation, outcome), with their element count for a model.
FIELD_SIZES: dict[str, Callable[[Any], int]] = {
    "qpos": lambda m: m.nq,
    "qvel": lambda m: m.nv,
    "qfrc_constraint": lambda m: m.nv,
    "qfrc_actuator": lambda m: m.nv,
    "cfrc_ext": lambda m: m.nbody * 6,
    "cinert": lambda m: m.nbody * 10,
    "cvel": lambda m: m.nbody * 6,
    "xpos": lambda m: m.nbody * 3,
    "xipos": lambda m: m.nbody * 3,
    "site_xpos": lambda m: m.nsite * 3,
    "ctrl": lambda m: m.nu,
}
# MjModel arrays a privileged (critic-only) term may read: each world's own physical parameters, so the
# randomized ones too (read at every episode start, after the randomizer's draw).
MODEL_FIELDS: dict[str, Callable[[Any], np.ndarray]] = {
    "body_mass": lambda m: m.body_mass,  # kg per body
    "geom_friction": lambda m: m.geom_friction[:, 0],  # sliding friction per geom
    "dof_damping": lambda m: m.dof_damping,  # N·m·s/rad (or N·s/m) per dof
    "actuator_gain": lambda m: m.actuator_gainprm[:, 0],  # a position servo's kp per actuator
}
# Fields that exist only after mj_rnePostConstraint (Gymnasium calls it after every step).
POST_CONSTRAINT_FIELDS = frozenset({"cfrc_ext"})


class StepBatch(NamedTuple):
    """What an outcome sees after one control period of every world."""

    now: Mapping[str, np.ndarray]
    """Field -> `(N, ...)` after the step (mjData's own shape per world, e.g. xpos `(N, nbody, 3)`)."""
    before: Mapping[str, np.ndarray]
    """The same fields before the step (the previous step's values, or the episode's start)."""
    ctrl: np.ndarray
    """`(N, nu)` the controls applied, robot units."""
    dt: float
    """Seconds of one control period."""
    body_mass: np.ndarray
    """`(N, nbody)` each world's body masses (kg; its own model's, so randomized ones too)."""


Outcome = Callable[[StepBatch], tuple[np.ndarray, np.ndarray]]
"""StepBatch -> (reward `(N,)` float64, terminated `(N,)` bool)."""
ResetDraw = Callable[[np.random.Generator, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(the world's generator, init qpos, init qvel) -> (qpos, qvel) of a new episode."""
GoalGetter = Callable[[Any, Any], np.ndarray]
"""(model, data) at the episode start, after mj_forward -> the goal's values (flat)."""


class TaskState(Protocol):
    """Per-world state of a task that needs more than the physics (optional, `EngineTask.state`): goals
    that advance mid-episode (hold-and-advance), actions relative to the current joint targets, the
    previous action, success counters reported when an episode ends.

    The engine calls `reset_world` at each world's episode start (after the goal getters, so it may
    overwrite that world's goal rows), `controls` instead of the spec's action mapping, `outcome`
    instead of the task's, and `episode_info` for each ended world's `final_info`. `fields` are extra
    `(N, size)` state arrays (e.g. the last action) that observation terms may read like mjData's.
    """

    fields: Mapping[str, np.ndarray]

    def reset_world(self, i: int, model: Any, data: Any, rng: np.random.Generator,
                    goals: Mapping[str, np.ndarray]) -> None: ...

    def controls(self, actions: np.ndarray) -> np.ndarray: ...

    def outcome(self, batch: StepBatch, goals: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...

    def episode_info(self, i: int) -> dict[str, Any]: ...


TaskStateFactory = Callable[[int, Any], TaskState]
"""(number of worlds, nominal model) -> the task's per-world state."""


@dataclasses.dataclass(frozen=True)
class EngineTask:
    """One task on the batched engine."""

    name: str
    """Task id, as in the registry."""
    mjcf: str
    """The model: a file path, or `gymnasium:<file>` for one of Gymnasium's MuJoCo assets."""
    frame_skip: int
    """Physics steps per control period."""
    observation: Callable[[Any], Sequence[ObsTerm]]
    """The spec's observation terms for the loaded model (read over the fields of FIELD_SIZES, goals)."""
    outcome: Outcome
    """Reward and termination over all worlds."""
    reset: ResetDraw
    """The reset distribution of one world."""
    max_episode_steps: int
    """Steps after which an episode is truncated (a time limit, not a termination)."""
    outcome_fields: tuple[str, ...] = ()
    """mjData fields the outcome reads besides the observation's (kept before and after each step)."""
    goals: Mapping[str, GoalGetter] = dataclasses.field(default_factory=dict)
    """Goal field name -> how the episode's target is read at its start (the spec's goal_fields)."""
    state: TaskStateFactory | None = None
    """Per-world task state (see `TaskState`); None: the outcome and the spec's action mapping suffice."""
    action_kind: str = "torque"
    """What the controls mean, the spec's action kind over the actuators' ctrlrange: "torque" (motors),
    "position" (targets of position servos) or "position_delta" (changes of those targets, integrated by
    the task state's `robot_rl.spec.TargetIntegrator`)."""
    action_rate: float = 1.0
    """position_delta only: the fraction of a joint's ctrlrange a full action moves its target per step."""
    privileged: Callable[[Any], Sequence[ObsTerm]] | None = None
    """Terms the critic may see and a robot cannot measure (asymmetric actor-critic), for the loaded
    model: over the observation's fields and MODEL_FIELDS (each world's drawn physical parameters). The
    engine builds the ones a run asks for (`BatchedEngine(privileged=...)`) into `info["privileged"]`;
    the policy's observation never holds them."""

    def __post_init__(self) -> None:
        if isinstance(self.frame_skip, bool) or not isinstance(self.frame_skip, int) or self.frame_skip < 1:
            raise ConfigError(f"{self.name}: frame_skip must be a positive integer, got {self.frame_skip!r}")
        if not isinstance(self.max_episode_steps, int) or self.max_episode_steps < 1:
            raise ConfigError(f"{self.name}: max_episode_steps must be a positive integer, "
                              f"got {self.max_episode_steps!r}")
        unknown = [f for f in self.outcome_fields if f not in FIELD_SIZES]
        if unknown:
            raise ConfigError(f"{self.name}: outcome_fields {unknown[0]!r} is not an mjData field the engine "
                              f"reads; valid: {', '.join(FIELD_SIZES)}")


def mjcf_path(task: EngineTask) -> str:
    """The file `task.mjcf` names (Gymnasium's assets folder for `gymnasium:<file>`)."""
    if task.mjcf.startswith("gymnasium:"):
        import gymnasium.envs.mujoco as gym_mujoco

        assets = os.path.join(os.path.dirname(gym_mujoco.__file__), "assets")
        return os.path.join(assets, task.mjcf.removeprefix("gymnasium:"))
    return task.mjcf


def load_model(task: EngineTask) -> mujoco.MjModel:
    """The task's nominal model; a ConfigError naming the file and quoting MuJoCo if it does not load."""
    path = mjcf_path(task)
    if not os.path.isfile(path):
        raise ConfigError(f"{task.name}: MJCF file {path!r} does not exist")
    try:
        return mujoco.MjModel.from_xml_path(path)
    except ValueError as err:  # MuJoCo's compiler message, e.g. "XML Error: ... Element 'x', line 3"
        raise ConfigError(f"{task.name}: MJCF file {path!r} does not load: {err}") from None


def joint_actions(task_id: str, model: mujoco.MjModel
                  ) -> tuple[tuple[str, ...], tuple[tuple[float, float], ...], np.ndarray, np.ndarray]:
    """(joint names, joint limits, ctrl low, ctrl high) in actuator order: each actuator drives one joint."""
    names, limits = [], []
    for i in range(model.nu):
        if model.actuator_trntype[i] != mujoco.mjtTrn.mjTRN_JOINT:
            raise ConfigError(f"{task_id}: actuator {i} does not drive a joint")
        j = int(model.actuator_trnid[i, 0])
        names.append(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j))
        lo, hi = model.jnt_range[j] if model.jnt_limited[j] else (-np.inf, np.inf)
        limits.append((float(lo), float(hi)))
    ctrl = model.actuator_ctrlrange
    return tuple(names), tuple(limits), ctrl[:, 0].copy(), ctrl[:, 1].copy()


def build_spec(task: EngineTask, model: mujoco.MjModel) -> TaskSpec:
    """The task's spec from its model (joint order = actuator order, torques over ctrlrange).

    A term or goal that names a field the engine cannot read from this model is a ConfigError here,
    before any world exists.
    """
    terms = tuple(task.observation(model))
    sizes: dict[str, int] = {}
    extra = {} if task.state is None else {k: v.shape[1] for k, v in task.state(1, model).fields.items()}
    for term in terms:
        if term.source in FIELD_SIZES:
            sizes[term.source] = FIELD_SIZES[term.source](model)
        elif term.source in extra:
            sizes[term.source] = extra[term.source]
        elif term.source not in task.goals:
            raise ConfigError(f"{task.name}: observation term {term.name!r} reads {term.source!r}, which is "
                              f"neither an mjData field the engine reads ({', '.join(FIELD_SIZES)}) nor "
                              f"a goal of the task ({', '.join(task.goals) or 'none'})")
        if term.frame is not None and term.frame in FIELD_SIZES:  # the quaternion a term is rotated by
            sizes[term.frame] = FIELD_SIZES[term.frame](model)
        if term.goal is not None and term.goal not in task.goals:
            drawn = ", ".join(task.goals) or "none"
            raise ConfigError(f"{task.name}: observation term {term.name!r} is relative to goal "
                              f"{term.goal!r}, which the task does not draw ({drawn})")
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    for name, getter in task.goals.items():
        sizes[name] = int(np.asarray(getter(model, data)).size)
    names, limits, low, high = joint_actions(task.name, model)
    try:
        return TaskSpec(name=task.name, joint_names=names, observation=terms,
                        action=(ActionSpec.position_delta(low, high, task.action_rate)
                                if task.action_kind == "position_delta"
                                else ActionSpec.from_bounds(task.action_kind, low, high)),
                        joint_limits=limits,
                        control_period=float(model.opt.timestep) * task.frame_skip,
                        physics_dt=float(model.opt.timestep), state_fields=sizes,
                        state_joints=spec_state_joints(model, sizes), goal_fields=tuple(task.goals))
    except SpecError as err:  # an index past the model's field, a goal term without its goal ...
        raise ConfigError(f"{task.name}: its spec does not fit its model: {err}") from None


def privileged_spec(task: EngineTask, model: mujoco.MjModel, spec: TaskSpec,
                    names: Sequence[str]) -> TaskSpec:
    """`spec` with the privileged terms `names` (in that order) as its observation, and the model fields
    they read among its state fields: what the engine's privileged builder runs on. The terms are the
    task's own (`EngineTask.privileged`) and, on every task, each of MODEL_FIELDS whole (e.g.
    `body_mass`: every body's drawn mass). An unknown name is a ConfigError naming the valid ones."""
    declared = {name: ObsTerm(name, name) for name in MODEL_FIELDS}
    declared.update({t.name: t for t in (task.privileged(model) if task.privileged is not None else ())})
    if not names:
        raise ConfigError(f"{task.name}: no privileged terms asked for")
    for name in names:
        if name not in declared:
            raise ConfigError(f"policy.critic_privileged: {name!r} is not a privileged term of task "
                              f"{task.name!r}; valid: {', '.join(declared)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"policy.critic_privileged: a term is listed twice: {list(names)}")
    terms = tuple(declared[n] for n in names)
    sizes = dict(spec.state_fields)
    for term in terms:
        if term.source in MODEL_FIELDS:
            sizes[term.source] = int(np.asarray(MODEL_FIELDS[term.source](model)).size)
        elif term.source in FIELD_SIZES:
            sizes.setdefault(term.source, FIELD_SIZES[term.source](model))
    try:
        return dataclasses.replace(spec, observation=terms, state_fields=sizes)
    except SpecError as err:
        raise ConfigError(f"{task.name}: its privileged terms do not fit its model: {err}") from None
