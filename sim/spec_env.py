"""The shape every task env shares: a simulator seen through its task spec.

A subclass sets `simulator` (an unwrapped Gymnasium env), `task_spec`, the spaces, then calls
`_setup(seed)`; it implements `robot_state()` (the named state fields) and `step`. The observation is
always `ObservationBuilder(task_spec).build(robot_state())`: what a robot builds from its own state.
`make_env(seed=s)` seeds the first reset only; a reset given its own seed, or any later one, is not
replayed from s.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from robot_rl.spec import ObservationBuilder, TaskSpec, action_to_robot


class SpecEnv(gymnasium.Env):
    simulator: Any
    task_spec: TaskSpec

    def _setup(self, seed: int | None) -> None:
        self._builder = ObservationBuilder(self.task_spec)
        self._seed = seed

    def robot_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _after_reset(self, first: Any) -> None:
        """Keep what the simulator's reset returned, if the state fields are made from it."""

    def observe(self) -> np.ndarray:
        return self._builder.build(self.robot_state())

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None:  # make_env(seed=...) seeds the first reset, unless it is given its own seed
            seed = self._seed
        self._seed = None
        super().reset(seed=seed)
        first, info = self.simulator.reset(seed=seed, options=options)
        self._after_reset(first)
        self._builder.reset()
        return self.observe(), info

    def render(self) -> Any:
        return self.simulator.render()

    def close(self) -> None:
        self.simulator.close()


def discrete_index(spec: TaskSpec, action: Any) -> int:
    """The one action index of a discrete task (checked by the spec: integer, in range, finite)."""
    index = action_to_robot(spec, action)
    if index.size != 1:
        raise ValueError(f"one action index expected, got shape {index.shape}")
    return int(index.reshape(-1)[0])
