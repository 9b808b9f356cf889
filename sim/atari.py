"""Atari games through ale-py (optional: `pip install ale-py`; its wheel ships the ROMs), for DQN's
image pipeline: 84×84 grey frames, the last 4 stacked (`FrameStack`), seen through a task spec.

Task ids `atari:<game>` (e.g. `atari:pong`) wrap Gymnasium's `ALE/<Game>-v5`: 4 emulator frames per
step (1/15 s at the console's 60 Hz), sticky actions with probability 0.25 and the minimal action set,
as v5 defines them. Each grey 210×160 screen is area-averaged down to 84×84 (two small matrix
products, so no OpenCV is needed); unlike Mnih et al. there is no max over the last two frames.
The state field `frames` is the `(4, 84, 84)` stack (pixel values 0..255, oldest frame first), and
the observation is its flattening through the spec: `(28224,)` float64 holding whole numbers, which
the DQN trainer stores as uint8 and the Nature CNN scales by 1/255.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.spec import ActionSpec, ObsTerm, TaskSpec

from .frame_stack import FrameStack
from .spec_env import SpecEnv, discrete_index

PREFIX = "atari:"
SIZE = 84
STACK = 4
FRAME_SKIP = 4
GAMES = ("pong", "breakout")
"""Games registered as tasks (any ALE game works through `AtariEnv`)."""


def ale_available() -> bool:
    try:
        import ale_py  # noqa: F401
    except ImportError:
        return False
    return True


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """`(n_out, n_in)` weights averaging each output cell's share of the input cells (rows sum to 1)."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """`area_matrix` as (indices, weights), both `(n_out, k)`: the k input cells each output reads."""
    m = area_matrix(n_in, n_out)
    k = int((m > 0).sum(axis=1).max())
    order = np.argsort(m <= 0, axis=1, kind="stable")[:, :k]  # the nonzero columns, in order
    return order, np.take_along_axis(m, order, axis=1).astype(np.float32)


class _Downsample(gymnasium.ObservationWrapper):
    """Grey `(H, W)` uint8 screens → `(84, 84)` uint8 by area averaging (rows, then columns).

    Each output cell reads at most 4 input cells per axis, so the resampling is a few gathers and
    weighted sums (about 0.1 ms), not a matrix product through a multi-threaded BLAS.
    """

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        shape = env.observation_space.shape
        assert shape is not None  # an image: (height, width, channels)
        height, width = shape[:2]
        self._rows, self._row_weights = area_taps(height, SIZE)
        self._cols, self._col_weights = area_taps(width, SIZE)
        self.observation_space = gymnasium.spaces.Box(0, 255, (SIZE, SIZE), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        x = observation.astype(np.float32)
        rows = np.einsum("rk,rkw->rw", self._row_weights, x[self._rows])  # (84, W)
        small = np.einsum("ck,rck->rc", self._col_weights, rows[:, self._cols])  # (84, 84)
        return np.rint(small).astype(np.uint8)


def atari_spec(task_id: str, num_actions: int) -> TaskSpec:
    period = FRAME_SKIP / 60.0
    return TaskSpec(name=task_id, joint_names=("action",), observation=(ObsTerm("frames", "frames"),),
                    action=ActionSpec.discrete(num_actions), joint_limits=((-math.inf, math.inf),),
                    control_period=period, physics_dt=1 / 60.0, state_fields={"frames": STACK * SIZE * SIZE})


class AtariEnv(SpecEnv):
    """An ALE game seen through its spec: obs `(4·84·84,)` float64 (pixels 0..255), Discrete(n)."""

    def __init__(self, task_id: str, seed: int | None = None, render_mode: str | None = None) -> None:
        if not ale_available():
            raise ConfigError(f"task {task_id} needs ale-py: pip install ale-py (its wheel ships the ROMs)")
        import ale_py

        gymnasium.register_envs(ale_py)
        game = task_id.removeprefix(PREFIX)
        name = "".join(part.capitalize() for part in game.split("_"))
        simulator = gymnasium.make(f"ALE/{name}-v5", obs_type="grayscale", frameskip=FRAME_SKIP,
                                   render_mode=render_mode, disable_env_checker=True)
        self.simulator = FrameStack(_Downsample(simulator), STACK)
        self.max_episode_steps: int | None = 108_000 // FRAME_SKIP  # v5's 108k emulator frames
        assert isinstance(simulator.action_space, gymnasium.spaces.Discrete)  # every ALE game's
        self.task_spec = atari_spec(task_id, int(simulator.action_space.n))
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(0.0, 255.0, (self.task_spec.obs_dim,), np.float64)
        self.action_space = gymnasium.spaces.Discrete(self.task_spec.action.num_actions, seed=seed)
        self._frames = np.zeros((STACK, SIZE, SIZE), dtype=np.uint8)
        self._setup(seed)

    def robot_state(self) -> dict[str, np.ndarray]:
        """{"frames": the `(4, 84, 84)` uint8 stack, oldest first}."""
        return {"frames": self._frames}

    def _after_reset(self, first: Any) -> None:
        self._frames = first

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        index = discrete_index(self.task_spec, action)
        self._frames, reward, terminated, truncated, info = self.simulator.step(index)
        return self.observe(), float(reward), bool(terminated), bool(truncated), info
