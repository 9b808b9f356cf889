"""One world of a declared task as a Gymnasium env: what `make_env` (evaluation, sync vectorization)
returns for a `declared:` id. It steps the same engine as the batched vectorization, one world."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from ..engine.batched import BatchedEngine
from .source import load


class DeclaredEnv(gymnasium.Env):
    """A declared task, one world; `task_spec`, `robot_state()` and `max_episode_steps` as every task."""

    def __init__(self, task_id: str, seed: int | None = None, render_mode: str | None = None) -> None:
        self.engine = BatchedEngine(load(task_id), 1, seed=seed, threads=1, autoreset=False)
        self.task_spec = self.engine.spec
        self.max_episode_steps: int | None = self.engine.max_episode_steps
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.task_spec.obs_dim,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.task_spec.act_dim,), np.float32, seed=seed)
        self._seed = seed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self.engine.reset(seed=seed)
        return obs[0], info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.engine.step(np.asarray(action).reshape(1, -1))
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def robot_state(self) -> dict[str, np.ndarray]:
        """The state a robot would measure (the spec's fields and the default-pose goal), flat copies."""
        return self.engine.world_state(0)

    def close(self) -> None:
        self.engine.close()
