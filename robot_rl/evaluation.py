"""Deterministic evaluation of a policy on a task: the same numbers for a run directory and a bundle.

The policy is any callable from one raw observation `(obs_dim,)` to a normalised action
`(act_dim,)`; the env maps it to robot units through the task spec, exactly as a deployment does.
Episode i is reset with seed `seed + i`, so two evaluations of the same policy with the same seed give
the same returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def evaluate(task: str, policy: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int,
             max_steps: int | None = None, randomize: Any = None) -> dict[str, Any]:
    """Run `episodes` episodes; return {"mean_return", "std_return", "episodes", "returns", "lengths"},
    and for a task that counts goals reached (the cube tasks' `successes` info) "success_rate" (share
    of episodes that reached their first goal) and "consecutive_successes" (mean goals in a row).

    `randomize` (a RandomizationConfig): evaluate under its perturbations, drawn per episode from the
    episode's seed (so still reproducible), instead of the nominal model.
    """
    from robot_rl.sim import make_env

    env = make_env(task, seed=seed, randomize=randomize)
    returns, lengths, successes = [], [], []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, steps, done = 0.0, 0, False
            while not done:
                action = np.asarray(policy(obs), dtype=np.float32)
                obs, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                steps += 1
                done = terminated or truncated or (max_steps is not None and steps >= max_steps)
            returns.append(total)
            lengths.append(steps)
            if "successes" in info:
                successes.append(int(info["successes"]))
    finally:
        env.close()
    result = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
              "episodes": episodes, "returns": returns, "lengths": lengths}
    if len(successes) == episodes:
        result.update(success_rate=float(np.mean(np.asarray(successes) >= 1)),
                      consecutive_successes=float(np.mean(successes)), successes=successes)
    return result
