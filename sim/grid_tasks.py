"""The course's grid worlds as registered tasks with one-hot observations (`grid:book`, `grid:bridge`, ...).

`GridTaskEnv` drives the grid's own Gymnasium env (`gridworld.make_grid_env`: noise, living reward,
exit rewards and its time limit as the named map sets them), whose observation is the state index.
A network wants a vector, so the state field `cell` is the one-hot encoding of that index (all S
states, the absorbing terminal state last), and the observation is built from it through the spec.
Actions: Discrete(4) = N, S, E, W (in an exit cell any action is `exit`); one step is taken as 1 s.

The start cell is fixed, so a grid's reset is not randomised; its seed drives the slips.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np

from robot_rl.spec import ActionSpec, ObsTerm, TaskSpec

from .gridworld import GRID_NAMES, make_grid_env
from .spec_env import SpecEnv, discrete_index

PREFIX = "grid:"
TASK_IDS = tuple(f"{PREFIX}{name}" for name in GRID_NAMES)
"""The grids shipped in sim/grids/, as task ids."""


def grid_spec(task_id: str, num_states: int) -> TaskSpec:
    return TaskSpec(name=task_id, joint_names=("action",), observation=(ObsTerm("cell", "cell"),),
                    action=ActionSpec.discrete(4), joint_limits=((-math.inf, math.inf),),
                    control_period=1.0, physics_dt=1.0, state_fields={"cell": num_states})


class GridTaskEnv(SpecEnv):
    """A grid world seen through its spec: obs = one-hot state `(num_states,)` float64, Discrete(4).

    `simulator` is the grid's unwrapped `GridWorldEnv` (its `mdp` is the model the tabular methods
    solve). `make_env` adds the grid env's time limit (`max_episode_steps`).
    """

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012

    def __init__(self, task_id: str, seed: int | None = None, render_mode: str | None = None) -> None:
        name = task_id.removeprefix(PREFIX)
        if not task_id.startswith(PREFIX) or name not in GRID_NAMES:
            raise ValueError(f"{task_id!r} is not a grid task; known: {', '.join(TASK_IDS)}")
        limited = make_grid_env(name, render_mode=render_mode)
        self.simulator = limited.unwrapped
        self.max_episode_steps: int | None = limited._max_episode_steps  # the grid env's default limit
        num_states = self.simulator.mdp.num_states
        self.task_spec = grid_spec(task_id, num_states)
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (num_states,), np.float64)
        self.action_space = gymnasium.spaces.Discrete(4, seed=seed)
        self._one_hot = np.eye(num_states)
        self._index = -1
        self._setup(seed)

    def robot_state(self) -> dict[str, np.ndarray]:
        """{"cell": one-hot of the current state index `(num_states,)`}."""
        return {"cell": self._one_hot[self._index]}

    def _after_reset(self, first: Any) -> None:
        self._index = first

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        index = discrete_index(self.task_spec, action)
        self._index, reward, terminated, truncated, info = self.simulator.step(index)
        return self.observe(), float(reward), bool(terminated), bool(truncated), info

