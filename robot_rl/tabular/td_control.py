"""The episode loop shared by tabular TD control (Q-learning, SARSA) on a Discrete Gymnasium env.

    Q(s, a) ← Q(s, a) + α [r + γ · bootstrap(s', a') − Q(s, a)]

Each algorithm supplies only its bootstrap: max_a' Q(s', a') (Q-learning) or Q(s', a') for the
next action a' its ε-greedy policy takes (SARSA). Termination cuts the bootstrap (the target is r);
a time-limit truncation does not: the episode ends but the target still bootstraps from s'
(SB3's lesson: a timeout is not a terminal state). Seeded: the env is reset with `seed` once and a
numpy Generator seeded with `seed` draws every exploration decision, so a seed fixes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from robot_rl.config import check
from robot_rl.sim.toy_text import check_discrete

from .exploration import EpsilonSchedule, epsilon_greedy

Bootstrap = Callable[[np.ndarray, int], float]
"""(Q(s', ·) of shape (A,), next action a') → the value the target bootstraps from."""


MAX_EPISODES = 10_000_000
"""Most episodes one run takes: three (episodes,) arrays of results, about 200 MB at the bound."""


@dataclass(frozen=True)
class TDConfig:
    """Tabular TD control; the defaults are Sutton & Barto's cliff-walking example 6.6."""

    episodes: int = 500
    """Episodes to run, ≥ 1."""
    alpha: float = 0.5
    """Step size α in (0, 1]."""
    gamma: float = 1.0
    """Discount γ in (0, 1]."""
    epsilon: float = 0.1
    """ε of the first episode, in [0, 1]."""
    epsilon_end: float | None = None
    """ε after decay (None: no decay)."""
    epsilon_schedule: Literal["fixed", "linear", "exponential"] = "fixed"
    """How ε decays; see `EpsilonSchedule`."""
    epsilon_decay_episodes: int | None = None
    """Episodes over which ε decays (None: all of them)."""
    seed: int = 0
    """Seeds the env's first reset and the exploration."""
    max_steps: int | None = None
    """Optional cap on steps per episode, a truncation (on top of any TimeLimit of the env)."""
    initial_q: float = 0.0
    """Initial value of every Q(s, a)."""

    def __post_init__(self) -> None:
        check(1 <= self.episodes <= MAX_EPISODES, "episodes",
              f"{self.episodes!r} must be in [1, {MAX_EPISODES}] (each episode's return is kept)")
        check(0.0 < self.alpha <= 1.0, "alpha", f"{self.alpha!r} is outside (0, 1]")
        check(0.0 < self.gamma <= 1.0, "gamma", f"{self.gamma!r} is outside (0, 1]")
        check(self.max_steps is None or self.max_steps >= 1, "max_steps", f"{self.max_steps!r} must be ≥ 1")
        self.schedule()  # validates ε

    def schedule(self) -> EpsilonSchedule:
        return EpsilonSchedule(self.epsilon, self.epsilon_end, self.epsilon_schedule,
                               self.epsilon_decay_episodes or self.episodes)


@dataclass(frozen=True, eq=False)
class TDResult:
    """What TD control returns."""

    q: np.ndarray
    """(S, A) learned action values."""
    policy: np.ndarray
    """(S,) greedy actions w.r.t. q (ties: lowest index)."""
    values: np.ndarray
    """(S,) max_a q."""
    returns: np.ndarray
    """(episodes,) undiscounted return of each episode, as experienced (exploration included)."""
    lengths: np.ndarray
    """(episodes,) steps of each episode."""
    terminated: np.ndarray
    """(episodes,) bool: the episode ended in a terminal state (else it was truncated)."""


def run_td_control(env: Any, bootstrap: Bootstrap, config: TDConfig, on_policy: bool) -> TDResult:
    """Run `config.episodes` episodes of TD control on `env` (Discrete spaces).

    `on_policy`: choose the next action a' before the update and pass it to `bootstrap` (SARSA);
    otherwise a' is chosen after the update, from the updated Q (Q-learning).
    """
    check_discrete(env)
    obs_space, act_space = env.observation_space, env.action_space
    obs0, act0 = int(obs_space.start), int(act_space.start)
    q = np.full((int(obs_space.n), int(act_space.n)), float(config.initial_q))
    rng = np.random.default_rng(config.seed)
    schedule = config.schedule()
    alpha, gamma = config.alpha, config.gamma
    returns = np.zeros(config.episodes)
    lengths = np.zeros(config.episodes, dtype=np.int64)
    terminated_flags = np.zeros(config.episodes, dtype=bool)
    for episode in range(config.episodes):
        epsilon = schedule(episode)
        obs, _ = env.reset(seed=config.seed if episode == 0 else None)
        s = int(obs) - obs0
        a = epsilon_greedy(q[s], epsilon, rng)
        total, steps = 0.0, 0
        while True:
            obs, reward, terminated, truncated, _ = env.step(a + act0)
            s2, r = int(obs) - obs0, float(reward)
            steps += 1
            total += r
            truncated = truncated or (config.max_steps is not None and steps >= config.max_steps)
            a2 = epsilon_greedy(q[s2], epsilon, rng) if on_policy and not terminated else -1
            target = r if terminated else r + gamma * bootstrap(q[s2], a2)
            q[s, a] += alpha * (target - q[s, a])
            if terminated or truncated:
                break
            s, a = s2, (a2 if on_policy else epsilon_greedy(q[s2], epsilon, rng))
        returns[episode], lengths[episode], terminated_flags[episode] = total, steps, terminated
    return TDResult(q, np.argmax(q, axis=1), q.max(axis=1), returns, lengths, terminated_flags)
