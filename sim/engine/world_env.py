"""One world of the batched engine as a plain Gymnasium env, for what runs one episode at a time on the
simulator a policy was trained on: evaluation, `robot-rl play`, evaluation videos, robustness grids.

It is the engine with `num_envs=1`, one thread and no autoreset (an ended episode waits for the next
`reset`, as a Gymnasium env does), seen through the engine's declared interface: `task_spec`, `model`
and `data` (the world's, so a renderer draws what is simulated), `robot_state()`. The engine's time
limit truncates the episode itself; its randomization (`randomize`) is the engine's own.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np

from ..randomization import Randomizer


def first_world(info: dict[str, Any]) -> dict[str, Any]:
    """A vector env's info (arrays over worlds, each key with its `_key` mask) as world 0's own dict."""
    single: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not bool(mask[0]):
            continue
        single[key] = first_world(value) if isinstance(value, dict) else value[0]
    return single


def _checked_randomizer(task: Any, config: Any, nominal: Any, physics_dt: float) -> Randomizer:
    """The engine's Randomizer, told the control period and the task's name, so that a term the task
    cannot take (a delay longer than one control period) is a ConfigError naming it, as on the
    Gymnasium path, not a value the engine clamps."""
    return Randomizer(config, nominal, physics_dt, task.frame_skip, task.name)


class EngineWorldEnv(gymnasium.Env):
    """`task_id` on one engine world: obs `(obs_dim,)` float64, action `(act_dim,)` in [-1, 1]."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute); sim.rendering draws it

    def __init__(self, task_id: str, seed: int | None = None, randomize: Any = None,
                 max_episode_steps: int | None = None) -> None:
        from ..registry import engine_task
        from .batched import BatchedEngine

        task = engine_task(task_id)
        self.engine = BatchedEngine(task, 1, seed=seed, threads=1, randomize=randomize,
                                    randomizer_cls=functools.partial(_checked_randomizer, task),
                                    max_episode_steps=max_episode_steps, autoreset=False)
        self.task_spec = self.engine.spec
        world = self.engine.worlds[0]
        self.model, self.data = world.model, world.data
        self.max_episode_steps = self.engine.max_episode_steps
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.task_spec.control_period}
        self.render_mode = None
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.task_spec.obs_dim,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.task_spec.act_dim,), np.float32, seed=seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise ValueError(f"an engine world takes no reset options, got {sorted(options)}")
        obs, info = self.engine.reset(seed=seed)
        return obs[0], first_world(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        actions = np.asarray(action, dtype=np.float64)[None]
        obs, reward, terminated, truncated, info = self.engine.step(actions)
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), first_world(info)

    def robot_state(self) -> dict[str, np.ndarray]:
        """The world's state fields and goals (field -> `(size,)`), as a robot measures them."""
        return self.engine.world_state(0)

    def close(self) -> None:
        self.engine.close()
