"""Grid worlds (Berkeley CS188 style): text maps, the named grids, their MDP, and a Gymnasium env.

Map format (the files in `sim/grids/*.txt`), one line per row, top row first, cells separated by
whitespace so that multi-character rewards work:

    ; a comment line (starts with ';')
    noise = 0.2            optional defaults: noise, gamma, living_reward
    gamma = 0.9
    living_reward = 0
    .  .  .  +1            .  free cell     #  wall     S  start (a free cell; exactly one)
    .  #  .  -1            a number (+1, -1, -100, 0.5): an exit cell with that reward
    S  .  .  .

Every row has the same number of cells and the map has at least one exit. Cells are addressed as
(row, column), row 0 at the top.

Dynamics: actions N, S, E, W move one cell; the intended move happens with probability 1 − noise and
each of the two perpendicular moves with probability noise/2; a move into a wall or off the grid
stays put. Every move earns the living reward. An exit cell allows only the action `exit`, which
collects the exit's reward and moves to a single absorbing terminal state (the last state index).
States are the free cells in row-major order, then the terminal state.

The Gymnasium env (`make_grid_env`) has observation Discrete(S) (the state index) and actions
Discrete(4) = N, S, E, W; in an exit cell any action is `exit` and ends the episode (terminated).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robot_rl.errors import ConfigError

from .mdp import FiniteMDP

ACTIONS = ("N", "S", "E", "W", "exit")
"""Action names of a grid MDP; the env uses the first four."""
EXIT = 4
_MOVES = ((-1, 0), (1, 0), (0, 1), (0, -1))  # (drow, dcol) of N, S, E, W
# The move each (action, slot) makes: intended, then the two perpendicular slips (N/S slip to E/W).
_SLOTS = np.array([[0, 2, 3], [1, 2, 3], [2, 0, 1], [3, 0, 1], [4, 4, 4]])

GRID_NAMES = ("book", "bridge", "cliff", "cliff2", "discount", "maze")
"""Named grids shipped in sim/grids/; also `open:N` for an N×N open grid (see `open_grid`)."""

_GRID_DIR = Path(__file__).resolve().parent / "grids"
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_SETTING = re.compile(r"^\s*([A-Za-z_]+)\s*=\s*(\S+)\s*$")
_SETTING_LIKE = re.compile(r"^[A-Za-z_]+\s*:")  # 'noise: 0.1' is a mistyped setting, not a row


@dataclass(frozen=True, eq=False)
class GridMap:
    """A parsed grid map with its default dynamics parameters."""

    name: str
    walls: np.ndarray
    """(H, W) bool."""
    exits: np.ndarray
    """(H, W) float64: the exit reward of each exit cell, NaN elsewhere."""
    start: tuple[int, int]
    """(row, column) of the start cell."""
    noise: float = 0.2
    """Probability of slipping to one of the two perpendicular moves (split evenly), in [0, 1)."""
    gamma: float = 0.9
    """Discount factor in (0, 1]."""
    living_reward: float = 0.0
    """Reward of every move (N, S, E, W)."""

    def __post_init__(self) -> None:
        _check_params(self.name, self.noise, self.gamma, self.living_reward)

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape

    def with_params(self, noise: float | None = None, gamma: float | None = None,
                    living_reward: float | None = None) -> GridMap:
        """The same map with some defaults overridden (None keeps the map's own)."""
        return GridMap(self.name, self.walls, self.exits, self.start,
                       self.noise if noise is None else float(noise),
                       self.gamma if gamma is None else float(gamma),
                       self.living_reward if living_reward is None else float(living_reward))


def _check_params(name: str, noise: float, gamma: float, living_reward: float) -> None:
    if not 0.0 <= noise < 1.0:
        raise ConfigError(f"noise: {noise!r} is outside [0, 1) (grid {name})")
    if not 0.0 < gamma <= 1.0:
        raise ConfigError(f"gamma: {gamma!r} is outside (0, 1] (grid {name})")
    if not np.isfinite(living_reward):
        raise ConfigError(f"living_reward: {living_reward!r} is not a finite number (grid {name})")


def parse_grid(text: str, name: str = "<map>") -> GridMap:
    """Parse a map in the format described at the top of this module."""
    rows: list[list[str]] = []
    settings: dict[str, float] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        if "=" in stripped or _SETTING_LIKE.match(stripped):
            match = _SETTING.match(stripped)
            if not match or match.group(1) not in ("noise", "gamma", "living_reward"):
                raise ConfigError(f"grid {name}: bad setting line {stripped!r}; "
                                  "valid settings: noise = X, gamma = X, living_reward = X")
            try:
                settings[match.group(1)] = float(match.group(2))
            except ValueError:
                raise ConfigError(f"grid {name}: {match.group(1)} = {match.group(2)!r} is not a number") \
                    from None
            continue
        rows.append(stripped.split())
    if not rows:
        raise ConfigError(f"grid {name}: the map has no rows")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ConfigError(f"grid {name}: row {i} has {len(row)} cells but row 0 has {width} "
                              "(ragged rows; every row needs the same number of cells)")
    if len(rows) * width > MAX_CELLS:
        raise ConfigError(f"grid {name}: {len(rows)}×{width} cells; a grid holds at most {MAX_CELLS}")
    walls = np.zeros((len(rows), width), dtype=bool)
    exits = np.full((len(rows), width), np.nan)
    starts = []
    for i, row in enumerate(rows):
        for j, token in enumerate(row):
            if token == "#":
                walls[i, j] = True
            elif token == "S":
                starts.append((i, j))
            elif _NUMBER.fullmatch(token):
                exits[i, j] = float(token)
            elif token != ".":
                raise ConfigError(f"grid {name}: unknown symbol {token!r} at row {i}, column {j}; "
                                  "cells are . # S or a number like +1, separated by spaces")
    if np.all(np.isnan(exits)):
        raise ConfigError(f"grid {name}: the map has no exit cell (a number such as +1)")
    if len(starts) != 1:
        raise ConfigError(f"grid {name}: the map needs exactly one start cell S, found {len(starts)}")
    return GridMap(name, walls, exits, starts[0], **settings)


def open_grid(n: int, noise: float = 0.2, gamma: float = 0.9, living_reward: float = 0.0) -> GridMap:
    """An n×n grid without walls: +1 exit top-right, −1 exit below it, start bottom-left (n ≥ 2).

    Generated, not shipped, so the benchmark can go to 1000×1000 (10^6 states); `MAX_CELLS` bounds it.
    """
    if n < 2:
        raise ConfigError(f"open grid: size {n} is too small; use n ≥ 2")
    if n * n > MAX_CELLS:
        raise ConfigError(f"open grid: size {n} gives {n * n} cells; at most {MAX_CELLS} "
                          f"(open:{math.isqrt(MAX_CELLS)}, about {_BYTES_PER_CELL * MAX_CELLS >> 20} MiB)")
    exits = np.full((n, n), np.nan)
    exits[0, n - 1], exits[1, n - 1] = 1.0, -1.0
    return GridMap(f"open:{n}", np.zeros((n, n), dtype=bool), exits, (n - 1, 0), noise, gamma,
                   living_reward)


MAX_CELLS = 1_000_000
"""Largest grid (cells): its MDP takes about `_BYTES_PER_CELL` bytes a cell (open:1000: ~0.6 GB)."""
_BYTES_PER_CELL = 650


def grid_names() -> tuple[str, ...]:
    """Names `load_grid` accepts (besides `open:N` and a path to a map file)."""
    return GRID_NAMES


def load_grid(name: str) -> GridMap:
    """A named grid, `open:N`, or a map file (a path ending in .txt or containing a slash)."""
    if name in GRID_NAMES:
        return parse_grid((_GRID_DIR / f"{name}.txt").read_text(encoding="utf-8"), name)
    if name.startswith("open:"):
        size = name[5:]
        if not size.isdigit():
            raise ConfigError(f"grid {name!r}: expected open:N with a whole number N, e.g. open:100")
        return open_grid(int(size))
    if name.endswith(".txt") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"grid file {name!r} does not exist")
        if path.stat().st_size > 4 * MAX_CELLS:  # checked before reading: cells take ≥ 2 bytes each
            raise ConfigError(f"grid file {name!r}: {path.stat().st_size} bytes; a map holds at most "
                              f"{MAX_CELLS} cells")
        return parse_grid(path.read_text(encoding="utf-8"), path.stem)
    raise ConfigError(f"unknown grid {name!r}; valid names: {', '.join(GRID_NAMES)}, open:N, "
                      "or a path to a .txt map")


