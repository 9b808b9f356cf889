"""A declared task described in plain text: what `robot-rl task check` prints."""

from __future__ import annotations

import mujoco

from ..engine.task import build_spec, load_model
from .source import load, read


def describe(task_id: str) -> str:
    """Joints, actuators, the observation layout (columns per term) and the terms of a declared task."""
    task = load(task_id)
    model = load_model(task)
    spec = build_spec(task, model)
    lines = [f"task {task_id}",
             f"  model: {model.nbody - 1} bodies, {model.njnt} joints, timestep {model.opt.timestep} s; "
             f"control period {spec.control_period} s ({task.frame_skip} steps), "
             f"episode {task.max_episode_steps} steps"]
    lines.append(f"  policy joints ({len(spec.joint_names)}, action {spec.action.kind}):")
    for i, name in enumerate(spec.joint_names):
        act = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i)
        lines.append(f"    {i:2d} {name:<20} actuator {act}, command [{spec.action.low[i]:.4g}, "
                     f"{spec.action.high[i]:.4g}], limits {spec.joint_limits[i]}")
    lines.append(f"  observation ({spec.obs_dim} values):")
    for name, cols in spec.observation_slices().items():
        lines.append(f"    [{cols.start:3d}:{cols.stop:3d}] {name}")
    declared = read(task_id)
    lines.append("  rewards (weight x term, summed per step):")
    lines += [f"    {t.weight:+g} x {t.name} {dict(t.options) or ''}".rstrip() for t in declared.rewards]
    lines.append("  terminations (timeout: truncation at the episode length):")
    lines += [f"    {t.name} {dict(t.options) or ''}".rstrip() for t in declared.terminations]
    return "\n".join(lines)
