"""Environment steps per second: Gymnasium, our sync/async vector envs and the batched engine, against
the physics limit. Prints one JSON line.

    python bench/env_throughput.py                      # Hopper-v5 Ant-v5 Humanoid-v5, 3 s per config
    python bench/env_throughput.py --tasks Hopper-v5 --seconds 5

Per task, each config steps random actions in [-1, 1] (pre-drawn, so drawing costs nothing) for
`--seconds` after a short warm-up, episodes reset as they end:
- `gymnasium_single`: `gymnasium.make(task)`'s own `env.step`, one env, reset on done (the peer).
- `sync_x8`, `async_x8`: `robot_rl.sim.make(task, 8, vectorization=...)`.
- `batched_xN_tT`: the engine, N worlds on T threads.
- `limit`: one thread's raw `mj_step` rate (one world in a C loop: `mujoco.rollout`, random controls,
  from Gymnasium's reset state, so the robot falls and lies as the measured envs' robots do) divided by
  the frame skip, times the cores: env steps/s if stepping cost nothing but physics.
The load average (`os.getloadavg`) is recorded before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
from machine import cpu_model

WARMUP_STEPS = 20


def _timed(step: Any, actions: np.ndarray, seconds: float, per_call: int) -> float:
    """Env steps/s of `step(actions[k])` over `seconds`, after a warm-up."""
    for k in range(WARMUP_STEPS):
        step(actions[k % len(actions)])
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            step(actions[calls % len(actions)])
            calls += 1
    return calls * per_call / elapsed


def gymnasium_single(task: str, seconds: float) -> float:
    import gymnasium

    env = gymnasium.make(task, disable_env_checker=True)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (256, *env.action_space.shape)) * env.action_space.high

    def step(a: np.ndarray) -> None:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()

    try:
        return _timed(step, actions, seconds, 1)
    finally:
        env.close()


def vector(task: str, n: int, seconds: float, vectorization: str, threads: int | None = None) -> float:
    from robot_rl import sim

    env = sim.make(task, n, seed=0, vectorization=vectorization, threads=threads)
    env.reset()
    actions = np.random.default_rng(0).uniform(-1, 1, (64, n, env.task_spec.act_dim)).astype(np.float32)
    try:
        return _timed(env.step, actions, seconds, n)
    finally:
        env.close()


def limit(task: str, seconds: float, cores: int) -> dict[str, float]:
    """One thread's mj_step rate (C loop) / frame skip x cores."""
    import gymnasium
    import mujoco
    from mujoco import rollout

    env = gymnasium.make(task, disable_env_checker=True).unwrapped
    env.reset(seed=0)
    model, data, skip = env.model, env.data, env.frame_skip
    state_spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.empty(mujoco.mj_stateSize(model, state_spec))
    mujoco.mj_getState(model, data, state, state_spec)
    nstep = 2000
    rng = np.random.default_rng(0)
    low, high = model.actuator_ctrlrange.T
    steps, start = 0, time.perf_counter()
    with rollout.Rollout(nthread=0) as r:
        while time.perf_counter() - start < seconds:
            control = rng.uniform(low, high, (1, nstep, model.nu))
            r.rollout(model, mujoco.MjData(model), state[None], control)
            steps += nstep
    rate = steps / (time.perf_counter() - start)
    env.close()
    return {"mj_step_per_s_1_thread": round(rate), "frame_skip": skip, "cores": cores,
            "limit_env_steps_per_s": round(rate / skip * cores)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["Hopper-v5", "Ant-v5", "Humanoid-v5"])
    p.add_argument("--seconds", type=float, default=3.0, help="seconds measured per config")
    p.add_argument("--worlds", type=int, nargs="+", default=[8, 32, 64])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    for task in args.tasks:
        row: dict[str, Any] = {"gymnasium_single": round(gymnasium_single(task, args.seconds)),
                               "sync_x8": round(vector(task, 8, args.seconds, "sync")),
                               "async_x8": round(vector(task, 8, args.seconds, "async"))}
        for n in args.worlds:
            for t in args.threads:
                row[f"batched_x{n}_t{t}"] = round(vector(task, n, args.seconds, "batched", threads=t))
        row.update(limit(task, args.seconds, cores))
        top = max(args.worlds)
        best = row.get(f"batched_x{top}_t{max(args.threads)}")
        if best:
            row[f"batched_x{top}_over_sync_x8"] = round(best / row["sync_x8"], 2)
            row[f"batched_x{top}_over_limit"] = round(best / row["limit_env_steps_per_s"], 2)
            row[f"batched_x{top}_over_gymnasium"] = round(best / row["gymnasium_single"], 2)
        results[task] = row
    print(json.dumps({"benchmark": "env_throughput", "cpu": cpu_model(), "cores": cores,
                      "seconds_per_config": args.seconds,
                      "loadavg_before": [round(x, 2) for x in load_before],
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()], "env_steps_per_s": results}))


if __name__ == "__main__":
    main()