def grid_mdp(grid: GridMap | str, noise: float | None = None, gamma: float | None = None,
             living_reward: float | None = None) -> FiniteMDP:
    """The FiniteMDP of a grid (None keeps the grid's default). Vectorised: no loop over cells.

    Actions N, S, E, W, exit; fan-out K = 3 (intended move and two slips).
    """
    if isinstance(grid, str):
        grid = load_grid(grid)
    grid = grid.with_params(noise, gamma, living_reward)
    height, width = grid.shape
    free = ~grid.walls
    num_cells = int(free.sum())
    num_states = num_cells + 1
    terminal = num_cells
    index = np.full((height, width), -1, dtype=np.int64)
    index[free] = np.arange(num_cells)
    idx_dtype = np.int32 if num_states < 2**31 else np.int64
    rows, cols = np.nonzero(free)  # row-major, the state order
    is_exit = ~np.isnan(grid.exits[rows, cols])
    exit_states = np.flatnonzero(is_exit)
    moving = ~is_exit
    # Successor of every state under N, S, E, W (a wall or the edge: stay) and under exit.
    targets = np.empty((5, num_states), dtype=idx_dtype)
    targets[:, :] = np.arange(num_states, dtype=idx_dtype)
    for d, (dr, dc) in enumerate(_MOVES):
        r2, c2 = rows + dr, cols + dc
        inside = (r2 >= 0) & (r2 < height) & (c2 >= 0) & (c2 < width)
        inside[inside] = free[r2[inside], c2[inside]]
        targets[d, :num_cells][inside] = index[r2[inside], c2[inside]]
    targets[EXIT, exit_states] = terminal
    # Slot k of action a goes where move _SLOTS[a][k] goes: the intended move, then the two slips.
    next_states = targets.T[:, _SLOTS.ravel()].reshape(num_states, len(ACTIONS), 3)
    slip = grid.noise / 2.0
    probs = np.empty((num_states, len(ACTIONS), 3))
    probs[:] = [[1.0 - grid.noise, slip, slip]] * 4 + [[0.0, 0.0, 0.0]]
    probs[exit_states] = 0.0
    probs[exit_states, EXIT, 0] = 1.0
    probs[terminal] = 0.0
    probs[terminal, EXIT, 0] = 1.0  # the terminal state: `exit` is a zero-reward self-loop
    rewards = np.full((num_states, len(ACTIONS), 3), float(grid.living_reward))
    rewards[:, EXIT, :] = 0.0
    rewards[exit_states, EXIT, 0] = grid.exits[rows[exit_states], cols[exit_states]]
    rewards[terminal] = 0.0

    valid = np.zeros((num_states, len(ACTIONS)), dtype=bool)
    valid[:num_cells, :4] = moving[:, None]
    valid[exit_states, EXIT] = True
    valid[terminal, EXIT] = True
    is_terminal = np.zeros(num_states, dtype=bool)
    is_terminal[terminal] = True
    return FiniteMDP(next_states, probs, rewards, valid, is_terminal, grid.gamma, ACTIONS,
                     grid_index=index, start_state=int(index[grid.start]))


