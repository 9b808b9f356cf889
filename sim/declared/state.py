"""The per-world state of a declared task and its outcome: the velocity command (drawn from each
world's generator at its episode start and every `resample_seconds`), the feet's air time, the
episode's velocity-tracking error; every reward and termination term evaluated over all worlds.

The command is the task's goal field `command` (forward m/s, lateral m/s, yaw rate rad/s): on a robot
the operator supplies it with the measured state, as a goal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_rl.spec import ActionSpec, action_to_robot

from ..engine.task import StepBatch
from . import terms

COMMAND_FIELD = "command"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the outcome evaluates, every name resolved against the model (sim.declared.builder)."""

    layout: terms.Layout
    rewards: tuple[tuple[str, float, Mapping[str, Any]], ...]
    """(term, weight, options with body names as body ids)."""
    terminations: tuple[tuple[str, Mapping[str, Any]], ...]
    """(term, options); the time limit is the engine's truncation, not here."""
    action: ActionSpec
    """The policy's action over the actuators' ctrlrange (as the spec maps it)."""
    dt: float
    """Seconds per control period."""
    command_ranges: np.ndarray | None = None
    """`(3, 2)` uniform ranges of the command; None: the task has no command."""
    resample_steps: int = 0
    """Control periods between two command draws within an episode."""
    feet: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    """Body ids of the feet whose air time is rewarded."""
    reward_floor: float | None = None
    """The summed reward's lower clip (None: none)."""


class DeclaredState:
    """`(N, ...)` state of a declared task's worlds (the engine's `TaskState`)."""

    def __init__(self, num_worlds: int, plan: Plan) -> None:
        n, f = num_worlds, len(plan.feet)
        self.plan = plan
        self.fields: Mapping[str, np.ndarray] = {}
        self.air_time = np.zeros((n, f))
        """Seconds each foot has been off the ground."""
        self.last_touching = np.zeros((n, f), dtype=bool)
        self.since_draw = np.zeros(n, dtype=np.int64)
        self.tracking_error = np.zeros(n)
        """Summed |command_xy - v_xy| (m/s, base frame) over the episode's steps."""
        self.steps = np.zeros(n, dtype=np.int64)
        self.fell = np.zeros(n, dtype=bool)
        self._rngs: list[np.random.Generator | None] = [None] * n

    def reset_world(self, i: int, model: Any, data: Any, rng: np.random.Generator,
                    goals: Mapping[str, np.ndarray]) -> None:
        """A new episode in world i: a command drawn from its generator, the counters cleared."""
        self._rngs[i] = rng
        if self.plan.command_ranges is not None:
            goals[COMMAND_FIELD][i] = terms.draw_commands(rng, self.plan.command_ranges)
        self.air_time[i] = 0.0
        self.last_touching[i] = False
        self.since_draw[i] = 0
        self.tracking_error[i] = 0.0
        self.steps[i] = 0
        self.fell[i] = False

    def controls(self, actions: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] -> the actuators' controls, the spec's mapping."""
        return action_to_robot(self.plan.action, actions)

    def outcome(self, batch: StepBatch, goals: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Weighted reward sum and terminations of every world; then the commands that are due are drawn."""
        p, now = self.plan, batch.now
        qpos, qvel, n = now["qpos"], now["qvel"], len(batch.ctrl)
        command = goals.get(COMMAND_FIELD)
        total = np.zeros(n)
        for name, weight, opts in p.rewards:
            total += weight * self._reward(name, opts, batch, command)
        if p.reward_floor is not None:
            np.maximum(total, p.reward_floor, out=total)
        done = np.zeros(n, dtype=bool)
        for name, opts in p.terminations:
            if name == "base_height_below":
                done |= terms.base_height_below(qpos, p.layout, opts["height"])
            elif name == "orientation_beyond":
                done |= terms.orientation_beyond(qpos, p.layout, opts["limit"])
            else:
                done |= terms.base_contact(now["cfrc_ext"], opts["body"], opts["force"])
        self.fell[:] = done
        self.steps += 1
        if command is not None:
            if p.layout.base_qpos is not None:
                v = terms.base_lin_vel(qpos, qvel, p.layout)[:, :2]
                self.tracking_error += np.linalg.norm(command[:, :2] - v, axis=1)
            self._redraw(command)
        return total, done

    def _reward(self, name: str, opts: Mapping[str, Any], batch: StepBatch,
                command: np.ndarray | None) -> np.ndarray:
        p, now = self.plan, batch.now
        qpos, qvel = now["qpos"], now["qvel"]
        if name == "alive":
            return terms.alive(len(qpos))
        if name == "joint_pos_deviation":
            return terms.joint_pos_deviation(qpos, p.layout)
        if name == "action_rate":
            return terms.action_rate(batch.ctrl, batch.before["ctrl"])
        if name == "torque":
            return terms.torque(now["qfrc_actuator"], p.layout)
        if name == "joint_limit":
            return terms.joint_limit(qpos, p.layout)
        if name == "orientation":
            return terms.orientation(qpos, p.layout)
        if name == "base_height":
            return terms.base_height(qpos, p.layout, opts["target"])
        if name == "lin_vel_z":
            return terms.lin_vel_z(qpos, qvel, p.layout)
        if name == "ang_vel_xy":
            return terms.ang_vel_xy(qvel, p.layout)
        if name == "body_distance":
            return terms.body_distance(now["xpos"], opts["body"], np.asarray(opts["target"]))
        assert command is not None  # config refuses a command term without `commands:`
        if name == "track_lin_vel_xy":
            return terms.track_lin_vel_xy(qpos, qvel, p.layout, command, opts["sigma"])
        if name == "track_ang_vel_z":
            return terms.track_ang_vel_z(qvel, p.layout, command, opts["sigma"])
        assert name == "feet_air_time"
        touching = terms.contact(now["cfrc_ext"], p.feet, opts["force"])
        reward, self.air_time, self.last_touching = terms.feet_air_time(
            touching, self.last_touching, self.air_time, p.dt, command, opts["threshold"])
        return reward

    def _redraw(self, command: np.ndarray) -> None:
        """A new command for each world whose `resample_steps` have passed, from the world's generator."""
        assert self.plan.command_ranges is not None
        self.since_draw += 1
        for i in np.flatnonzero(self.since_draw >= self.plan.resample_steps):
            rng = self._rngs[i]
            assert rng is not None  # drawn at the world's reset
            command[i] = terms.draw_commands(rng, self.plan.command_ranges)
            self.since_draw[i] = 0

    def episode_info(self, i: int) -> dict[str, Any]:
        """`fell` (ended by a termination term) and, with commands, the episode's mean tracking error."""
        out: dict[str, Any] = {"fell": bool(self.fell[i])}
        if self.plan.command_ranges is not None and self.plan.layout.base_qpos is not None:
            out["velocity_tracking_error"] = float(self.tracking_error[i] / max(int(self.steps[i]), 1))
        return out
