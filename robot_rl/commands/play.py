"""`robot-rl play RUN_DIR|BUNDLE [--episodes N] [--video out.mp4] [--camera NAME] [--width W --height H]
[--randomize]`: watch a policy act. Deterministic episodes (episode i seeded seed + i), each frame
rendered headless with an overlay (task, episode, step, return, success where the task reports it),
written to an H.264 mp4, or shown in a window when there is no `--video` and a display exists.

MuJoCo tasks render through sim.rendering (MUJOCO_GL=egl by default: no display needed); Atari and
classic-control tasks show their own frames. `--simulator`: a run trained with `vectorization: batched`
plays on one world of the MuJoCo engine it trained on (`engine`), others on the registry's env.
`--randomize` plays under the training run's domain randomization (a bundle's manifest records it).
"""

from __future__ import annotations

import argparse
import json

from robot_rl.commands import seed_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("play", help="render a policy's episodes to a video (or a window)")
    p.add_argument("path", help="a run directory, a bundle folder (manifest.json) or zoo:<name>")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--video", default=None, help="write an H.264 mp4 here instead of opening a window")
    p.add_argument("--camera", default=None,
                   help="a camera of the MuJoCo model by name (default: the task's own view)")
    size = "pixels, even (default 480, or the task's own frames for Atari and classic control)"
    p.add_argument("--width", type=int, default=None, help=size)
    p.add_argument("--height", type=int, default=None, help=size)
    p.add_argument("--max-steps", type=int, default=None, help="end each episode after this many steps")
    p.add_argument("--seed", type=seed_arg, default=None,
                   help="seed of episode 0 (default: the evaluation seed)")
    p.add_argument("--checkpoint", default="latest", help="for a run directory: latest, best or a file")
    p.add_argument("--simulator", choices=("gymnasium", "engine"), default=None,
                   help="the physics to play on (default: the one the policy was trained on: the MuJoCo "
                        "engine for vectorization: batched, else Gymnasium's or dm_control's)")
    p.add_argument("--randomize", action="store_true",
                   help="play under the training run's domain randomization (randomize: section)")
    p.add_argument("--shadows", action="store_true", help="draw shadows and reflections (~5x slower)")
    p.add_argument("--no-overlay", action="store_true", help="frames without the text overlay")
    p.set_defaults(run=run_play)


def run_play(args: argparse.Namespace) -> int:
    from robot_rl.errors import ConfigError
    from robot_rl.evaluation import evaluate, resolve_simulator
    from robot_rl.policy_source import load_policy_source
    from robot_rl.recording import VideoRecorder
    from robot_rl.sim.rendering import RenderSettings, check_renderer, frame_render_mode

    if args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError("--max-steps must be >= 1")
    source = load_policy_source(args.path, args.checkpoint)
    requested = args.simulator or source.simulator
    render_mode = None if requested == "engine" else frame_render_mode(source.task)
    if render_mode is None:
        check_renderer()  # before MuJoCo is imported: a missing library breaks its import itself
    simulator = resolve_simulator(source.task, requested)
    if args.randomize and not source.randomize.active:
        raise ConfigError(f"--randomize: {args.path} was trained without domain randomization "
                          "(its randomize: section is empty)")
    size = {k: v for k, v in (("width", args.width), ("height", args.height)) if v is not None}
    settings = RenderSettings(**size, camera=args.camera, shadows=args.shadows, reflections=args.shadows)
    recorder = VideoRecorder(args.video, source.task, settings, overlay=not args.no_overlay,
                             native_size=not size)
    seed = source.seed if args.seed is None else args.seed
    result = evaluate(source.task, source.act, args.episodes, seed, max_steps=args.max_steps,
                      randomize=source.randomize if args.randomize else None, hooks=[recorder],
                      render_mode=render_mode, simulator=simulator)
    summary = {"task": source.task, "simulator": simulator, "episodes": args.episodes, "seed": seed,
               "returns": result["returns"], "lengths": result["lengths"], "frames": recorder.frames}
    if "success_rate" in result:
        summary["success_rate"] = result["success_rate"]
    if recorder.written is not None:
        summary["video"] = str(recorder.written)
    print(json.dumps(summary))
    return 0
