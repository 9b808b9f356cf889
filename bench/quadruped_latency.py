"""The quadruped with actuation latency: velocity tracking and falls of quadruped policies when each command
reaches the motors late (`randomize.actuation_delay` pinned to one value), each policy on the same episodes,
so that a policy trained with random latency is measured beside its peer trained without
(`zoo:quadruped-walk_ppo`) in the same run.

Why: a robot's command arrives after its state was measured (the driver's cycle, a bus, a ROS 2 hop). Over
ROS 2 a deploy that ticks late in the driver's cycle delivers every command one whole control period
(20 ms) late; the zoo policy falls under that (hardware/ros2_robot.py keeps the deploy in step with the
driver for that reason). A policy that tolerates a period of latency does not depend on that.

Conditions (nominal physics otherwise; deterministic policy; episode i seeded seed + i): the previous
command held for 0, 10 and 20 ms (0, 5 and 10 physics steps of 2 ms; 20 ms is one control period) of each
period. Each on "forward" commands (forward only, U[-1, 1] m/s: bench/quadruped_tracking.py's measure) and
on the task's own commands. Tracking error: per episode the mean over its steps of |command_xy - v_xy| (m/s,
base frame), averaged over episodes; a fall: an episode ended by a termination. Prints one JSON line.

    python bench/quadruped_latency.py /work/runs/quad_delay zoo:quadruped-walk_ppo --episodes 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASK = "quadruped-walk"
DELAYS = (0.0, 0.01, 0.02)
"""Seconds the previous command stays applied at the start of each control period."""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policies", nargs="+", help="run directories (latest checkpoint) or bundles (zoo:NAME)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1_000_000)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from quadruped_pushes import load_policy
    from quadruped_tracking import forward_only

    from robot_rl.evaluation import evaluate
    from robot_rl.sim.randomization import RandomizationConfig

    load_before = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"forward": forward_only(TASK, tmp), "task": TASK}
        for source in args.policies:
            label, policy = load_policy(source)
            row: dict[str, Any] = {"policy": label}
            for delay in DELAYS:
                randomize = RandomizationConfig(actuation_delay=(delay, delay)) if delay else None
                for which, task in commands.items():
                    r = evaluate(task, policy, args.episodes, args.seed, randomize=randomize)
                    key = f"delay_{delay * 1000:g}ms/{which}"
                    row[key] = {"tracking_error": round(r["velocity_tracking_error"], 4), "falls": r["falls"],
                                "mean_return": round(r["mean_return"], 1)}
                    print(json.dumps({"policy": label, key: row[key]}), file=sys.stderr, flush=True)
            results.append(row)
    print(json.dumps({"bench": "quadruped_latency", "episodes": args.episodes, "seed": args.seed,
                      "delays_s": list(DELAYS), "results": results, "load_before": round(load_before, 2),
                      "load_after": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
