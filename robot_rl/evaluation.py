"""Deterministic evaluation of a policy on a task: the same numbers for a run directory and a bundle.

The policy is any callable from one raw observation `(obs_dim,)` to a normalised action
`(act_dim,)`; the env maps it to robot units through the task spec, exactly as a deployment does.
Episode i is reset with seed `seed + i`, so two evaluations of the same policy with the same seed give
the same returns. Hooks (`EvalHook`) see the env once made and every frame of every episode: a video
recorder (robot_rl.recording).

`simulator` picks the env: "gymnasium" is the registry's (`sim.make_env`: Gymnasium's own MuJoCo
physics, dm_control, ...), "engine" one world of the batched MuJoCo engine (`sim.engine.world_env`:
what a run trained with `vectorization: batched` stepped; the conformance suite holds the two equal
to 1e-6 per step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np


class EvalHook(Protocol):
    """Something that watches an evaluation: `attach` once the env is made (before the first reset),
    `frame` after each reset (step 0) and each step, `close(ok)` at the end (ok=False after an error)."""

    def attach(self, env: Any) -> None: ...

    def frame(self, episode: int, step: int, episode_return: float, info: dict[str, Any]) -> None: ...

    def close(self, ok: bool) -> None: ...


def episode_success(info: dict[str, Any]) -> bool | None:
    """The success flag a task reports in its step info (`success`, or Gymnasium's `is_success`)."""
    flag = info.get("success", info.get("is_success"))
    return None if flag is None else bool(flag)


SIMULATORS = ("gymnasium", "engine")


def resolve_simulator(task: str, simulator: str = "gymnasium") -> str:
    """`simulator`, checked: a ConfigError naming the valid choices, or for "engine" a task the engine
    does not run (listing the ones it does)."""
    from robot_rl.errors import ConfigError
    from robot_rl.sim.registry import engine_task

    if simulator not in SIMULATORS:
        raise ConfigError(f"simulator: {simulator!r} is not valid; choose one of: {', '.join(SIMULATORS)}")
    if simulator == "engine":
        engine_task(task)
    return simulator


def make_eval_env(task: str, simulator: str = "gymnasium", seed: int | None = None, randomize: Any = None,
                  render_mode: str | None = None) -> Any:
    """The env an evaluation of `task` steps, on `simulator` (see the module docstring)."""
    from robot_rl.errors import ConfigError

    if resolve_simulator(task, simulator) == "engine":
        if render_mode is not None:
            raise ConfigError(f"render_mode: the engine's worlds draw through sim.rendering, not "
                              f"{render_mode!r}")
        from robot_rl.sim.engine.world_env import EngineWorldEnv

        return EngineWorldEnv(task, seed=seed, randomize=randomize)
    from robot_rl.sim import make_env

    return make_env(task, seed=seed, randomize=randomize, render_mode=render_mode)


def evaluate(task: str, policy: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int,
             max_steps: int | None = None, randomize: Any = None, hooks: Sequence[EvalHook] = (),
             render_mode: str | None = None, simulator: str = "gymnasium") -> dict[str, Any]:
    """Run `episodes` episodes; return {"mean_return", "std_return", "episodes", "returns", "lengths"},
    and "success_rate" when the task reports success (in the last step's info) in every episode. A task
    that counts goals reached (the cube tasks' `successes` info) also gives "consecutive_successes"
    (mean goals in a row), and its "success_rate" is the share of episodes that reached their first goal.
    A task that reports `fell` gives "falls" (episodes ended by a termination term), one with velocity
    commands "velocity_tracking_error" (m/s: the mean over episodes of each one's mean |command_xy - v_xy|).

    `randomize` (a RandomizationConfig): evaluate under its perturbations, drawn per episode from the
    episode's seed (so still reproducible), instead of the nominal model. `render_mode`: how the env is
    made ("rgb_array" for a hook that records a task that is not MuJoCo). `simulator`: "gymnasium" or
    "engine" (the module docstring).
    """
    env = make_eval_env(task, simulator, seed=seed, randomize=randomize, render_mode=render_mode)
    returns, lengths, successes, goals, tracking, falls = [], [], [], [], [], []
    attached: list[EvalHook] = []
    try:
        for hook in hooks:
            hook.attach(env)
            attached.append(hook)
        for i in range(episodes):
            obs, info = env.reset(seed=seed + i)
            total, steps, done = 0.0, 0, False
            for hook in hooks:
                hook.frame(i, 0, 0.0, info)
            while not done:
                action = np.asarray(policy(obs), dtype=np.float32)
                obs, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                steps += 1
                done = terminated or truncated or (max_steps is not None and steps >= max_steps)
                for hook in hooks:
                    hook.frame(i, steps, total, info)
            returns.append(total)
            lengths.append(steps)
            successes.append(episode_success(info))
            if "successes" in info:
                goals.append(int(info["successes"]))
            if "velocity_tracking_error" in info:  # a commanded task (sim.declared): its episode's mean
                tracking.append(float(info["velocity_tracking_error"]))
            if "fell" in info:
                falls.append(bool(info["fell"]) and bool(terminated))
    except BaseException:
        for hook in attached:
            hook.close(ok=False)
        raise
    else:
        for hook in attached:
            hook.close(ok=True)
    finally:
        env.close()
    result = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
              "episodes": episodes, "returns": returns, "lengths": lengths}
    if successes and None not in successes:
        result["success_rate"] = float(np.mean([bool(s) for s in successes]))
    if len(tracking) == episodes:
        result.update(velocity_tracking_error=float(np.mean(tracking)), tracking_errors=tracking)
    if len(falls) == episodes:
        result["falls"] = int(sum(falls))
    if len(goals) == episodes:
        result.update(success_rate=float(np.mean(np.asarray(goals) >= 1)),
                      consecutive_successes=float(np.mean(goals)), successes=goals)
    return result
