"""The task registry: an explicit dict of task ids -> factories, and `make_env` / `get_spec`.

Ids are Gymnasium's MuJoCo v5 ids and `dmc:<domain>-<task>` for the dm_control suite (continuous
actions), Gymnasium's CartPole-v1, Acrobot-v1, MountainCar-v0 and LunarLander-v3 (the last needs
Gymnasium's box2d extra), the course's grid worlds as `grid:<name>` and Atari games as `atari:<game>`
(optional: ale-py) (discrete actions), and the cube tasks `cube:rotate-z` and `cube:reorient` (our
three-finger hand, sim/cube_task.py; they exist only on the batched engine, so their single env is one
engine world, sim/engine/world_env.py), gymnasium-robotics' Shadow Hand block tasks under their own
ids (sim/shadow_hand.py; optional: the `robotics` extra), and `quadruped-walk`, a task declared in a file
the package ships (sim/assets/quadruped_walk.yaml; any launch file may declare its own,
`declared:<file>`). The suite
tasks listed in `TASKS` are the supported ones; any other suite task resolves through `suite.load` too.
Factories import their simulator on call, so importing this module is cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from robot_rl.errors import ConfigError
from robot_rl.spec import TaskSpec

Factory = Callable[..., Any]  # (task_id, seed=None, render_mode=None) -> gymnasium.Env, unwrapped


def _locomotion(task_id: str, seed: int | None = None, render_mode: str | None = None) -> Any:
    from .locomotion import LocomotionEnv

    return LocomotionEnv(task_id, seed=seed, render_mode=render_mode)


def _dm_control(task_id: str, seed: int | None = None, render_mode: str | None = None) -> Any:
    from .dm_control_tasks import DmControlEnv

    domain, task = task_id.removeprefix("dmc:").split("-")
    return DmControlEnv(domain, task, seed=seed, render_mode=render_mode)


def _classic_control(task_id: str, seed: int | None = None, render_mode: str | None = None) -> Any:
    from .classic_control import ClassicControlEnv

    return ClassicControlEnv(task_id, seed=seed, render_mode=render_mode)


def _grid(task_id: str, seed: int | None = None, render_mode: str | None = None) -> Any:
    from .grid_tasks import GridTaskEnv

    return GridTaskEnv(task_id, seed=seed, render_mode=render_mode)


def _cube(task_id: str, seed: int | None = None, render_mode: str | None = None) -> Any:
    from .engine.world_env import EngineWorldEnv

    return EngineWorldEnv(task_id, seed=seed, render_mode=render_mode)


def _declared(task_id: str, seed: int | None = None, render_mode: str | None = None) -> Any:
    from .engine.world_env import EngineWorldEnv

    return EngineWorldEnv(task_id, seed=seed, render_mode=render_mode)


def _shadow(task_id: str, seed: int | None = None, render_mode: str | None = None) -> Any:
    from .shadow_hand import ShadowBlockEnv

    return ShadowBlockEnv(task_id, seed=seed, render_mode=render_mode)


def _atari(task_id: str, seed: int | None = None, render_mode: str | None = None) -> Any:
    from .atari import AtariEnv

    return AtariEnv(task_id, seed=seed, render_mode=render_mode)


TASKS: dict[str, Factory] = {
    "InvertedPendulum-v5": _locomotion,
    "InvertedDoublePendulum-v5": _locomotion,
    "Hopper-v5": _locomotion,
    "HalfCheetah-v5": _locomotion,
    "Walker2d-v5": _locomotion,
    "Ant-v5": _locomotion,
    "Humanoid-v5": _locomotion,
    "Reacher-v5": _locomotion,
    "Swimmer-v5": _locomotion,
    "Pusher-v5": _locomotion,
    "dmc:cheetah-run": _dm_control,
    "dmc:walker-walk": _dm_control,
    "dmc:cartpole-swingup": _dm_control,
    "CartPole-v1": _classic_control,
    "Acrobot-v1": _classic_control,
    "MountainCar-v0": _classic_control,
    "LunarLander-v3": _classic_control,
    "grid:book": _grid,
    "grid:bridge": _grid,
    "grid:cliff": _grid,
    "grid:cliff2": _grid,
    "grid:discount": _grid,
    "grid:maze": _grid,
    "atari:pong": _atari,
    "atari:breakout": _atari,
    "cube:rotate-z": _cube,
    "cube:reorient": _cube,
    "HandManipulateBlockRotateZ-v1": _shadow,
    "HandManipulateBlockRotateZDense-v1": _shadow,
    "HandManipulateBlock-v1": _shadow,
    "HandManipulateBlockDense-v1": _shadow,
    "quadruped-walk": _declared,  # our quadruped on command, declared in sim/assets/quadruped_walk.yaml
}

def task_names(all_dm_control: bool = False) -> tuple[str, ...]:
    """Registered task ids; with `all_dm_control`, every `dmc:` id of the suite as well (imports it)."""
    names = tuple(TASKS)
    if all_dm_control:
        from .dm_control_tasks import suite_tasks

        names += tuple(sorted(f"dmc:{d}-{t}" for d, t in suite_tasks() if f"dmc:{d}-{t}" not in TASKS))
    return names


def engine_task_names() -> tuple[str, ...]:
    """The task ids that also run on the batched MuJoCo engine (`vectorization="batched"`)."""
    return tuple(t for t in _engine_tasks() if t in TASKS)


def _engine_tasks() -> dict[str, Any]:
    """Every engine definition: the Gymnasium v5 ports, the cube tasks (sim/cube_task.py) and the
    declared tasks the package ships (sim/declared/source.py's PACKAGED)."""
    from .cube_task import engine_tasks
    from .declared.source import PACKAGED, packaged
    from .engine.gymnasium_tasks import TASKS as ENGINE_TASKS

    return {**ENGINE_TASKS, **engine_tasks(), **{name: packaged(name) for name in PACKAGED}}


def reports_successes(task_id: str) -> bool:
    """Whether `task_id`'s episodes report `successes` (goals reached in a row) in their final info."""
    return task_id.startswith("cube:") and task_id in TASKS


def is_engine_task(task_id: str) -> bool:
    """Whether `task_id` runs on the batched MuJoCo engine (a registered engine task or a declared one)."""
    return task_id in engine_task_names() or task_id.startswith("declared:")


def engine_task(task_id: str) -> Any:
    """The engine definition (`sim.engine.task.EngineTask`) of `task_id`; a ConfigError listing the ones
    there are if it has none."""
    engine_tasks = _engine_tasks()
    resolve(task_id)
    if task_id.startswith("declared:"):
        from .declared.source import load

        return load(task_id)
    if task_id not in engine_tasks:
        raise ConfigError(f"vectorization: 'batched' runs the MuJoCo engine's tasks only; {task_id!r} is not "
                          f"one of them ({', '.join(engine_task_names())}); use vectorization: sync or async")
    return engine_tasks[task_id]


def resolve(task_id: str) -> Factory:
    """The factory of `task_id`; a ConfigError listing the valid ids if there is none."""
    if not isinstance(task_id, str):
        raise ConfigError(f"task: expected a task id string, got {task_id!r}")
    if task_id in TASKS:
        return TASKS[task_id]
    if task_id.startswith("declared:"):  # a task declared in a launch file (sim/declared)
        return _declared
    if task_id.startswith("dmc:"):
        from .dm_control_tasks import suite_tasks

        parts = tuple(task_id.removeprefix("dmc:").split("-"))
        suite = suite_tasks()
        if parts in suite:
            return _dm_control
        domain = parts[0]
        valid = [f"dmc:{d}-{t}" for d, t in suite if d == domain] or [f"dmc:{d}-{t}" for d, t in suite]
        raise ConfigError(f"task: unknown dm_control task {task_id!r}; valid: {', '.join(valid)}")
    raise ConfigError(f"task: unknown task {task_id!r}; valid ids: {', '.join(TASKS)} "
                      f"(or any dm_control suite task as dmc:<domain>-<task>)")


def make_env(task_id: str, seed: int | None = None, render_mode: str | None = None,
             max_episode_steps: int | None = None, randomize: Any = None) -> Any:
    """One environment: the task's env (with `task_spec` and `robot_state()`) in a TimeLimit.

    `seed` seeds the first `reset()` (and the action space); `max_episode_steps` overrides the
    episode length (Gymnasium tasks: 1000 steps; dm_control tasks: their own time limit);
    `randomize` (a `sim.randomization.RandomizationConfig`) switches on domain randomization.
    """
    import gymnasium

    from .randomization import apply_randomization

    factory = resolve(task_id)
    env = factory(task_id, seed=seed, render_mode=render_mode)
    apply_randomization(env, randomize, task_id)
    # Gymnasium tasks carry their registered length; dm_control tasks end their own episodes.
    steps = max_episode_steps if max_episode_steps is not None else getattr(env, "max_episode_steps", None)
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"max_episode_steps: must be a positive integer, got {steps!r}")
        env = gymnasium.wrappers.TimeLimit(env, max_episode_steps=steps)
    return env


