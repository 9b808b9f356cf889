"""Dynamic programming against hand-worked and closed-form answers: VI, PI, policy evaluation, GPI."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.toy_text.frozen_lake import generate_random_map

from robot_rl.errors import ConfigError
from robot_rl.sim.gridworld import grid_mdp, to_rows
from robot_rl.sim.mdp import FiniteMDP, uniform_policy
from robot_rl.sim.toy_text import toy_text_mdp
from robot_rl.tabular import (
    generalized_policy_iteration,
    policy_evaluation,
    policy_improvement,
    policy_iteration,
    value_iteration,
)

G = 0.9  # the book grid's discount
CS188_BOOK = [[0.64, 0.74, 0.85, 1.00], [0.57, None, 0.57, -1.00], [0.49, 0.43, 0.48, 0.28]]
BOOK_POLICY = [["E", "E", "E", "exit"], ["N", None, "N", "exit"], ["N", "W", "N", "W"]]


def rows(mdp, values):
    return to_rows(mdp, values.tolist())


def names(mdp, policy):
    return to_rows(mdp, [mdp.action_names[a] for a in policy])


def assert_rows_close(got, expected, atol):
    for grow, erow in zip(got, expected, strict=True):
        for g, e in zip(grow, erow, strict=True):
            assert (g is None) == (e is None)
            if e is not None:
                assert abs(g - e) <= atol, (got, expected)


def linear_solve(mdp: FiniteMDP, policy) -> np.ndarray:
    p_pi, r_pi = mdp.transition_matrix(policy)
    return np.linalg.solve(np.eye(mdp.num_states) - mdp.gamma * p_pi, r_pi)


def unique_optimum(mdp: FiniteMDP, values: np.ndarray) -> np.ndarray:
    """(S,) bool: states whose optimal action is unique (others may break ties either way)."""
    q = mdp.q_from_v(values)
    second = np.sort(q, axis=1)[:, -2] if mdp.num_actions > 1 else np.full(mdp.num_states, -np.inf)
    return second < q.max(axis=1) - 1e-7


# ---------------------------------------------------------------- value iteration on the book grid


def test_book_v1_v2_v3_by_hand():
    mdp = grid_mdp("book")
    # V_1: only the exits earn anything in one step: exit(+1) = 1, exit(-1) = -1.
    v1 = value_iteration(mdp, iterations=1)
    assert rows(mdp, v1.values) == [[0, 0, 0, 1], [0, None, 0, -1], [0, 0, 0, 0]]
    # V_2(0,2): E reaches +1 w.p. 0.8; the slips (N: edge, stays; S: (1,2)) are worth 0.
    v22 = 0.8 * G * 1
    # V_2(1,2): N risks the E slip into -1 (0.1·0.9·(−1)); W bumps the wall and every outcome is 0.
    v2 = value_iteration(mdp, iterations=2)
    assert_rows_close(rows(mdp, v2.values), [[0, 0, v22, 1], [0, None, 0, -1], [0, 0, 0, 0]], 1e-12)
    assert v22 == pytest.approx(0.72)
    # V_3(0,1) = 0.8·0.9·V_2(0,2); V_3(0,2) = 0.8·0.9·1 + 0.1·0.9·V_2(0,2) (the N slip stays put);
    # V_3(1,2) = N: 0.8·0.9·V_2(0,2) + 0.1·0.9·(−1) (E slip) + 0.1·0.9·V_2(1,2) (W slip: wall).
    v31 = 0.8 * G * v22
    v32 = 0.8 * G * 1 + 0.1 * G * v22
    v3_12 = 0.8 * G * v22 + 0.1 * G * -1 + 0.1 * G * 0
    v3 = value_iteration(mdp, iterations=3)
    assert_rows_close(rows(mdp, v3.values), [[0, v31, v32, 1], [0, None, v3_12, -1], [0, 0, 0, 0]], 1e-12)
    assert (v31, v32, v3_12) == pytest.approx((0.5184, 0.7848, 0.4284))
    assert v3.iterations == v3.sweeps == 3 and not v3.converged
    policy = names(mdp, v3.policy)
    assert policy[0][1:] == ["E", "E", "exit"] and policy[1][2:] == ["N", "exit"]


def test_book_converges_to_the_cs188_table():
    mdp = grid_mdp("book")
    result = value_iteration(mdp, tol=1e-10)
    assert result.converged and result.delta < 1e-10
    assert_rows_close(rows(mdp, result.values), CS188_BOOK, 0.005)
    assert names(mdp, result.policy) == BOOK_POLICY
    # Converged means the Bellman optimality equation holds: V = max_a Q(V).
    assert np.allclose(mdp.max_q(result.values), result.values, atol=1e-9)


def test_iteration_cap_and_exact_iterations():
    mdp = grid_mdp("book")
    capped = value_iteration(mdp, max_iterations=4)
    assert capped.sweeps == 4 and not capped.converged
    zero = value_iteration(mdp, iterations=0)
    assert zero.sweeps == 0 and not zero.values.any()
    full = value_iteration(mdp, tol=1e-6)
    exact = value_iteration(mdp, iterations=full.sweeps + 10)  # runs on past convergence
    assert exact.sweeps == full.sweeps + 10 and exact.converged
    with pytest.raises(ConfigError, match="tol"):
        value_iteration(mdp, tol=0)


def test_closed_form_infinite_horizon_value():
    """A state looping on itself with reward 1 forever: V = 1 / (1 − γ)."""
    loop = FiniteMDP(np.zeros((1, 1, 1), dtype=int), np.ones((1, 1, 1)), np.ones((1, 1, 1)),
                     np.ones((1, 1), dtype=bool), np.zeros(1, dtype=bool), 0.95, ("stay",))
    assert value_iteration(loop, tol=1e-12).values[0] == pytest.approx(20.0, abs=1e-9)
    assert policy_evaluation(loop, np.array([0]), tol=1e-12).values[0] == pytest.approx(20.0, abs=1e-9)


def test_living_reward_and_noise_change_the_policy():
    # No noise: the bridge is safe to cross for +10 (CS188 question 1).
    bridge = grid_mdp("bridge", noise=0.0)
    result = value_iteration(bridge)
    start = bridge.start_state
    assert bridge.action_names[result.policy[start]] == "E"
    assert result.values[start] == pytest.approx(10 * G**5)  # 4 moves east, then exit: 10·γ^5
    # With the default noise 0.2 the agent goes for the +1 next to it instead.
    noisy = grid_mdp("bridge")
    assert noisy.action_names[value_iteration(noisy).policy[noisy.start_state]] == "W"


# ---------------------------------------------------------------- VI and PI agree


def random_frozen_lake():
    rng = np.random.default_rng(7)
    desc = generate_random_map(size=6, p=0.8, seed=7)
    env = gym.make("FrozenLake-v1", desc=desc, is_slippery=True, success_rate=float(rng.uniform(0.4, 0.9)))
    return toy_text_mdp(env, gamma=0.95)


@pytest.mark.parametrize("make", [lambda: grid_mdp("book"), lambda: grid_mdp("bridge"),
                                  lambda: grid_mdp("cliff"), lambda: grid_mdp("discount"),
                                  lambda: grid_mdp("maze", living_reward=-0.01), random_frozen_lake],
                         ids=["book", "bridge", "cliff", "discount", "maze", "frozen-lake"])
def test_value_and_policy_iteration_agree(make):
    mdp = make()
    vi = value_iteration(mdp, tol=1e-12)
    pi = policy_iteration(mdp)
    assert pi.converged and vi.converged
    assert np.allclose(pi.values, vi.values, atol=1e-8)
    unique = unique_optimum(mdp, vi.values)
    assert unique.sum() >= 0.5 * mdp.num_states
    assert np.array_equal(vi.policy[unique], pi.policy[unique])
    # Both policies are optimal everywhere: their own values are V*.
    for policy in (vi.policy, pi.policy):
        assert np.allclose(linear_solve(mdp, policy), vi.values, atol=1e-7)


def test_policy_iteration_is_stable_and_short():
    mdp = grid_mdp("book")
    result = policy_iteration(mdp)
    assert result.converged and result.iterations <= 6
    assert names(mdp, result.policy) == BOOK_POLICY
    again = policy_iteration(mdp, policy=result.policy)  # start at the optimum: one round, stable
    assert again.iterations == 1 and np.array_equal(again.policy, result.policy)
    one = policy_iteration(mdp, iterations=1)
    assert one.iterations == 1 and not np.array_equal(one.policy, result.policy)


# ---------------------------------------------------------------- policy evaluation


@pytest.mark.parametrize("in_place, block_size", [(False, None), (True, 1), (True, 3), (True, None)])
def test_policy_evaluation_matches_linear_solve(in_place, block_size):
    mdp = grid_mdp("book", living_reward=-0.04)
    optimal = value_iteration(mdp).policy
    for policy in (uniform_policy(mdp), optimal):
        result = policy_evaluation(mdp, policy, tol=1e-12, in_place=in_place, block_size=block_size)
        assert result.converged
        assert np.allclose(result.values, linear_solve(mdp, policy), atol=1e-10)


def test_in_place_sweep_by_hand_and_faster():
    """State 0 exits with +1; state 1 moves to state 0 (reward 0); γ = 0.5; state 2 is terminal.

    One synchronous sweep from 0: V = (1, 0.5·0, 0) = (1, 0, 0). One in-place per-state sweep backs
    up state 0 first, so state 1 already sees it: V = (1, 0.5·1, 0). A single block of two states is
    a synchronous sweep again.
    """
    rewards = np.array([[[1.0]], [[0.0]], [[0.0]]])
    mdp = FiniteMDP(np.array([[[2]], [[0]], [[2]]]), np.ones((3, 1, 1)), rewards,
                    np.ones((3, 1), dtype=bool), np.array([False, False, True]), 0.5, ("go",))
    policy = np.zeros(3, dtype=int)
    assert policy_evaluation(mdp, policy, iterations=1).values.tolist() == [1.0, 0.0, 0.0]
    assert policy_evaluation(mdp, policy, iterations=1, in_place=True, block_size=1).values.tolist() == \
        [1.0, 0.5, 0.0]
    assert policy_evaluation(mdp, policy, iterations=1, in_place=True, block_size=2).values.tolist() == \
        [1.0, 0.0, 0.0]
    book = grid_mdp("book")
    sync = policy_evaluation(book, uniform_policy(book), tol=1e-10)
    gauss_seidel = policy_evaluation(book, uniform_policy(book), tol=1e-10, in_place=True, block_size=1)
    assert gauss_seidel.sweeps < sync.sweeps
    assert np.allclose(gauss_seidel.values, sync.values, atol=1e-8)


def test_policy_evaluation_rejects_bad_policies():
    mdp = grid_mdp("book")
    with pytest.raises(ConfigError, match="does not allow"):
        policy_evaluation(mdp, np.zeros(mdp.num_states, dtype=int))
    with pytest.raises(ConfigError, match="expected shape"):
        policy_evaluation(mdp, np.zeros(3, dtype=int))
    with pytest.raises(ConfigError, match="block_size"):
        policy_evaluation(mdp, uniform_policy(mdp), in_place=True, block_size=0)


# ---------------------------------------------------------------- policy improvement and GPI


def test_policy_improvement_ties_are_deterministic():
    two = FiniteMDP(np.zeros((1, 2, 1), dtype=int), np.ones((1, 2, 1)), np.ones((1, 2, 1)),
                    np.ones((1, 2), dtype=bool), np.zeros(1, dtype=bool), 0.5, ("a", "b"))
    assert policy_improvement(two, np.zeros(1)).tolist() == [0]  # lowest index
    assert policy_improvement(two, np.zeros(1), current=np.array([1])).tolist() == [1]  # keep the current
    mdp = grid_mdp("book")
    greedy = policy_improvement(mdp, np.zeros(mdp.num_states))
    assert mdp.valid[np.arange(mdp.num_states), greedy].all()  # only valid actions


def test_gpi_with_one_sweep_is_value_iteration():
    mdp = grid_mdp("discount", living_reward=-0.1)
    for k in range(1, 8):
        gpi = generalized_policy_iteration(mdp, 1, iterations=k)
        assert np.allclose(gpi.values, value_iteration(mdp, iterations=k).values, atol=1e-12)
    gpi = generalized_policy_iteration(mdp, 1, tol=1e-10)
    vi = value_iteration(mdp, tol=1e-10)
    assert gpi.iterations == vi.iterations and np.array_equal(gpi.policy, vi.policy)


def test_gpi_with_many_sweeps_is_policy_iteration():
    mdp = grid_mdp("maze", living_reward=-0.01)
    pi = policy_iteration(mdp)
    gpi = generalized_policy_iteration(mdp, 200, tol=1e-10)
    vi = value_iteration(mdp, tol=1e-10)
    assert gpi.converged and np.allclose(gpi.values, pi.values, atol=1e-7)
    unique = unique_optimum(mdp, vi.values)
    assert unique.sum() > 40 and np.array_equal(gpi.policy[unique], vi.policy[unique])
    assert gpi.iterations < vi.iterations / 5  # few improvements, each with many sweeps
    assert gpi.sweeps == 200 * gpi.iterations
    with pytest.raises(ConfigError, match="k:"):
        generalized_policy_iteration(mdp, 0)
