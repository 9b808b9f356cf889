"""The finite MDP ⟨S, A, P, R, γ⟩ as numpy arrays, stored sparsely with a fixed fan-out K.

Each (state, action) pair lists at most K successor states, so a 10^6-state grid world takes a few
hundred MB and one Bellman backup over every state is a handful of vectorised numpy operations:

    Q(s, a) = Σ_k probs[s, a, k] · (rewards[s, a, k] + γ · V(next_states[s, a, k]))

Unused slots carry probability 0 and any in-range next state. An action that is not allowed in a
state (an exit cell allows only `exit`) has `valid[s, a] = False`, all-zero probabilities, and
Q = −inf. Terminal states are absorbing: every used slot is a self-loop with reward 0, so their value
is 0 under any policy. Duplicate successors in one row are allowed (two moves that bump one wall).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from robot_rl.errors import ConfigError


@dataclass(frozen=True, eq=False)
class FiniteMDP:
    """A finite MDP; S states, A actions, fan-out K. Arrays are not copied; do not mutate them."""

    next_states: np.ndarray
    """(S, A, K) integer: successor state of each slot."""
    probs: np.ndarray
    """(S, A, K) float64: probability of each slot; sums to 1 over K for a valid action, 0 otherwise."""
    rewards: np.ndarray
    """(S, A, K) float64: reward R(s, a, s') of each slot."""
    valid: np.ndarray
    """(S, A) bool: which actions a state allows; every state allows at least one."""
    terminal: np.ndarray
    """(S,) bool: absorbing states of value 0."""
    gamma: float
    """Discount factor in (0, 1]."""
    action_names: tuple[str, ...]
    """The A action names, e.g. ("N", "S", "E", "W", "exit")."""
    state_names: tuple[str, ...] | None = None
    """Optional S names (small MDPs only)."""
    grid_index: np.ndarray | None = None
    """Optional (H, W) int: the state of each grid cell, −1 at walls (grid worlds only)."""
    start_state: int | None = None
    """Optional state an episode starts in."""

    def __post_init__(self) -> None:
        gamma = self.gamma
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating)) \
                or not 0.0 < float(gamma) <= 1.0:
            raise ConfigError(f"gamma: {gamma!r} is outside (0, 1]")
        object.__setattr__(self, "gamma", float(gamma))
        ns, p, r = self.next_states, self.probs, self.rewards
        if not (isinstance(ns, np.ndarray) and ns.ndim == 3 and np.issubdtype(ns.dtype, np.integer)):
            raise ConfigError("next_states: expected an integer array of shape (S, A, K)")
        shape = ns.shape
        num_states, num_actions, _ = shape
        if num_states < 1 or num_actions < 1 or shape[2] < 1:
            raise ConfigError(f"next_states: shape {shape} has an empty axis")
        for name, arr in (("probs", p), ("rewards", r)):
            if not isinstance(arr, np.ndarray) or arr.shape != shape:
                raise ConfigError(f"{name}: expected shape {shape} like next_states, got "
                                  f"{getattr(arr, 'shape', type(arr).__name__)}")
            if not np.all(np.isfinite(arr)):
                raise ConfigError(f"{name}: contains NaN or infinity")
        if self.valid.shape != (num_states, num_actions) or self.valid.dtype != bool:
            raise ConfigError(f"valid: expected a bool array of shape {(num_states, num_actions)}")
        if self.terminal.shape != (num_states,) or self.terminal.dtype != bool:
            raise ConfigError(f"terminal: expected a bool array of shape {(num_states,)}")
        if len(self.action_names) != num_actions:
            raise ConfigError(f"action_names: {len(self.action_names)} names for {num_actions} actions")
        if self.state_names is not None and len(self.state_names) != num_states:
            raise ConfigError(f"state_names: {len(self.state_names)} names for {num_states} states")
        if ns.min() < 0 or ns.max() >= num_states:
            raise ConfigError(f"next_states: indices must lie in [0, {num_states})")
        if p.min() < 0:
            raise ConfigError("probs: negative probability")
        total = p.sum(axis=2)
        if not np.allclose(total[self.valid], 1.0, rtol=0, atol=1e-9):
            raise ConfigError("probs: a valid action's probabilities do not sum to 1")
        if np.any(total[~self.valid] != 0):
            raise ConfigError("probs: an invalid action has non-zero probability")
        if not np.all(self.valid.any(axis=1)):
            raise ConfigError(f"valid: state {int(np.argmin(self.valid.any(axis=1)))} allows no action")
        term = np.flatnonzero(self.terminal)
        if term.size:
            live = p[term] > 0
            selfloop = ns[term] == term[:, None, None]
            if np.any(live & ~selfloop) or np.any(r[term][live] != 0):
                raise ConfigError("terminal: a terminal state must be a self-loop with reward 0")
        if self.grid_index is not None:
            gi = self.grid_index
            cells = gi[gi >= 0]
            if gi.ndim != 2 or (cells.size and cells.max() >= num_states):
                raise ConfigError("grid_index: expected an (H, W) array of state indices, −1 at walls")
        if self.start_state is not None and not 0 <= self.start_state < num_states:
            raise ConfigError(f"start_state: {self.start_state} is not a state")

    @property
    def num_states(self) -> int:
        return int(self.next_states.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.next_states.shape[1])

    def expected_reward(self) -> np.ndarray:
        """(S, A): Σ_k P(s, a, k) R(s, a, k); 0 at invalid actions. Computed once, then cached."""
        return self._expected_reward

    @cached_property
    def _expected_reward(self) -> np.ndarray:
        return np.einsum("sak,sak->sa", self.probs, self.rewards)

    @cached_property
    def _plan(self) -> _SweepPlan:
        return _SweepPlan(self)

    def q_from_v(self, values: np.ndarray) -> np.ndarray:
        """(S, A): Q(s, a) = R(s, a) + γ Σ_s' P(s'|s, a) V(s'), −inf at invalid actions."""
        values = np.asarray(values, dtype=np.float64)
        q = self.expected_reward().copy()
        for k in range(self.next_states.shape[2]):
            q += self.gamma * self.probs[:, :, k] * values[self.next_states[:, :, k]]
        q[~self.valid] = -np.inf
        return q

    def max_q(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(S,): max over valid actions of Q(s, a) — one value-iteration backup, Q never stored.

        `out`, if given, is an (S,) float64 buffer (not `values` itself).
        """
        out = np.empty(self.num_states) if out is None else out
        self._plan.sweep(np.asarray(values, dtype=np.float64), out)
        return out

    def value_sweep(self, values: np.ndarray, out: np.ndarray) -> float:
        """One value-iteration sweep of `values` (S,) into `out` (S,); returns max |out − values|."""
        return self._plan.sweep(np.asarray(values, dtype=np.float64), out)

    def transition_matrix(self, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dense P_π (S, S) and R_π (S,) of a policy, for small MDPs (tests' linear solve).

        `policy` is deterministic (S,) action indices or stochastic (S, A) probabilities.
        """
        num_states = self.num_states
        if num_states > 5000:
            raise ConfigError(f"transition_matrix: {num_states} states is too many for a dense (S, S) matrix")
        pi = policy_matrix(self, policy)
        weights = pi[:, :, None] * self.probs  # (S, A, K)
        p_pi = np.zeros((num_states, num_states))
        rows = np.broadcast_to(np.arange(num_states)[:, None, None], weights.shape)
        np.add.at(p_pi, (rows.ravel(), self.next_states.ravel()), weights.ravel())
        r_pi = (pi * self.expected_reward()).sum(axis=1)
        return p_pi, r_pi


def policy_matrix(mdp: FiniteMDP, policy: np.ndarray) -> np.ndarray:
    """(S, A) action probabilities of a policy given as (S,) action indices or (S, A) probabilities.

    Refuses a policy that puts probability on an action the state does not allow.
    """
    policy = np.asarray(policy)
    num_states, num_actions = mdp.num_states, mdp.num_actions
    if policy.shape == (num_states,):
        if not np.issubdtype(policy.dtype, np.integer):
            raise ConfigError("policy: a deterministic policy is an integer array of actions")
        if policy.min() < 0 or policy.max() >= num_actions:
            raise ConfigError(f"policy: actions must lie in [0, {num_actions})")
        pi = np.zeros((num_states, num_actions))
        pi[np.arange(num_states), policy] = 1.0
    elif policy.shape == (num_states, num_actions):
        pi = policy.astype(np.float64)
        if pi.min() < 0 or not np.allclose(pi.sum(axis=1), 1.0, rtol=0, atol=1e-9):
            raise ConfigError("policy: each state's action probabilities must be ≥ 0 and sum to 1")
    else:
        raise ConfigError(f"policy: expected shape ({num_states},) or ({num_states}, {num_actions}), "
                          f"got {policy.shape}")
    if np.any(pi[~mdp.valid] > 0):
        s = int(np.argmax((pi * ~mdp.valid).sum(axis=1)))
        raise ConfigError(f"policy: state {s} takes an action it does not allow")
    return pi


def uniform_policy(mdp: FiniteMDP) -> np.ndarray:
    """(S, A): the uniform random policy over each state's valid actions."""
    valid = mdp.valid.astype(np.float64)
    return valid / valid.sum(axis=1, keepdims=True)


class _SweepPlan:
    """Precomputed arrays that make one max-backup a few contiguous numpy passes per state.

    Q(·, a) = base_a + Σ_k w_ak · V[next_ak], base_a the expected reward (−inf where a is invalid),
    w_ak = γ · probs[:, a, k]. What keeps the passes few:
    - slots whose weight is 0 wherever `a` is allowed are dropped; a weight that is the same in every
      state allowing `a` becomes a scalar (elsewhere base_a is −inf anyway);
    - identical successor columns (a grid's N move is also E's slip) are gathered once;
    - slots of one action with equal scalar weights are summed before the multiply, and such a sum is
      shared by every action that has it (a grid's N and S both slip to E + W);
    - when every action has the same base it is added once, after the max;
    - an action allowed in few states (a grid's exit) is computed on those states only;
    - states go in chunks that stay in the CPU cache, so each pass reads cache, not memory.
    Indices are intp: `np.take(..., mode="clip")` on intp indices is numpy's fastest gather (the
    indices were range-checked once, in FiniteMDP's validation).
    """

    CHUNK = 16384

    def __init__(self, mdp: FiniteMDP) -> None:
        num_states, num_actions, fan_out = mdp.next_states.shape
        self.num_states = num_states
        er = mdp.expected_reward()
        counts = mdp.valid.sum(axis=0)
        dense = [a for a in range(num_actions) if counts[a] * 8 > num_states]
        self.columns: list[np.ndarray] = []
        self.sums: list[tuple[tuple[int, ...], float]] = []  # shared Σ of gathered columns, × weight
        self.ops: list[list[tuple[str, int, float | np.ndarray]]] = []  # per dense action
        bases = []
        for a in dense:
            allowed = mdp.valid[:, a]
            base = np.array(er[:, a], dtype=np.float64)
            base[~allowed] = -np.inf
            bases.append(base)
            groups: dict[float, list[int]] = {}
            ops: list[tuple[str, int, float | np.ndarray]] = []
            for k in range(fan_out):
                weight = mdp.gamma * mdp.probs[:, a, k]
                on = weight[allowed]
                if not np.any(on != 0):
                    continue
                cid = self._column(mdp.next_states[:, a, k])
                if np.all(on == on[0]):
                    groups.setdefault(float(on[0]), []).append(cid)
                else:
                    ops.append(("array", cid, weight))
            scaled: list[tuple[str, int, float | np.ndarray]] = []
            summed: list[tuple[str, int, float | np.ndarray]] = []
            for w, cids in groups.items():
                if len(cids) == 1:
                    scaled.append(("scaled", cids[0], w))
                else:
                    key = (tuple(sorted(cids)), w)
                    if key not in self.sums:
                        self.sums.append(key)
                    summed.append(("sum", self.sums.index(key), w))
            self.ops.append(scaled + ops + summed)  # a multiply first writes straight into the target
        self.common_base = bases[0] if bases and all(np.array_equal(b, bases[0]) for b in bases) else None
        self.bases = [None if self.common_base is not None else b for b in bases]
        self.sparse = []
        for a in range(num_actions):
            if a in dense:
                continue
            states = np.flatnonzero(mdp.valid[:, a])
            live = [k for k in range(fan_out) if np.any(mdp.probs[states, a, k] != 0)]
            nexts = [np.ascontiguousarray(mdp.next_states[states, a, k], dtype=np.intp) for k in live]
            weights = [mdp.gamma * mdp.probs[states, a, k] for k in live]
            self.sparse.append((states, er[states, a], nexts, weights))
        size = min(self.CHUNK, num_states)
        self.gathered = [np.empty(size) for _ in self.columns]
        self.summed = [np.empty(size) for _ in self.sums]
        self.q = np.empty(size)
        self.tmp = np.empty(size)

    def _column(self, column: np.ndarray) -> int:
        column = np.ascontiguousarray(column, dtype=np.intp)
        for i, c in enumerate(self.columns):
            if np.array_equal(c, column):
                return i
        self.columns.append(column)
        return len(self.columns) - 1

    def sweep(self, values: np.ndarray, out: np.ndarray) -> float:
        """max_a Q(s, a) from `values` into `out`, chunk by chunk; returns max |out − values|."""
        delta = 0.0
        for lo in range(0, self.num_states, self.CHUNK):
            hi = min(lo + self.CHUNK, self.num_states)
            n = hi - lo
            g = [np.take(values, c[lo:hi], out=buf[:n], mode="clip")
                 for c, buf in zip(self.columns, self.gathered, strict=True)]
            sums = []
            for (cids, w), buf in zip(self.sums, self.summed, strict=True):
                acc = np.add(g[cids[0]], g[cids[1]], out=buf[:n])
                for c in cids[2:]:
                    acc += g[c]
                acc *= w
                sums.append(acc)
            best = out[lo:hi]
            if not self.ops:
                best.fill(-np.inf)
            for i, ops in enumerate(self.ops):
                target = best if i == 0 else self.q[:n]
                self._action(ops, self.bases[i], g, sums, lo, hi, target)
                if i:
                    np.maximum(best, target, out=best)
            if self.common_base is not None:
                best += self.common_base[lo:hi]
            for states, base, nexts, weights in self.sparse:
                i0, i1 = np.searchsorted(states, (lo, hi))
                if i0 == i1:
                    continue
                q = base[i0:i1].copy()
                for nxt, w in zip(nexts, weights, strict=True):
                    q += w[i0:i1] * values[nxt[i0:i1]]
                local = states[i0:i1] - lo
                best[local] = np.maximum(best[local], q)
            diff = np.subtract(best, values[lo:hi], out=self.tmp[:n])
            np.abs(diff, out=diff)
            delta = max(delta, float(diff.max()))
        return delta

    def _action(self, ops: list, base: np.ndarray | None, g: list[np.ndarray], sums: list[np.ndarray],
                lo: int, hi: int, target: np.ndarray) -> None:
        tmp = self.tmp[: hi - lo]
        first = True
        for kind, idx, w in ops:
            if kind == "sum":
                if first:
                    np.copyto(target, sums[idx])
                else:
                    target += sums[idx]
            else:
                weight = w if kind == "scaled" else w[lo:hi]
                np.multiply(g[idx], weight, out=target if first else tmp)
                if not first:
                    target += tmp
            first = False
        if first:
            target.fill(0.0)
        if base is not None:
            target += base[lo:hi]
