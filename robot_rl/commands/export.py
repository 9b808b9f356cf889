"""`robot-rl export RUN_DIR --out DIR`: write a run's policy as a bundle, evaluated as shipped."""

from __future__ import annotations

import argparse
import json

from robot_rl.commands import seed_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's policy as a deployable bundle",
                       description="Write manifest.json, weights.npz and (with the onnx extra) policy.onnx "
                                   "for the run's newest (or best, or a given) checkpoint, then evaluate the "
                                   "bundle as shipped.")
    p.add_argument("run_dir", help="a run directory (config.yaml, checkpoints/)")
    p.add_argument("--out", required=True, help="the bundle folder to write")
    p.add_argument("--episodes", type=int, default=None,
                   help="evaluation episodes recorded in the manifest (default: the run's eval.episodes; "
                        "0: none)")
    p.add_argument("--seed", type=seed_arg, default=None,
                   help="seed of evaluation episode 0 (default: the run's)")
    p.add_argument("--checkpoint", default="latest",
                   help="latest (default), best (the best periodic evaluation: checkpoints/best.pt) or the "
                        "path of a checkpoint file")
    onnx = p.add_mutually_exclusive_group()
    onnx.add_argument("--onnx", dest="onnx", action="store_true", default=None,
                      help="write policy.onnx (default: when the onnx package is installed)")
    onnx.add_argument("--no-onnx", dest="onnx", action="store_false", help="do not write policy.onnx")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from robot_rl.export import export_run

    bundle = export_run(args.run_dir, args.out, episodes=args.episodes, seed=args.seed, onnx=args.onnx,
                        force=args.force, checkpoint=args.checkpoint)
    prov = bundle.manifest.provenance
    ev = prov["evaluation"]
    summary = {"bundle": str(bundle.path), "task": prov["task"], "algorithm": prov["algorithm"],
               "steps": prov["steps"], "files": sorted(["manifest.json", *bundle.files]),
               "bytes": sum(len(b) for b in bundle.files.values())
               + (bundle.path / "manifest.json").stat().st_size,
               "mean_return": None if ev is None else ev["mean_return"],
               "std_return": None if ev is None else ev["std_return"],
               "episodes": 0 if ev is None else ev["episodes"]}
    if args.json:
        print(json.dumps(summary))
    else:
        result = "not evaluated" if ev is None else \
            f"return {ev['mean_return']:.2f} ± {ev['std_return']:.2f} over {ev['episodes']} episodes " \
            f"(seed {ev['seed']})"
        print(f"wrote {summary['bundle']}: {summary['task']} {summary['algorithm']} "
              f"at step {summary['steps']}, {', '.join(summary['files'])} "
              f"({summary['bytes'] / 1024:.1f} KiB); {result}")
    return 0
