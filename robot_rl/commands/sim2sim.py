"""`robot-rl sim2sim BUNDLE [--episodes N] [--seed S] [--json]`: the same policy in MuJoCo and PyBullet.

Each episode runs through the deployment path (`ControlLoop`, safety filter, robot backend) as fast as
possible, episode i from seed `seed + i` in both simulators (PyBullet starts from MuJoCo's reset
state, reset noise included), and the command reports both mean returns and their ratio
(PyBullet / MuJoCo). A ratio near 1 says the policy does not depend on one simulator's quirks; what
PyBullet is given of the MuJoCo model, and what it is not, is described in
`robot_rl.sim.pybullet_twin`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from robot_rl.commands import seed_arg

SIMULATORS = ("mujoco", "pybullet")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim2sim", help="run a bundle in MuJoCo and in PyBullet; report both returns",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="a bundle folder (manifest.json) or zoo:<name>")
    p.add_argument("--episodes", type=int, default=5, help="episodes per simulator (default 5)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of episode 0 (default 0)")
    p.add_argument("--max-delta", type=float, default=None, metavar="FRACTION",
                   help="safety filter rate limit, fraction of the command range per step (default 0.5)")
    p.add_argument("--runtime", default="numpy", help="policy runtime: numpy (default), onnx or torch")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_sim2sim)


def run_episodes(policy: Any, backend: str, episodes: int, seed: int,
                 max_delta: float | None = None) -> dict[str, Any]:
    """`episodes` episodes of `policy` on a simulated backend, fast, through the control loop."""
    import numpy as np

    from robot_rl.commands.deploy import backend_module
    from robot_rl.hardware.control_loop import ControlLoop
    from robot_rl.hardware.safety import SafetyConfig, SafetyFilter

    config = SafetyConfig() if max_delta is None else SafetyConfig(max_delta=max_delta)
    robot = backend_module(backend).make_robot(policy.spec, {"realtime": False, "seed": seed})
    loop = ControlLoop(robot, policy, SafetyFilter(policy.spec, config))
    returns, lengths, interventions = [], [], 0
    try:
        for _ in range(episodes):
            stats = loop.run(close=False)
            returns.append(float(stats.episode_return or 0.0))
            lengths.append(stats.steps)
            interventions = stats.safety["total"]
    finally:
        robot.close()
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
            "returns": returns, "lengths": lengths, "safety_interventions": interventions}


def run_sim2sim(args: argparse.Namespace) -> int:
    from robot_rl.errors import ConfigError
    from robot_rl.policies import load

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    policy = load(args.bundle, runtime=args.runtime)
    results = {name: run_episodes(policy, name, args.episodes, args.seed, args.max_delta)
               for name in SIMULATORS}
    base = results["mujoco"]["mean_return"]
    ratio = results["pybullet"]["mean_return"] / base if base != 0 else None
    report = {"task": policy.spec.name, "bundle": args.bundle, "episodes": args.episodes, "seed": args.seed,
              **results, "ratio": ratio}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{policy.spec.name}: {args.episodes} episodes from seed {args.seed}")
    for name in SIMULATORS:
        r = results[name]
        print(f"  {name:<9} return {r['mean_return']:10.2f} ± {r['std_return']:.2f}   "
              f"mean length {sum(r['lengths']) / len(r['lengths']):.0f}")
    print(f"  ratio pybullet / mujoco: {'n/a (MuJoCo return is 0)' if ratio is None else f'{ratio:.3f}'}")
    return 0
