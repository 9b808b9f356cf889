"""The engine as a `gymnasium.vector.VectorEnv`, under the contract at the top of sim/vector.py."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from .batched import BatchedEngine, World


class BatchedVectorEnv(gymnasium.vector.VectorEnv):
    """`num_envs` worlds of an engine task: SAME_STEP autoreset, `final_obs`, float64 observations,
    float32 actions in [-1, 1]. `task_spec` is the task's spec; `worlds` the declared per-world
    interface (`world.model`, `world.data`)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(self, engine: BatchedEngine) -> None:
        self.engine = engine
        self.num_envs = engine.num_envs
        self.task_spec = engine.spec
        obs_dim = engine.spec.obs_dim
        self.single_observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
        self.single_action_space = gymnasium.spaces.Box(-1.0, 1.0, (engine.spec.act_dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.autoreset_mode = AutoresetMode.SAME_STEP
        self.privileged_dim = engine.privileged_dim
        """Width of `info["privileged"]`, the critic-only terms (0: none asked for)."""

    @property
    def worlds(self) -> list[World]:
        return self.engine.worlds

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise ValueError(f"the batched engine takes no reset options, got {sorted(options)}")
        if isinstance(seed, (list, tuple)):  # Gymnasium also allows one seed per sub-env: s, s+1, ...
            if list(seed) != list(range(seed[0], seed[0] + self.num_envs)):
                raise ValueError("the batched engine seeds world i with seed + i: pass one integer seed")
            seed = seed[0]
        return self.engine.reset(seed=seed)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        return self.engine.step(actions)

    def close_extras(self, **kwargs: Any) -> None:
        self.engine.close()
