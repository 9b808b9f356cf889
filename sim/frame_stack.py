"""Frame stacking: make the state the last k frames, so that one observation shows motion.

A single image of a game (or a camera frame) says where things are but not where they are going;
Mnih et al. (2015) feed the Q-network the last 4 frames instead. `FrameStack` does this for any
Gymnasium env with array observations: the observation becomes `(k, *frame_shape)`, oldest frame
first, newest last (Gymnasium's FrameStackObservation order). After `reset` every slot holds the first
frame, so the stack is always full and never mixes two episodes.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np


class FrameStack(gymnasium.ObservationWrapper):
    """Observation = the last `k` frames stacked on a new first axis, oldest first."""

    def __init__(self, env: gymnasium.Env, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: the number of stacked frames must be an integer >= 1, got {k!r}")
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gymnasium.spaces.Box):
            raise ValueError(f"FrameStack needs Box observations, got {space}")
        self.k = k
        low = np.broadcast_to(space.low, space.shape)
        high = np.broadcast_to(space.high, space.shape)
        self.observation_space = gymnasium.spaces.Box(
            np.stack([low] * k), np.stack([high] * k), (k, *space.shape), space.dtype)
        self._frames = np.zeros((k, *space.shape), dtype=space.dtype)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        frame, info = self.env.reset(seed=seed, options=options)
        self._frames[:] = frame  # every slot holds the first frame
        return self._frames.copy(), info

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Drop the oldest frame, append the newest (called by `step`)."""
        self._frames[:-1] = self._frames[1:]
        self._frames[-1] = observation
        return self._frames.copy()
