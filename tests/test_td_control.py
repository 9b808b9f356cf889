"""TD control: hand-computed updates, termination vs truncation, exploration, and the cliff walk."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.errors import ConfigError
from robot_rl.sim.gridworld import make_grid_env
from robot_rl.tabular import EpsilonSchedule, TDConfig, epsilon_greedy, greedy_action, q_learning, sarsa
from robot_rl.tabular.q_learning import q_learning_bootstrap
from robot_rl.tabular.sarsa import sarsa_bootstrap


class Chain(gym.Env):
    """0 → 1 (reward 0) → 2 (reward 1, terminated). One action, so every update is determined."""

    observation_space = spaces.Discrete(3)
    action_space = spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s = 0
        return 0, {}

    def step(self, action):
        self.s += 1
        return self.s, float(self.s == 2), self.s == 2, False, {}


class Loop(gym.Env):
    """One state looping on itself with reward 1; each step ends the episode, terminated or truncated."""

    observation_space = spaces.Discrete(1)
    action_space = spaces.Discrete(1)

    def __init__(self, terminate: bool):
        self.terminate = terminate

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, 1.0, self.terminate, not self.terminate, {}


@pytest.mark.parametrize("algorithm", [q_learning, sarsa])
def test_chain_updates_by_hand(algorithm):
    """α = 0.5, γ = 0.9, Q = 0 at first.

    episode 1: Q(0) += 0.5·(0 + 0.9·Q(1) − Q(0)) = 0;      Q(1) += 0.5·(1 − 0) = 0.5
    episode 2: Q(0) += 0.5·(0.9·0.5 − 0) = 0.225;          Q(1) += 0.5·(1 − 0.5) = 0.75
    episode 3: Q(0) += 0.5·(0.9·0.75 − 0.225) = 0.45;      Q(1) += 0.5·(1 − 0.75) = 0.875
    """
    config = TDConfig(episodes=3, alpha=0.5, gamma=0.9, epsilon=0.0)
    result = algorithm(Chain(), config)
    assert result.q[:, 0].tolist() == pytest.approx([0.45, 0.875, 0.0])
    assert result.returns.tolist() == [1.0, 1.0, 1.0] and result.lengths.tolist() == [2, 2, 2]
    assert result.terminated.all()
    assert result.values.tolist() == pytest.approx([0.45, 0.875, 0.0])


@pytest.mark.parametrize("algorithm", [q_learning, sarsa])
def test_truncation_bootstraps_and_termination_does_not(algorithm):
    """Q += 0.5·(1 + 0.9·Q − Q) per episode when truncated: 0.5, then 0.5 + 0.5·(1.45 − 0.5) = 0.975.

    Terminated, the target is just the reward: 0.5, then 0.75.
    """
    config = TDConfig(episodes=2, alpha=0.5, gamma=0.9, epsilon=0.0)
    truncated = algorithm(Loop(terminate=False), config)
    assert truncated.q[0, 0] == pytest.approx(0.975) and not truncated.terminated.any()
    terminated = algorithm(Loop(terminate=True), config)
    assert terminated.q[0, 0] == pytest.approx(0.75) and terminated.terminated.all()


def test_max_steps_truncates_with_bootstrap():
    """The 2-step chain cut after 1 step by max_steps, Q = 1 at first: Q(0) learns from Q(1) = 1.

    Q(0) = 1 + 0.5·(0 + 0.9·1 − 1) = 0.95, then 0.95 + 0.5·(0.9 − 0.95) = 0.925 (a cut bootstrap: 0.25).
    """
    config = TDConfig(episodes=2, alpha=0.5, gamma=0.9, epsilon=0.0, max_steps=1, initial_q=1.0)
    result = q_learning(Chain(), config)
    assert result.lengths.tolist() == [1, 1] and not result.terminated.any()
    assert result.q[:, 0].tolist() == pytest.approx([0.925, 1.0, 1.0])


def test_bootstraps_differ():
    q_next = np.array([1.0, 3.0, -2.0])
    assert q_learning_bootstrap(q_next, 2) == 3.0  # greedy, whatever the behaviour does
    assert sarsa_bootstrap(q_next, 2) == -2.0  # the action actually taken next


def test_continuous_spaces_are_refused():
    with pytest.raises(ConfigError, match="observation space Box"):
        q_learning(gym.make("Pendulum-v1"))

    class DiscreteObsBoxAction(Loop):
        action_space = spaces.Box(-1.0, 1.0, (1,))

    with pytest.raises(ConfigError, match="action space Box"):
        sarsa(DiscreteObsBoxAction(True))


def test_same_seed_same_result():
    config = TDConfig(episodes=30, alpha=0.3, gamma=0.9, epsilon=0.3, seed=11)
    a = q_learning(make_grid_env("book"), config)
    b = q_learning(make_grid_env("book"), config)
    assert np.array_equal(a.q, b.q) and np.array_equal(a.returns, b.returns)
    c = q_learning(make_grid_env("book"), TDConfig(episodes=30, alpha=0.3, gamma=0.9, epsilon=0.3, seed=12))
    assert not np.array_equal(a.lengths, c.lengths)


def test_config_validation():
    for kwargs, key in (({"epsilon": 1.5}, "epsilon"), ({"epsilon": -0.1}, "epsilon"),
                        ({"alpha": 0.0}, "alpha"), ({"gamma": 1.5}, "gamma"), ({"episodes": 0}, "episodes"),
                        ({"epsilon_end": 2.0, "epsilon_schedule": "linear"}, "epsilon_end"),
                        ({"epsilon_schedule": "cosine"}, "epsilon_schedule")):
        with pytest.raises(ConfigError, match=f"^{key}: "):
            TDConfig(**kwargs)


# ---------------------------------------------------------------- exploration


def test_epsilon_schedules():
    assert EpsilonSchedule(0.3)(1000) == 0.3
    linear = EpsilonSchedule(1.0, 0.1, "linear", 10)
    assert [linear(t) for t in (0, 5, 10, 50)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    exponential = EpsilonSchedule(1.0, 0.01, "exponential", 10)
    assert [exponential(t) for t in (0, 5, 10, 50)] == pytest.approx([1.0, 0.1, 0.01, 0.01])
    with pytest.raises(ConfigError, match="exponential"):
        EpsilonSchedule(1.0, 0.0, "exponential", 10)
    config = TDConfig(episodes=4, epsilon=0.8, epsilon_end=0.0, epsilon_schedule="linear")
    assert [config.schedule()(t) for t in range(5)] == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])


def test_epsilon_greedy_frequencies():
    rng = np.random.default_rng(0)
    q = np.array([0.0, 1.0, 0.5, 0.2])
    assert {epsilon_greedy(q, 0.0, rng) for _ in range(100)} == {1}
    n = 8000
    counts = np.bincount([epsilon_greedy(q, 0.2, rng) for _ in range(n)], minlength=4) / n
    expected = np.array([0.05, 0.85, 0.05, 0.05])  # ε/4 each, plus 1 − ε on the greedy action
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected * (1 - expected) / n))
    tied = np.bincount([greedy_action(np.array([2.0, 0.0, 2.0]), rng) for _ in range(2000)], minlength=3)
    assert tied[1] == 0 and 850 < tied[0] < 1150  # ties split at random


# ---------------------------------------------------------------- Sutton & Barto example 6.6


def greedy_path(policy: np.ndarray) -> list[tuple[int, int]] | None:
    """Cells the greedy policy visits on CliffWalking-v1 (deterministic), start to goal; None if it loops."""
    moves = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}  # UP RIGHT DOWN LEFT
    row, col, cells = 3, 0, []
    for _ in range(48):
        cells.append((row, col))
        if (row, col) == (3, 11):
            return cells
        dr, dc = moves[int(policy[row * 12 + col])]
        row, col = min(max(row + dr, 0), 3), min(max(col + dc, 0), 11)
        if row == 3 and 0 < col < 11:  # the cliff sends the agent back to the start
            row, col = 3, 0
    return None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cliff_walking_q_learning_hugs_the_edge_and_sarsa_keeps_away(seed):
    config = TDConfig(episodes=500, alpha=0.5, gamma=1.0, epsilon=0.1, seed=seed)
    q = q_learning(gym.make("CliffWalking-v1"), config)
    s = sarsa(gym.make("CliffWalking-v1"), config)
    q_path, s_path = greedy_path(q.policy), greedy_path(s.policy)
    # Q-learning: the optimal path, along the row just above the cliff.
    assert q_path == [(3, 0)] + [(2, c) for c in range(12)] + [(3, 11)]
    # SARSA: a safer path, which spends at most the first and the last two cells next to the cliff.
    assert s_path is not None and len(s_path) > len(q_path)
    assert sum(r == 2 for r, _ in s_path) <= 3 and min(r for r, _ in s_path) <= 1
    # Online, with ε = 0.1 throughout, SARSA's exploration falls off the cliff less often.
    assert s.returns.mean() > q.returns.mean() + 5
    assert q.terminated.all() and s.terminated.all()
