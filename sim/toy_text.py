"""Gymnasium's toy-text environments as FiniteMDPs, and one entry point for any discrete env.

FrozenLake-v1, FrozenLake8x8-v1, CliffWalking-v1 and Taxi-v4 publish their model as
`env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]`. A transition that
terminates leads, in the MDP, to a terminal state of value 0. When every live transition into the
state it lands in terminates (FrozenLake's holes and goal, CliffWalking's goal), that state is marked
terminal and made a zero-reward self-loop, so state indices are the env's. Otherwise (Taxi: a taxi can
drive into a "passenger delivered" state from another one that no episode reaches) one absorbing
state is appended, index S_env, and every terminating transition goes there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_rl.errors import ConfigError

from .gridworld import GRID_NAMES, make_grid_env
from .mdp import FiniteMDP

TOY_TEXT_IDS = ("FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1", "Taxi-v4")
"""Gymnasium ids whose model `toy_text_mdp` reads."""

_ACTION_NAMES = {
    "FrozenLakeEnv": ("LEFT", "DOWN", "RIGHT", "UP"),
    "CliffWalkingEnv": ("UP", "RIGHT", "DOWN", "LEFT"),
    "TaxiEnv": ("SOUTH", "NORTH", "EAST", "WEST", "PICKUP", "DROPOFF"),
}


def toy_text_mdp(env: Any, gamma: float = 0.99, **make_kwargs: Any) -> FiniteMDP:
    """The FiniteMDP of a toy-text env: a Gymnasium id (made with `make_kwargs`) or an env with `P`.

    All actions are valid in every state; `start_state` is set when the start is a single state.
    """
    if isinstance(env, str):
        env = make_discrete_env(env, **make_kwargs)
    model = getattr(getattr(env, "unwrapped", env), "P", None)
    if not isinstance(model, dict):
        raise ConfigError(f"{_name(env)} does not publish its model as `unwrapped.P`; "
                          f"toy-text ids that do: {', '.join(TOY_TEXT_IDS)}")
    num_states = len(model)
    num_actions = len(model[0])
    fan_out = max(len(model[s][a]) for s in range(num_states) for a in range(num_actions))
    rows = [(s, a, k, float(p), int(s2), float(r), bool(done))
            for s in range(num_states) for a in range(num_actions)
            for k, (p, s2, r, done) in enumerate(model[s][a])]
    s_, a_, k_, p_, s2_, r_, done_ = (np.array(col) for col in zip(*rows, strict=True))
    ends = np.unique(s2_[done_])
    terminal = np.zeros(num_states, dtype=bool)
    terminal[ends] = True
    # Consistent iff no live transition from a non-terminal state enters a terminal one unterminated.
    if np.any(terminal[s2_] & ~done_ & ~terminal[s_] & (p_ > 0)):
        num_states += 1  # one absorbing state takes every terminating transition
        terminal = np.zeros(num_states, dtype=bool)
        terminal[-1] = True
        s2_ = np.where(done_, num_states - 1, s2_)
    next_states = np.broadcast_to(np.arange(num_states)[:, None, None],
                                  (num_states, num_actions, fan_out)).copy()
    probs = np.zeros((num_states, num_actions, fan_out))
    rewards = np.zeros((num_states, num_actions, fan_out))
    keep = ~terminal[s_]
    next_states[s_[keep], a_[keep], k_[keep]] = s2_[keep]
    probs[s_[keep], a_[keep], k_[keep]] = p_[keep]
    rewards[s_[keep], a_[keep], k_[keep]] = r_[keep]
    probs[terminal, :, 0] = 1.0  # terminal: a zero-reward self-loop
    unwrapped = getattr(env, "unwrapped", env)
    names = _ACTION_NAMES.get(type(unwrapped).__name__, tuple(str(a) for a in range(num_actions)))
    isd = getattr(unwrapped, "initial_state_distrib", getattr(unwrapped, "isd", None))
    start = None
    if isd is not None and np.count_nonzero(isd) == 1:
        start = int(np.flatnonzero(isd)[0])
    return FiniteMDP(next_states, probs, rewards, np.ones((num_states, num_actions), dtype=bool),
                     terminal, gamma, names, start_state=start)


def make_discrete_env(name: str, **kwargs: Any) -> Any:
    """A Gymnasium env with Discrete observations and actions, for tabular methods.

    `name` is a grid (a name in GRID_NAMES, `open:N` or a `.txt` map; `kwargs` go to `make_grid_env`)
    or a Gymnasium id (`kwargs` go to `gymnasium.make`). An unknown id, or an env whose observation
    or action space is not Discrete, raises ConfigError naming it.
    """
    if name in GRID_NAMES or name.startswith("open:") or name.endswith(".txt"):
        return make_grid_env(name, **kwargs)
    import gymnasium as gym

    try:
        env = gym.make(name, **kwargs)
    except gym.error.Error as err:
        raise ConfigError(f"unknown environment {name!r} ({err}); grids: {', '.join(GRID_NAMES)}, "
                          f"open:N; Gymnasium toy-text ids: {', '.join(TOY_TEXT_IDS)}") from None
    except TypeError as err:
        raise ConfigError(f"environment {name!r}: {err}") from None
    try:
        check_discrete(env, name)
    except ConfigError:
        env.close()
        raise
    return env


def check_discrete(env: Any, name: str | None = None) -> None:
    """Raise ConfigError unless both spaces of `env` are `gymnasium.spaces.Discrete`."""
    from gymnasium.spaces import Discrete

    for kind in ("observation", "action"):
        space = getattr(env, f"{kind}_space", None)
        if not isinstance(space, Discrete):
            raise ConfigError(f"{name or _name(env)}: the {kind} space {space} is not Discrete; "
                              "tabular methods need Discrete observation and action spaces")


def _name(env: Any) -> str:
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None) or type(env).__name__
