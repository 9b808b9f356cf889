"""Value iteration: V_{k+1}(s) = max_a [R(s, a) + γ Σ_s' P(s'|s, a) V_k(s')] (Sutton & Barto §4.4).

Synchronous sweeps from V_0 = 0, so V_k is the optimal k-step value (what CS188's gridworld shows
after k iterations). One sweep is `FiniteMDP.value_sweep`: a few gathers and multiply-adds over
chunks of states, no Python loop over states; the two value buffers are swapped, never reallocated.
"""

from __future__ import annotations

import numpy as np

from robot_rl.sim.mdp import FiniteMDP

from .policy_evaluation import SolveResult, check_stopping, initial_values
from .policy_iteration import policy_improvement


def value_iteration(mdp: FiniteMDP, *, tol: float = 1e-8, max_iterations: int = 100_000,
                    iterations: int | None = None, values: np.ndarray | None = None) -> SolveResult:
    """Sweep until max |ΔV| < tol (or `max_iterations` sweeps), or exactly `iterations` sweeps.

    Returns V_K and the greedy policy w.r.t. V_K (ties: lowest action index).
    """
    check_stopping(tol, max_iterations, iterations)
    v = initial_values(mdp, values)
    new = np.empty_like(v)
    cap = max_iterations if iterations is None else iterations
    sweeps, delta = 0, np.inf
    while sweeps < cap:
        delta = mdp.value_sweep(v, new)
        v, new = new, v
        sweeps += 1
        if iterations is None and delta < tol:
            break
    return SolveResult(v, policy_improvement(mdp, v), sweeps, sweeps, bool(delta < tol), delta)
