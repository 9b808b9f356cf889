"""Policy improvement, policy iteration and generalized policy iteration (Sutton & Barto §4.2–4.6).

Policy iteration alternates a full evaluation of π with the greedy improvement π' = argmax_a Q^π and
stops when the policy is stable. Generalized policy iteration (modified policy iteration) does only
k evaluation sweeps per improvement: k = 1 is exactly value iteration (the greedy policy's backup of V
is the max backup), and k → ∞ is policy iteration.
"""

from __future__ import annotations

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.sim.mdp import FiniteMDP

from .policy_evaluation import SolveResult, check_stopping, initial_values, policy_evaluation


def policy_improvement(mdp: FiniteMDP, values: np.ndarray, current: np.ndarray | None = None,
                       tie_tol: float = 1e-9) -> np.ndarray:
    """(S,) greedy actions w.r.t. Q computed from `values` (S,), among each state's valid actions.

    Actions whose Q is within `tie_tol` · max(1, |max Q|) of the best are ties: the `current` action
    is kept if it is one of them (so policy iteration stops instead of cycling between equals),
    otherwise the lowest action index wins — deterministic either way.
    """
    q = mdp.q_from_v(np.asarray(values, dtype=np.float64))
    best = q.max(axis=1, keepdims=True)
    tied = q >= best - tie_tol * np.maximum(1.0, np.abs(best))
    policy = np.argmax(tied, axis=1)  # first True: the lowest tied index
    if current is not None:
        current = np.asarray(current)
        keep = tied[np.arange(mdp.num_states), current]
        policy = np.where(keep, current, policy)
    return policy


def first_valid_policy(mdp: FiniteMDP) -> np.ndarray:
    """(S,): the lowest valid action in each state (policy iteration's default start)."""
    return np.argmax(mdp.valid, axis=1)


def policy_iteration(mdp: FiniteMDP, policy: np.ndarray | None = None, *, tol: float = 1e-10,
                     max_iterations: int = 1_000, iterations: int | None = None,
                     max_eval_sweeps: int = 100_000) -> SolveResult:
    """Policy iteration from `policy` (default: the first valid action in each state).

    Each round evaluates π (iteratively, warm-started from the last values, to tol·(1−γ) so that
    V is within ≈ tol of V^π) and improves it greedily. Stops when the policy is stable, after
    `max_iterations` rounds, or after exactly `iterations` rounds. The result holds V^π of the last
    evaluated policy and the greedy policy w.r.t. it (equal to π when converged).
    """
    check_stopping(tol, max_iterations, iterations)
    pi = first_valid_policy(mdp) if policy is None else np.asarray(policy).copy()
    eval_tol = tol * (1.0 - mdp.gamma) if mdp.gamma < 1.0 else tol
    v = initial_values(mdp, None)
    cap = max_iterations if iterations is None else iterations
    rounds, sweeps, stable, delta = 0, 0, False, np.inf
    while rounds < cap:
        evaluation = policy_evaluation(mdp, pi, tol=eval_tol, max_iterations=max_eval_sweeps, values=v)
        sweeps += evaluation.sweeps
        delta = float(np.max(np.abs(evaluation.values - v)))
        v = evaluation.values
        improved = policy_improvement(mdp, v, current=pi)
        rounds += 1
        stable = bool(np.array_equal(improved, pi)) and evaluation.converged
        pi = improved
        if stable and iterations is None:
            break
    return SolveResult(v, pi, rounds, sweeps, stable, delta)


def generalized_policy_iteration(mdp: FiniteMDP, k: int, *, tol: float = 1e-8,
                                 max_iterations: int = 100_000, iterations: int | None = None,
                                 values: np.ndarray | None = None) -> SolveResult:
    """GPI: improve greedily, then k synchronous evaluation sweeps of that policy; repeat.

    Stops when a round changes no value by `tol` or more (or after `max_iterations` rounds, or after
    exactly `iterations` rounds). The returned policy is greedy w.r.t. the returned values.
    """
    check_stopping(tol, max_iterations, iterations)
    if k < 1:
        raise ConfigError(f"k: {k!r} evaluation sweeps per improvement must be ≥ 1")
    v = initial_values(mdp, values)
    pi = policy_improvement(mdp, v)
    cap = max_iterations if iterations is None else iterations
    rounds, delta = 0, np.inf
    while rounds < cap:
        new = policy_evaluation(mdp, pi, tol=tol, iterations=k, values=v).values
        delta = float(np.max(np.abs(new - v)))
        v = new
        rounds += 1
        pi = policy_improvement(mdp, v, current=pi)
        if iterations is None and delta < tol:
            break
    return SolveResult(v, pi, rounds, rounds * k, bool(delta < tol), delta)