@functools.cache
def get_spec(task_id: str) -> TaskSpec:
    """The task's spec (built once from a fresh env of the task, then cached; specs are immutable)."""
    env = resolve(task_id)(task_id)
    try:
        return env.task_spec
    finally:
        env.close()


@functools.cache
def privileged_dim(task_id: str, names: tuple[str, ...]) -> int:
    """Width of the privileged (critic-only) terms `names` of an engine task (`EngineTask.privileged`);
    a ConfigError naming the valid terms, or the engine's tasks, if there are none such."""
    from .engine.task import build_spec, load_model, privileged_spec

    if not is_engine_task(task_id):
        raise ConfigError(f"policy.critic_privileged: task {task_id!r} declares no privileged terms; "
                          f"the MuJoCo engine's tasks may ({', '.join(engine_task_names())})")
    task = engine_task(task_id)
    model = load_model(task)
    return privileged_spec(task, model, build_spec(task, model), names).obs_dim


DISCRETE_FAMILIES: tuple[Factory, ...] = (_classic_control, _grid, _atari)
"""The task families whose actions are discrete (one index per step): what DQN trains on."""


def discrete_task_names() -> tuple[str, ...]:
    """Registered task ids with discrete actions, without building an env (for error messages)."""
    return tuple(name for name, factory in TASKS.items() if factory in DISCRETE_FAMILIES)
