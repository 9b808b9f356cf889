"""`WorldEnv`: one world of an engine task as a Gymnasium env, for the tasks that exist only on the engine
(the cube tasks): `make_env`, evaluation and `vectorization: sync/async` step it like any task env.

It is a `BatchedEngine` of one world without autoreset: `reset(seed=s)` seeds the world with s (world 0
of an engine seeded s, so sync's sub-env i is batched's world i), `step` is one control period. Each
step's info carries what the task state reports for the episode so far (`successes` for the cube), so
that an episode's last info is what the batched engine puts in `final_info`.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from robot_rl.spec import TaskSpec

from .engine.batched import BatchedEngine
from .engine.task import EngineTask


class WorldEnv(gymnasium.Env):
    """One world of `task`; `task_spec`, `robot_state()` and `max_episode_steps` as the task envs have."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(self, task: EngineTask, seed: int | None = None) -> None:
        self.engine = BatchedEngine(task, 1, seed=seed, threads=1, autoreset=False)
        self.task_spec: TaskSpec = self.engine.spec
        self.max_episode_steps = task.max_episode_steps
        dim = self.task_spec.obs_dim
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (dim,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.task_spec.act_dim,), np.float32)
        self._seed = seed

    @property
    def model(self) -> Any:
        return self.engine.worlds[0].model

    @property
    def data(self) -> Any:
        return self.engine.worlds[0].data

    def use_randomizer(self, randomizer: Any) -> None:
        """Randomize the world from its next episode on (`sim.randomization.apply_randomization`)."""
        self.engine.randomizer = randomizer

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, _ = self.engine.reset(seed=seed)
        info = self._info()
        if self.engine.randomizer is not None:  # the episode's draws, as the task envs report them
            info["randomization"] = self.engine.worlds[0].randomization
        return obs[0], info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        batch = np.asarray(action, dtype=np.float64)[None]
        obs, reward, terminated, truncated, info = self.engine.step(batch)
        out = self._info()
        if "physics_failure" in info:
            out["physics_failure"] = True
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), out

    def _info(self) -> dict[str, Any]:
        state = self.engine._state
        return {} if state is None else state.episode_info(0)

    def robot_state(self) -> dict[str, np.ndarray]:
        """The world's state fields and goals (field -> flat array), what the spec's terms read."""
        return self.engine.world_state(0)

    def close(self) -> None:
        self.engine.close()
