"""Environment steps per second: Gymnasium, our sync/async vector envs and the batched engine, against
the physics limit. Prints one JSON line.

    python bench/env_throughput.py                      # Hopper-v5 Ant-v5 Humanoid-v5, 3 s per config
    python bench/env_throughput.py --tasks Hopper-v5 --seconds 5
    python bench/env_throughput.py --island-discovery   # the engine keeps MuJoCo's island discovery (A/B)

Per task, each config steps random actions in [-1, 1] (pre-drawn, so drawing costs nothing), episodes
reset as they end; the configs are measured in turn, `--rounds` times (`--seconds` each in all), and
each figure is the median of its rounds, so a change in the machine's load hits all of them alike:
- `gymnasium_single`: `gymnasium.make(task)`'s own `env.step`, one env, reset on done (the peer).
- `sync_x8`, `async_x8`: `robot_rl.sim.make(task, 8, vectorization=...)`.
- `batched_xN_tT`: the engine, N worlds on T threads.
- `mj_step_1_thread`: one thread's raw `mj_step` rate (one world in a C loop: `mujoco.rollout`, 200
  random controls a call) from 16 states a Gymnasium env passes through under random actions, resetting
  as its episodes end (the states the configs step); `limit` = that / frame skip x cores: env steps/s if
  stepping cost nothing but physics. `mj_step_1_thread_from_reset` and `limit_from_reset` time the
  same from Gymnasium's reset state only (the first version of this bench): a step's cost depends on
  the state (its contacts), and a body falling from its reset pose is not the mix the configs step.
- `batched_..._physics_share`: the share of the top batched config's measured time spent inside
  MuJoCo's batch calls (the physics, and on Ant and Humanoid the `mj_rnePostConstraint` that fills
  `cfrc_ext` on the batch's threads, as Gymnasium's step also runs it); the rest is the engine's own
  work (actions, observations, rewards, resets). Where a ratio to `limit` is short, this says on
  which side the gap is.
  `..._physics_only_over_sync_x8` is that config's rate if its step cost only the batch's physics,
  over `sync_x8`: the ceiling any engine on MuJoCo's batch reaches on these states and threads.
The load average (`os.getloadavg`) is recorded before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from machine import cpu_model

WARMUP_STEPS = 20


class Config:
    """One measured configuration: a step function over pre-drawn actions, and its cleanup."""

    def __init__(self, step: Callable[[np.ndarray], Any], actions: np.ndarray, per_call: int,
                 close: Callable[[], None]) -> None:
        self.step, self.actions, self.per_call, self.close = step, actions, per_call, close
        self.calls = 0
        self.inside: Callable[[], float] | None = None
        """Seconds spent so far inside the physics call (set for a batched config), or None."""
        self.physics_seconds = self.measured_seconds = 0.0
        for _ in range(WARMUP_STEPS):
            self._one()

    def _one(self) -> None:
        self.step(self.actions[self.calls % len(self.actions)])
        self.calls += 1

    def measure(self, seconds: float) -> float:
        """Env steps/s over `seconds`."""
        inside_before = self.inside() if self.inside else 0.0
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(5):
                self._one()
            calls += 5
        if self.inside:
            self.physics_seconds += self.inside() - inside_before
            self.measured_seconds += elapsed
        return calls * self.per_call / elapsed


def gymnasium_single(task: str) -> Config:
    import gymnasium

    env = gymnasium.make(task, disable_env_checker=True)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (256, *env.action_space.shape)) * env.action_space.high

    def step(a: np.ndarray) -> None:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()

    return Config(step, actions, 1, env.close)


def vector(task: str, n: int, vectorization: str, threads: int | None = None) -> Config:
    from robot_rl import sim

    env = sim.make(task, n, seed=0, vectorization=vectorization, threads=threads)
    env.reset()
    actions = np.random.default_rng(0).uniform(-1, 1, (64, n, env.task_spec.act_dim)).astype(np.float32)
    config = Config(env.step, actions, n, env.close)
    stepper = getattr(getattr(env, "engine", None), "_stepper", None)  # the engine's MuJoCo batch
    if stepper is not None:
        config.inside = _timed(stepper)
    return config


def _timed(stepper: Any) -> Callable[[], float]:
    """Wrap the engine's batch stepping in a timer; returns a reader of its total seconds."""
    step, total = stepper.step, [0.0]

    def timed_step(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        step(*args, **kwargs)
        total[0] += time.perf_counter() - start

    stepper.step = timed_step
    return lambda: total[0]


def start_states(task: str, visited: bool, count: int = 16, every: int = 25) -> tuple[Any, np.ndarray, int]:
    """Full-physics states to time raw `mj_step` from: Gymnasium's reset state (`visited=False`), or
    `count` states a Gymnasium env passes through under the configs' own random actions, resetting as
    its episodes end (one every `every` control steps: the mix of fresh and long-running episodes the
    configs step). Returns the model, the states `(count, size)` and the task's frame skip."""
    import gymnasium
    import mujoco

    env = gymnasium.make(task, disable_env_checker=True)
    env.reset(seed=0)
    raw = env.unwrapped
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    states = np.empty((count if visited else 1, mujoco.mj_stateSize(raw.model, spec)))
    if not visited:
        mujoco.mj_getState(raw.model, raw.data, states[0], spec)
    else:
        rng = np.random.default_rng(0)
        high = env.action_space.high
        for k in range(count * every):
            if k % every == 0:
                mujoco.mj_getState(raw.model, raw.data, states[k // every], spec)
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, high.shape) * high)
            if terminated or truncated:
                env.reset()
    model, skip = raw.model, raw.frame_skip
    env.close()
    return model, states, skip


def physics(task: str, visited: bool = True) -> tuple[Config, int]:
    """One world's raw mj_step in a C loop (`mujoco.rollout`, 200 steps a call, random controls) from
    `start_states(task, visited)` in turn; its rate is physics steps/s. Returns it and the frame skip."""
    import mujoco
    from mujoco import rollout

    model, states, skip = start_states(task, visited)
    nstep = 200
    low, high = model.actuator_ctrlrange.T
    controls = np.random.default_rng(0).uniform(low, high, (16, 1, nstep, model.nu))
    runner, data = rollout.Rollout(nthread=0), mujoco.MjData(model)
    out = np.empty((1, nstep, states.shape[1]))
    calls = [0]

    def step(control: np.ndarray) -> None:
        state = states[calls[0] % len(states)][None]
        calls[0] += 1
        runner.rollout(model, data, state, control, state=out)

    return Config(step, controls, nstep, runner.close), skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["Hopper-v5", "Ant-v5", "Humanoid-v5"])
    p.add_argument("--seconds", type=float, default=3.0, help="seconds measured per config, over all rounds")
    p.add_argument("--rounds", type=int, default=5, help="configs measured in turn, this many times (median)")
    p.add_argument("--worlds", type=int, nargs="+", default=[8, 32, 64])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--island-discovery", action="store_true",
                   help="the engine keeps constraint-island discovery (A/B of sim/engine/islands.py)")
    args = p.parse_args()
    if args.island_discovery:
        from robot_rl.sim.engine import batched

        batched.skip_island_discovery = lambda model: False
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    for task in args.tasks:
        configs = {"gymnasium_single": gymnasium_single(task), "sync_x8": vector(task, 8, "sync"),
                   "async_x8": vector(task, 8, "async")}
        for n in args.worlds:
            for t in args.threads:
                configs[f"batched_x{n}_t{t}"] = vector(task, n, "batched", threads=t)
        configs["mj_step_1_thread"], skip = physics(task)
        configs["mj_step_1_thread_from_reset"], _ = physics(task, visited=False)
        rates: dict[str, list[float]] = {name: [] for name in configs}
        try:
            for _ in range(args.rounds):  # in turn, so a change of the machine's load hits every config
                for name, config in configs.items():
                    rates[name].append(config.measure(args.seconds / args.rounds))
        finally:
            for config in configs.values():
                config.close()
        row: dict[str, Any] = {name: round(statistics.median(r)) for name, r in rates.items()}
        row.update(frame_skip=skip, limit=round(row["mj_step_1_thread"] / skip * cores),
                   limit_from_reset=round(row["mj_step_1_thread_from_reset"] / skip * cores))
        best = row.get(f"batched_x{max(args.worlds)}_t{max(args.threads)}")
        if best:
            top = f"batched_x{max(args.worlds)}_t{max(args.threads)}"
            row[f"{top}_over_sync_x8"] = round(best / row["sync_x8"], 2)
            row[f"{top}_over_limit"] = round(best / row["limit"], 2)
            row[f"{top}_over_limit_from_reset"] = round(best / row["limit_from_reset"], 2)
            row[f"{top}_over_gymnasium"] = round(best / row["gymnasium_single"], 2)
            timed = configs[top]
            if timed.measured_seconds:
                share = timed.physics_seconds / timed.measured_seconds
                row[f"{top}_physics_share"] = round(share, 3)
                # the config's rate with its stepping cost only the batch's physics: no engine can beat it
                row[f"{top}_physics_only_over_sync_x8"] = round(best / share / row["sync_x8"], 2)
        results[task] = row
    print(json.dumps({"benchmark": "env_throughput", "cpu": cpu_model(), "cores": cores,
                      "seconds_per_config": args.seconds, "rounds": args.rounds,
                      "engine_island_discovery": args.island_discovery,
                      "loadavg_before": [round(x, 2) for x in load_before],
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()], "env_steps_per_s": results}))


if __name__ == "__main__":
    main()
