"""Time to film a policy: a 1000-step Hopper episode at 480x480 to an H.264 mp4, end to end (rollout,
headless rendering, overlay, encoding), with robot_rl's renderer settings and, as the peer, Gymnasium's
own `render()` (MuJoCo's default scene: shadows, reflections, 4x multisampling) writing the same file;
the default settings also on one world of the MuJoCo engine (`play` of a batched run). Prints one JSON
line.

    MUJOCO_GL=egl python bench/render_video.py            # --steps 1000 --peer-steps 200
    MUJOCO_GL=egl python bench/render_video.py --only robot_rl_default,robot_rl_default_engine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any


def _cpu_seconds() -> float:
    """CPU time of this process (all its threads: llvmpipe renders on several) and of its finished
    children (ffmpeg): what the video costs, whatever else the machine is doing."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _film(bundle: str, steps: int, settings: Any, out: Path, simulator: str = "gymnasium"
          ) -> dict[str, float]:
    from robot_rl.evaluation import evaluate
    from robot_rl.policies import load
    from robot_rl.recording import VideoRecorder
    from robot_rl.video import video_info

    policy = load(bundle)
    recorder = VideoRecorder(out, policy.spec.name, settings, episodes=1)
    start, cpu = time.perf_counter(), _cpu_seconds()
    result = evaluate(policy.spec.name, policy.act_normalized, 1, 1_000_000, max_steps=steps,
                      hooks=[recorder], simulator=simulator)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    frames = video_info(out)["frames"]
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "frames": frames,
            "fps": round(frames / seconds, 1), "episode_steps": result["lengths"][0]}


def _film_gymnasium(bundle: str, steps: int, out: Path) -> dict[str, float]:
    """The peer: Gymnasium's MujocoRenderer (its default scene options) on the same rollout and writer."""
    import gymnasium
    import numpy as np

    from robot_rl.policies import load
    from robot_rl.spec import ObservationBuilder, action_to_robot
    from robot_rl.video import VideoWriter, video_info

    policy = load(bundle)
    env = gymnasium.make("Hopper-v5", render_mode="rgb_array", width=480, height=480).unwrapped
    builder = ObservationBuilder(policy.spec)
    start, cpu = time.perf_counter(), _cpu_seconds()
    env.reset(seed=1_000_000)
    with VideoWriter(out, fps=125) as writer:
        writer.write(env.render())
        for _ in range(steps):
            state = {"qpos": env.data.qpos.copy(), "qvel": env.data.qvel.copy()}
            action = action_to_robot(policy.spec, policy.act_normalized(builder.build(state)))
            _, _, terminated, truncated, _ = env.step(np.asarray(action))
            writer.write(env.render())
            if terminated or truncated:
                break
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    env.close()
    frames = video_info(out)["frames"]
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "frames": frames,
            "fps": round(frames / seconds, 1)}


def main() -> None:
    from robot_rl.sim.rendering import RenderSettings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="zoo:Hopper-v5_ppo")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--peer-steps", type=int, default=200, help="Gymnasium's renderer is slow: fewer frames")
    p.add_argument("--only", default=None, help="comma-separated variants to run (default: all)")
    args = p.parse_args()
    variants = {  # name -> (settings, simulator)
        "robot_rl_default": (RenderSettings(), "gymnasium"),  # no shadows, reflections or multisampling
        # what `play` does for a run trained with vectorization: batched: one world of the MuJoCo engine
        "robot_rl_default_engine": (RenderSettings(), "engine"),
        "robot_rl_no_skybox": (RenderSettings(skybox=False), "gymnasium"),
        "robot_rl_msaa4": (RenderSettings(multisamples=4), "gymnasium"),
        "robot_rl_full": (RenderSettings(shadows=True, reflections=True, multisamples=4), "gymnasium"),
    }
    chosen = [*variants, "gymnasium_render"] if args.only is None else args.only.split(",")
    unknown = [v for v in chosen if v not in variants and v != "gymnasium_render"]
    if unknown:
        p.error(f"--only: unknown variant {unknown[0]!r}; valid: {', '.join(variants)}, gymnasium_render")
    load_before = os.getloadavg()
    report: dict[str, Any] = {"cpus": os.cpu_count(),
                              "mujoco_gl": os.environ.get("MUJOCO_GL", "(unset: egl)")}
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            if name == "gymnasium_render":
                report[name] = _film_gymnasium(args.bundle, args.peer_steps, Path(tmp) / "gym.mp4")
                continue
            settings, simulator = variants[name]
            steps = args.steps if name != "robot_rl_full" else args.peer_steps
            report[name] = _film(args.bundle, steps, settings, Path(tmp) / f"{name}.mp4", simulator)
    report["loadavg_1min_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
