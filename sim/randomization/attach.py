"""The Gymnasium path: a Randomizer on one task env from `make_env` (the `sync` and `async` worlds)."""

from __future__ import annotations

from typing import Any

from robot_rl.errors import ConfigError

from .config import RandomizationConfig
from .randomizer import Randomizer


def apply_randomization(env: Any, config: RandomizationConfig | None, task_id: str) -> None:
    """Randomize `env` (a task env, before any reset) as `config` says; a ConfigError naming the first
    active term if the task is not a MuJoCo one, or if it cannot take a term."""
    if config is None or not config.active:
        return
    base = env.unwrapped
    if not isinstance(base, _mujoco_env_classes()):
        raise ConfigError(f"randomize.{config.active_names()[0]}: task {task_id!r} does not support it: "
                          f"not a MuJoCo task (the Gymnasium MuJoCo tasks and dm_control's take every term)")
    from robot_rl.sim.engine.world_env import EngineWorldEnv

    if config.push.active and not isinstance(base, EngineWorldEnv):
        raise ConfigError(f"randomize.push: task {task_id!r} does not support it: pushes act "
                          f"mid-episode in the MuJoCo engine's worlds (an engine task with a free joint, "
                          f"e.g. quadruped-walk or a declared floating-base task), not in a Gymnasium or "
                          f"dm_control env")
    if config.hold.active and not isinstance(base, EngineWorldEnv):
        raise ConfigError(f"randomize.hold: task {task_id!r} does not support it: holds act mid-episode "
                          f"in the MuJoCo engine's worlds (vectorization: batched, or an engine task), not "
                          f"in a Gymnasium or dm_control env")
    task: Any = base  # a MuJoCo task env (checked above): task_spec, model, use_randomizer
    spec = task.task_spec
    task.use_randomizer(Randomizer(config, task.model, spec.physics_dt, spec.physics_steps, task_id))


def _mujoco_env_classes() -> tuple[type, ...]:
    """The task envs on the Gymnasium path that declare `model`, `data` and `use_randomizer`."""
    from robot_rl.sim.dm_control_tasks import DmControlEnv
    from robot_rl.sim.engine.world_env import EngineWorldEnv
    from robot_rl.sim.locomotion import LocomotionEnv

    return LocomotionEnv, DmControlEnv, EngineWorldEnv


def check_randomization(task_id: str, config: RandomizationConfig) -> None:
    """A ConfigError now (naming the term) if `task_id` cannot take `config`: for a launch file's
    validation, before any run directory, subprocess or world exists."""
    if not config.active:
        return
    from robot_rl.sim.registry import make_env

    make_env(task_id, randomize=config).close()