def to_rows(mdp: FiniteMDP, per_state: np.ndarray | list) -> list[list[Any]]:
    """A per-state list laid out as the grid's rows (top first), None at walls."""
    if mdp.grid_index is None:
        raise ConfigError("to_rows: this MDP is not a grid world")
    return [[None if s < 0 else per_state[s] for s in row] for row in mdp.grid_index.tolist()]


def make_grid_env(grid: GridMap | str, noise: float | None = None, gamma: float | None = None,
                  living_reward: float | None = None, max_episode_steps: int | None = None,
                  render_mode: str | None = None) -> Any:
    """A Gymnasium env of a grid, wrapped in a TimeLimit (default: 100 + 4 × number of states).

    Needs gymnasium (the `train` extra); the MDP and the solvers do not.
    """
    from gymnasium.wrappers import TimeLimit

    mdp = grid_mdp(grid, noise, gamma, living_reward)
    env = _env_class()(mdp, render_mode=render_mode)
    limit = max_episode_steps if max_episode_steps is not None else 100 + 4 * mdp.num_states
    return TimeLimit(env, max_episode_steps=limit)


@functools.cache
def _env_class() -> type:
    """Defined on first use so that the grid MDP needs numpy only."""
    import gymnasium as gym

    class GridWorldEnv(gym.Env):
        """Samples the grid MDP: obs = state index, actions N, S, E, W (exit in exit cells)."""

        metadata: ClassVar[dict] = {"render_modes": ["ansi"]}  # type: ignore[misc]  # as gymnasium's own envs

        def __init__(self, mdp: FiniteMDP, render_mode: str | None = None) -> None:
            if mdp.grid_index is None or mdp.start_state is None:
                raise ConfigError("GridWorldEnv needs a grid MDP (from grid_mdp)")
            if render_mode not in (None, "ansi"):
                raise ConfigError(f"render_mode: {render_mode!r} is not valid; choose one of: ansi")
            self.mdp = mdp
            self.render_mode = render_mode
            self.observation_space = gym.spaces.Discrete(mdp.num_states)
            self.action_space = gym.spaces.Discrete(4)
            self._cum = np.cumsum(mdp.probs, axis=2)
            self._state = -1

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[int, dict]:
            super().reset(seed=seed)
            self._state = int(self.mdp.start_state)  # type: ignore[arg-type]
            return self._state, {}

        def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
            s = self._state
            if s < 0 or self.mdp.terminal[s]:
                raise RuntimeError("step() called before reset() or after the episode terminated")
            a = int(action)
            if not 0 <= a < 4:
                raise ValueError(f"action {action!r} is not in Discrete(4)")
            if not self.mdp.valid[s, a]:
                a = EXIT
            k = int(np.searchsorted(self._cum[s, a], self.np_random.random(), side="right"))
            k = min(k, self._cum.shape[2] - 1)
            s2 = int(self.mdp.next_states[s, a, k])
            reward = float(self.mdp.rewards[s, a, k])
            self._state = s2
            return s2, reward, bool(self.mdp.terminal[s2]), False, {"action": ACTIONS[a]}

        def render(self) -> str | None:
            if self.render_mode != "ansi":
                return None
            lines = []
            for row in self.mdp.grid_index.tolist():  # type: ignore[union-attr]
                lines.append(" ".join("#" if c < 0 else ("A" if c == self._state else ".") for c in row))
            return "\n".join(lines)

    return GridWorldEnv


def __getattr__(name: str) -> Any:
    if name == "GridWorldEnv":  # the class exists once gymnasium is imported
        return _env_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
