"""One world of the batched engine as a plain Gymnasium env: what `make_env` returns for the tasks that
exist only on the engine (the cube tasks, tasks declared in a launch file), and what evaluation,
`robot-rl play`, evaluation videos and robustness grids step on the simulator a policy was trained on.

It is the engine with `num_envs=1`, one thread and no autoreset (an ended episode waits for the next
`reset`, as a Gymnasium env does), seen through the engine's declared interface: `task_spec`, `model`
and `data` (the world's, so a renderer draws what is simulated), `robot_state()`. `reset(seed=s)` seeds
the world with s (world 0 of an engine seeded s, so `sync`'s sub-env i is `batched`'s world i). The
engine's time limit truncates the episode itself. Each step's info carries world 0's part of the
engine's info and what the task state reports for the episode so far (`successes` for the cube), so an
episode's last info is what the batched engine puts in `final_info`.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from .task import EngineTask


def first_world(info: dict[str, Any]) -> dict[str, Any]:
    """A vector env's info (arrays over worlds, each key with its `_key` mask) as world 0's own dict."""
    single: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not bool(mask[0]):
            continue
        if isinstance(value, dict):
            single[key] = first_world(value)
        else:  # a numpy scalar as a Python one, as a single env reports it (Gymnasium batches those)
            single[key] = value[0].item() if isinstance(value[0], np.generic) else value[0]
    return single


class EngineWorldEnv(gymnasium.Env):
    """`task` (an engine task id, or its `EngineTask`) on one world: obs `(obs_dim,)` float64, action
    `(act_dim,)` in [-1, 1]. `randomize`: a RandomizationConfig drawn per episode by the engine."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute); sim.rendering draws it

    def __init__(self, task: str | EngineTask, seed: int | None = None, randomize: Any = None,
                 max_episode_steps: int | None = None, render_mode: str | None = None) -> None:
        from .batched import BatchedEngine

        if isinstance(task, str):
            from ..registry import engine_task

            definition: EngineTask = engine_task(task)
        else:
            definition = task
        self.engine = BatchedEngine(definition, 1, seed=seed, threads=1, randomize=randomize,
                                    max_episode_steps=max_episode_steps, autoreset=False)
        self.task_spec = self.engine.spec
        world = self.engine.worlds[0]
        self.model, self.data = world.model, world.data
        self.max_episode_steps: int | None = self.engine.max_episode_steps
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.task_spec.control_period}
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.task_spec.obs_dim,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.task_spec.act_dim,), np.float32, seed=seed)

    def use_randomizer(self, randomizer: Any) -> None:
        """Randomize the world from its next episode on (`sim.randomization.apply_randomization`)."""
        self.engine.randomizer = randomizer

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise ValueError(f"an engine world takes no reset options, got {sorted(options)}")
        super().reset(seed=seed)
        obs, info = self.engine.reset(seed=seed)
        out = first_world(info)
        if self.engine.randomizer is not None:  # the episode's draws, as the task envs report them
            out["randomization"] = self.engine.worlds[0].randomization
        return obs[0], {**out, **self._episode_info()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        actions = np.asarray(action, dtype=np.float64).reshape(1, -1)
        obs, reward, terminated, truncated, info = self.engine.step(actions)
        out = {**first_world(info), **self._episode_info()}
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), out

    def _episode_info(self) -> dict[str, Any]:
        state = self.engine.task_state
        return {} if state is None else state.episode_info(0)

    def robot_state(self) -> dict[str, np.ndarray]:
        """The world's state fields and goals (field -> `(size,)`), as a robot measures them."""
        return self.engine.world_state(0)

    def close(self) -> None:
        self.engine.close()
