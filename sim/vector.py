"""The environment contract, and `make`: `num_envs` copies of a task as a Gymnasium vector env.

- `obs, info = env.reset(seed=None)`: `obs` is `(num_envs, obs_dim)` float64, built through the task
  spec (`env.task_spec`) from each sub-env's `robot_state()`; `reset(seed=s)` seeds sub-env i with s+i.
- `obs, reward, terminated, truncated, info = env.step(action)`: `action` is `(num_envs, act_dim)` in
  [-1, 1] (float32 space; the spec maps it onto robot units and clips); `reward` `(num_envs,)` float64;
  `terminated`, `truncated` `(num_envs,)` bool.
- `terminated`: the task's own end (a fall, a physics failure, dm_control discount 0): the value of
  the final state is 0. `truncated`: a time limit: bootstrap from the value of the *real* final
  observation. Never treat a truncation as terminal.
- Autoreset is SAME_STEP: a sub-env that ends is reset within the same `step`, whose `obs` row is
  already the new episode's first observation; the real final observation is `info["final_obs"][i]`
  (and its info `info["final_info"]`), valid where the mask `info["_final_obs"][i]` is True.
- Timing: one `step` is `task_spec.control_period` seconds of simulated time, a whole number
  (`task_spec.physics_steps`) of physics steps of `task_spec.physics_dt` seconds. Units are SI:
  metres, radians, seconds; forces as each task's spec says.
- A sub-env with `info["physics_failure"]` hit a NaN or unstable state; its episode was terminated
  and the run goes on. (Since that step also ended the episode, the vector env hands that info over
  as `info["final_info"]["physics_failure"][i]`, under the mask `info["final_info"]["_physics_failure"]`.)
- The three vectorizations keep this contract: "sync" and "async" step Gymnasium-style envs, "batched"
  the MuJoCo engine's worlds (sim/engine), world i on the trajectory of sync's sub-env i.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from robot_rl.errors import ConfigError

from .registry import engine_task, get_spec, make_env, resolve

VECTORIZATION = ("sync", "async", "batched")


def make(task_id: str, num_envs: int = 1, seed: int | None = None, vectorization: str = "sync",
         max_episode_steps: int | None = None, randomize: Any = None,
         threads: int | None = None, privileged: tuple[str, ...] = ()) -> gymnasium.vector.VectorEnv:
    """`num_envs` copies of `task_id` (sub-env i seeded with seed+i), SAME_STEP autoreset.

    `vectorization`: "sync" steps the copies in this process, "async" in one subprocess each,
    "batched" as worlds of the MuJoCo engine (sim/engine) on `threads` threads (default: the cores;
    only the tasks of `registry.engine_task_names()`). The returned env carries the task's spec as
    `env.task_spec`. `randomize`: domain randomization (`sim.randomization.RandomizationConfig`),
    checked before any subprocess or thread starts. `privileged`: the task's privileged (critic-only)
    terms to hand out as `info["privileged"]` (batched only; see `BatchedEngine`).
    """
    resolve(task_id)  # an unknown id fails here, before any subprocess starts
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ConfigError(f"num_envs: must be a positive integer, got {num_envs!r}")
    if vectorization not in VECTORIZATION:
        raise ConfigError(f"vectorization: {vectorization!r} is not valid; choose one of: "
                          f"{', '.join(VECTORIZATION)}")
    if vectorization == "batched":
        return _batched(task_id, num_envs, seed, max_episode_steps, randomize, threads, tuple(privileged))
    if privileged:
        raise ConfigError(f"policy.critic_privileged: privileged critic terms come from the MuJoCo engine's "
                          f"worlds; use vectorization: batched (not {vectorization!r})")
    if threads is not None:
        raise ConfigError(f"threads: only the batched vectorization steps on threads; {vectorization!r} "
                          f"runs one env per {'process' if vectorization == 'async' else 'call'}")
    if vectorization == "async" and randomize is not None and randomize.active:
        make_env(task_id, randomize=randomize).close()  # an unsupported perturbation fails here
    fns = [functools.partial(make_env, task_id, seed=None if seed is None else seed + i,
                             max_episode_steps=max_episode_steps, randomize=randomize)
           for i in range(num_envs)]
    cls: Any = SyncVectorEnv if vectorization == "sync" else AsyncVectorEnv
    env = cls(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    env.task_spec = get_spec(task_id)
    if seed is not None:
        env.action_space.seed(seed)
    return env


def _batched(task_id: str, num_envs: int, seed: int | None, max_episode_steps: int | None, randomize: Any,
             threads: int | None, privileged: tuple[str, ...] = ()) -> gymnasium.vector.VectorEnv:
    from .engine.batched import BatchedEngine
    from .engine.vector_env import BatchedVectorEnv

    engine = BatchedEngine(engine_task(task_id), num_envs, seed=seed, threads=threads,
                           max_episode_steps=max_episode_steps, randomize=randomize,
                           privileged=privileged)
    env = BatchedVectorEnv(engine)
    if seed is not None:
        env.action_space.seed(seed)
    return env
