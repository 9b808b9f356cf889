"""Iterative policy evaluation: V ← R_π + γ P_π V until max |ΔV| < tol (Sutton & Barto §4.1).

Two sweep orders:
- synchronous (Jacobi): every state is backed up from the previous sweep's values;
- in place (Gauss–Seidel by blocks): states are backed up block by block in index order, each block
  vectorised, and later blocks already see the earlier blocks' new values. `block_size=1` is the
  textbook per-state in-place sweep; larger blocks trade a little of its speed-up per sweep for
  numpy's speed per state.

P_π is kept sparse: for each state a few (successor, γ·probability) columns, so a sweep is a handful
of gathers and multiply-adds over (S,) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.sim.mdp import FiniteMDP, policy_matrix


@dataclass(frozen=True, eq=False)
class SolveResult:
    """What every dynamic-programming solver returns."""

    values: np.ndarray
    """(S,) state values; 0 at terminal states."""
    policy: np.ndarray
    """(S,) action indices (greedy w.r.t. `values`), or for evaluation the evaluated policy."""
    iterations: int
    """Value iteration and evaluation: sweeps. Policy iteration and GPI: improvement rounds."""
    sweeps: int
    """Bellman backups over all states, in total."""
    converged: bool
    """Whether the last sweep (or round) changed no value by `tol` or more."""
    delta: float
    """max |ΔV| of the last sweep (or round)."""


def check_stopping(tol: float, max_sweeps: int, iterations: int | None) -> None:
    """Shared validation of the stopping rule: tol > 0, caps ≥ 1 (≥ 0 for an exact count)."""
    if not tol > 0:
        raise ConfigError(f"tol: {tol!r} must be > 0")
    if max_sweeps < 1:
        raise ConfigError(f"max_iterations: {max_sweeps!r} must be ≥ 1")
    if iterations is not None and iterations < 0:
        raise ConfigError(f"iterations: {iterations!r} must be ≥ 0")


def initial_values(mdp: FiniteMDP, values: np.ndarray | None) -> np.ndarray:
    """A float64 copy of `values` (zeros by default) with terminal states set to 0."""
    if values is None:
        return np.zeros(mdp.num_states)
    out = np.array(values, dtype=np.float64)
    if out.shape != (mdp.num_states,):
        raise ConfigError(f"values: expected shape ({mdp.num_states},), got {out.shape}")
    out[mdp.terminal] = 0.0
    return out


class PolicyBackup:
    """The sparse Bellman expectation backup of one policy: V'(s) = base(s) + Σ_m w[m, s] V(next[m, s])."""

    def __init__(self, mdp: FiniteMDP, policy: np.ndarray) -> None:
        policy = np.asarray(policy)
        states = np.arange(mdp.num_states)
        if policy.ndim == 1:
            policy_matrix(mdp, policy)  # validates
            nexts = mdp.next_states[states, policy].T  # (K, S)
            weights = mdp.gamma * mdp.probs[states, policy].T
            self.base = np.ascontiguousarray(mdp.expected_reward()[states, policy])
        else:
            pi = policy_matrix(mdp, policy)
            nexts = mdp.next_states.reshape(mdp.num_states, -1).T  # (A·K, S)
            weights = (mdp.gamma * pi[:, :, None] * mdp.probs).reshape(mdp.num_states, -1).T
            self.base = (pi * mdp.expected_reward()).sum(axis=1)
        used = np.any(weights != 0, axis=1)
        self.nexts = np.ascontiguousarray(nexts[used], dtype=np.intp)
        self.weights = np.ascontiguousarray(weights[used])

    def apply(self, values: np.ndarray, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Backed-up values of states [lo, hi) (all by default) from `values` (S,)."""
        hi = values.shape[0] if hi is None else hi
        out = self.base[lo:hi].copy()
        tmp = np.empty_like(out)
        for nxt, w in zip(self.nexts[:, lo:hi], self.weights[:, lo:hi], strict=True):
            np.take(values, nxt, out=tmp, mode="clip")  # indices range-checked by FiniteMDP
            tmp *= w
            out += tmp
        return out


def policy_evaluation(mdp: FiniteMDP, policy: np.ndarray, *, tol: float = 1e-8,
                      max_iterations: int = 100_000, iterations: int | None = None,
                      in_place: bool = False, block_size: int | None = None,
                      values: np.ndarray | None = None) -> SolveResult:
    """Evaluate a deterministic (S,) or stochastic (S, A) policy.

    Stops when a sweep changes no value by `tol` or more, or after `max_iterations` sweeps;
    `iterations=K` runs exactly K sweeps. `in_place` sweeps Gauss–Seidel by blocks of `block_size`
    states (default: S // 64, at least 1, so small MDPs get the per-state sweep). `values` is the
    starting V (zeros by default).
    """
    check_stopping(tol, max_iterations, iterations)
    backup = PolicyBackup(mdp, policy)
    v = initial_values(mdp, values)
    num_states = mdp.num_states
    if block_size is None:
        block_size = max(1, num_states // 64)
    if block_size < 1:
        raise ConfigError(f"block_size: {block_size!r} must be ≥ 1")
    cap = max_iterations if iterations is None else iterations
    sweeps, delta = 0, np.inf
    while sweeps < cap:
        if in_place:
            delta = 0.0
            for lo in range(0, num_states, block_size):
                hi = min(lo + block_size, num_states)
                new = backup.apply(v, lo, hi)
                delta = max(delta, float(np.max(np.abs(new - v[lo:hi]))))
                v[lo:hi] = new
        else:
            new = backup.apply(v)
            delta = float(np.max(np.abs(new - v)))
            v = new
        sweeps += 1
        if iterations is None and delta < tol:
            break
    evaluated = np.array(policy)
    return SolveResult(v, evaluated, sweeps, sweeps, bool(delta < tol), delta)
