"""Benchmark: vectorised value iteration on square open grid worlds of 10^4, 10^5 and 10^6 states.

Prints one JSON line. For each grid (`open_grid(n)`: no walls, +1 and −1 exits at the top right,
noise 0.2, γ 0.9, living reward −0.04) it reports the time to build the MDP, value iteration to
max |ΔV| < tol (sweeps, total seconds, milliseconds per sweep on a warm plan), the peak memory traced
by tracemalloc while building and solving, and the peer measured in the same run: a textbook
per-state Python loop over list-of-lists transitions (the same backup), run to convergence on the
smallest grid and for a few sweeps on the larger ones; `speedup_per_sweep` = loop time per sweep /
numpy time per sweep.

    python bench/value_iteration.py [--sizes 100 316 1000] [--tol 1e-8] [--loop-sweeps 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import time
import tracemalloc

import numpy as np

from robot_rl.sim.gridworld import grid_mdp, open_grid
from robot_rl.sim.mdp import FiniteMDP
from robot_rl.tabular import value_iteration

LIVING_REWARD = -0.04  # Russell & Norvig's: every state's value matters, none is a flat 0


def python_model(mdp: FiniteMDP, chunk: int = 50_000) -> list[list[list[tuple[float, int, float]]]]:
    """model[s] = one list of (probability, next state, reward) per valid action, as a textbook keeps it."""
    shared: dict[float, float] = {}  # one float object per distinct value, to keep the lists small
    model = []
    for lo in range(0, mdp.num_states, chunk):
        hi = min(lo + chunk, mdp.num_states)
        ns, ps, rs = (x[lo:hi].tolist() for x in (mdp.next_states, mdp.probs, mdp.rewards))
        valid = mdp.valid[lo:hi].tolist()
        for s_ns, s_ps, s_rs, s_valid in zip(ns, ps, rs, valid, strict=True):
            model.append([[(shared.setdefault(p, p), s2, shared.setdefault(r, r))
                           for s2, p, r in zip(a_ns, a_ps, a_rs, strict=True) if p > 0]
                          for a_ns, a_ps, a_rs, ok in zip(s_ns, s_ps, s_rs, s_valid, strict=True) if ok])
    return model


def python_sweep(model: list, values: list[float], gamma: float) -> tuple[list[float], float]:
    """One synchronous value-iteration sweep, state by state, action by action, outcome by outcome."""
    new = [0.0] * len(values)
    for s, actions in enumerate(model):
        best = -math.inf
        for outcomes in actions:
            q = 0.0
            for p, s2, r in outcomes:
                q += p * (r + gamma * values[s2])
            if q > best:
                best = q
        new[s] = best
    delta = max(abs(a - b) for a, b in zip(new, values, strict=True))
    return new, delta


def bench_grid(n: int, tol: float, loop_sweeps: int, loop_to_convergence: bool) -> dict:
    gc.collect()
    t0 = time.perf_counter()
    mdp = grid_mdp(open_grid(n), living_reward=LIVING_REWARD)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = value_iteration(mdp, tol=tol)
    total_s = time.perf_counter() - t0
    values, out = result.values.copy(), np.empty(mdp.num_states)
    repeats = 10
    t0 = time.perf_counter()
    for _ in range(repeats):  # warm plan: what one sweep costs (gathers, multiply-adds, max, ΔV)
        mdp.value_sweep(values, out)
    sweep_ms = (time.perf_counter() - t0) / repeats * 1e3
    row = {"n": n, "states": mdp.num_states, "build_s": round(build_s, 3), "sweeps": result.sweeps,
           "converged": result.converged, "total_s": round(total_s, 3), "sweep_ms": round(sweep_ms, 2),
           "value_start": round(float(result.values[mdp.start_state]), 6)}
    del mdp, result, values, out
    gc.collect()

    tracemalloc.start()  # separate pass: tracing would slow the timings above
    mdp = grid_mdp(open_grid(n), living_reward=LIVING_REWARD)
    value_iteration(mdp, iterations=2)  # the plan, both value buffers and the greedy policy's Q
    row["peak_mem_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()

    t0 = time.perf_counter()
    model = python_model(mdp)
    row["loop_model_build_s"] = round(time.perf_counter() - t0, 2)
    loop_values, sweeps, delta = [0.0] * mdp.num_states, 0, math.inf
    t0 = time.perf_counter()
    while (loop_to_convergence and delta >= tol) or sweeps < loop_sweeps:
        loop_values, delta = python_sweep(model, loop_values, mdp.gamma)
        sweeps += 1
    loop_s = time.perf_counter() - t0
    row["loop_sweeps"] = sweeps
    row["loop_sweep_ms"] = round(loop_s / sweeps * 1e3, 1)
    if loop_to_convergence:
        row["loop_total_s"] = round(loop_s, 2)
        row["loop_converged"] = delta < tol
        reference = value_iteration(mdp, tol=tol).values
        row["loop_max_abs_diff"] = float(np.max(np.abs(np.array(loop_values) - reference)))
    else:  # check the loop against the same number of vectorised sweeps
        reference = value_iteration(mdp, iterations=sweeps).values
        row["loop_max_abs_diff"] = float(np.max(np.abs(np.array(loop_values) - reference)))
    row["speedup_per_sweep"] = round(row["loop_sweep_ms"] / sweep_ms, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 316, 1000])
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--loop-sweeps", type=int, default=2, help="loop sweeps on all but the smallest grid")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    grids = [bench_grid(n, args.tol, args.loop_sweeps, loop_to_convergence=(i == 0))
             for i, n in enumerate(sizes)]
    print(json.dumps({"benchmark": "value_iteration", "tol": args.tol, "noise": 0.2, "gamma": 0.9,
                      "living_reward": LIVING_REWARD,
                      "numpy": np.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
                      "grids": grids}))


if __name__ == "__main__":
    main()
