"""A task described in plain text: what `robot-rl task check` prints."""

from __future__ import annotations

import os
from typing import Any

import mujoco

from robot_rl import strict_yaml
from robot_rl.errors import ConfigError
from robot_rl.spec import TaskSpec

from ..engine.task import build_spec, load_model
from .source import PACKAGED, declared_id, load, packaged_file, read


def describe_file(path: str) -> str:
    """The task of a launch file: declared in it (a `task:` mapping, or a file of that mapping), or a
    registered task id it names (described from the registry, and said to be one)."""
    if not os.path.isfile(path):
        raise ConfigError(f"task check: the file {path!r} does not exist")
    data = strict_yaml.read(path)
    task = data.get("task") if isinstance(data, dict) else None
    if isinstance(task, str):  # a registered id (`task: cube:rotate-z`), not a declaration
        return "\n".join([describe_registered(task), *_randomization(data, task)])
    return "\n".join([describe(declared_id(path)), *_randomization(data, declared_id(path))])


def _randomization(data: dict[str, Any], task_id: str) -> list[str]:
    """The launch file's `randomize:` section, checked against the task (a term it cannot take, a bad
    range: that term's one-line error)."""
    if data.get("randomize") is None:
        return []
    from robot_rl.config import from_dict

    from ..randomization import RandomizationConfig, check_randomization

    config = from_dict(RandomizationConfig, data["randomize"], "randomize")
    check_randomization(task_id, config)
    lines = [f"  {config.describe()} (training; evaluation runs the nominal model unless eval.randomize)"]
    if config.push.active:
        lines.append(f"    push: from each episode's start, every [{config.push.interval[0]:g}, "
                     f"{config.push.interval[1]:g}] s (drawn per world), a velocity added to the free "
                     f"base's (x, y m/s world frame; yaw rad/s body frame)")
    return lines


def describe_registered(task_id: str) -> str:
    """A registered task: its joints and observation layout from its spec (its terms are code)."""
    from ..registry import engine_task, get_spec, is_engine_task, resolve

    resolve(task_id)  # an unknown id: the registry's error, listing the valid ones
    if task_id in PACKAGED:  # declared in a file the package ships: its terms too
        return describe(declared_id(packaged_file(task_id)),
                        f"task {task_id}: a registered task, declared in {packaged_file(task_id)}")
    lines = [f"task {task_id}: a registered task (defined in code, not declared in this file; "
             f"a `task:` mapping declares one)"]
    if is_engine_task(task_id):
        task = engine_task(task_id)
        model = load_model(task)
        lines += _layout(build_spec(task, model), model, task.frame_skip, task.max_episode_steps)
    else:
        spec = get_spec(task_id)
        lines += _layout(spec, None, spec.physics_steps, None)
    return "\n".join(lines)


def _layout(spec: TaskSpec, model: mujoco.MjModel | None, frame_skip: int, episode: int | None) -> list[str]:
    lines = []
    if model is not None:
        lines.append(f"  model: {model.nbody - 1} bodies, {model.njnt} joints, timestep {model.opt.timestep} "
                     f"s; control period {spec.control_period} s ({frame_skip} steps)"
                     + (f", episode {episode} steps" if episode is not None else ""))
    else:
        lines.append(f"  control period {spec.control_period} s ({frame_skip} physics steps)")
    lines.append(f"  policy joints ({len(spec.joint_names)}, action {spec.action.kind}):")
    for i, name in enumerate(spec.joint_names):
        act = "" if model is None else \
            f"actuator {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) or f'#{i}'}, "
        limits = f"limits {spec.joint_limits[i]}" if not spec.action.is_discrete else "discrete"
        low, high = spec.action.low[i], spec.action.high[i]
        lines.append(f"    {i:2d} {name:<20} {act}command [{low:.4g}, {high:.4g}], {limits}")
    lines.append(f"  observation ({spec.obs_dim} values):")
    for name, cols in spec.observation_slices().items():
        lines.append(f"    [{cols.start:3d}:{cols.stop:3d}] {name}")
    return lines


def describe(task_id: str, title: str | None = None) -> str:
    """Joints, actuators, the observation layout (columns per term) and the terms of a declared task."""
    task = load(task_id)
    model = load_model(task)
    spec = build_spec(task, model)
    lines = [title or f"task {task_id}", *_layout(spec, model, task.frame_skip, task.max_episode_steps)]
    declared = read(task_id)
    if declared.commands is not None:
        c = declared.commands
        lines.append(f"  commands (redrawn every {c.resample_seconds:g} s): forward {list(c.lin_vel_x)} m/s, "
                     f"lateral {list(c.lin_vel_y)} m/s, yaw rate {list(c.ang_vel_z)} rad/s")
    floor = "" if declared.reward_floor is None else f", clipped below at {declared.reward_floor:g}"
    lines.append(f"  rewards (weight x term, summed per step{floor}):")
    lines += [f"    {t.weight:+g} x {t.name} {dict(t.options) or ''}".rstrip() for t in declared.rewards]
    lines.append("  terminations (timeout: truncation at the episode length):")
    lines += [f"    {t.name} {dict(t.options) or ''}".rstrip() for t in declared.terminations]
    return "\n".join(lines)
