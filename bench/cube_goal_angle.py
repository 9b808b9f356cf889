"""cube:reorient: a run's deterministic success against the goals' angular distance (the goal curriculum).

Evaluates one checkpoint of a run (`--checkpoint`, default latest) on cube:reorient with every goal of
the episode drawn within `angle` rad of the cube's orientation (uniform on SO(3) within it, beyond the
0.4 rad tolerance: `adr.goal_angle`'s goals, the range pinned at that angle), for each of `--angles`,
and on the task's own goals (uniform on SO(3): what `robot-rl eval` measures); the peer at every angle
is the zero action (the hand holds its start targets: what jostling and drift alone reach). The same
episodes' seeds everywhere (the run's eval seed). Prints one JSON line.

    python bench/cube_goal_angle.py /work/runs/reorient_cur --angles 0.6,1.0,1.5,2.0,3.14159 --episodes 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


class PinnedGoalAngle:
    """An evaluation hook that gives the eval world's episodes goals within `angle` rad (ADR pinned)."""

    def __init__(self, angle: float) -> None:
        self.angle = angle

    def attach(self, env: Any) -> None:
        from robot_rl.sim.adr import ADR, ADRConfig
        from robot_rl.sim.adr_randomizer import ADRRandomizer, adr_parameters
        from robot_rl.sim.randomization import RandomizationConfig

        config = ADRConfig(enabled=True, goal_angle=(self.angle, self.angle))
        adr = ADR(adr_parameters(RandomizationConfig(), config), config)
        engine = env.engine
        env.use_randomizer(ADRRandomizer(adr, RandomizationConfig(), engine.nominal, engine.physics_dt,
                                         engine.task.frame_skip, "cube:reorient",
                                         task_state=engine.task_state))

    def frame(self, episode: int, step: int, total: float, info: dict[str, Any]) -> None:
        pass

    def close(self, ok: bool) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--angles", default="0.6,1.0,1.5,2.0,2.5,3.141592653589793")
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from robot_rl.evaluation import evaluate
    from robot_rl.trainer import load_run_policy

    config, policy, state = load_run_policy(args.run, args.checkpoint)
    if config.task != "cube:reorient":
        parser.error(f"{args.run} trained {config.task}, not cube:reorient")
    load = os.getloadavg()[0]
    start = time.perf_counter()
    def zero(obs: np.ndarray) -> np.ndarray:
        return np.zeros(9)

    def measure(fn: Any, angle: float | None) -> dict[str, float]:
        hooks = [] if angle is None else [PinnedGoalAngle(angle)]
        result = evaluate(config.task, fn, args.episodes, config.eval.seed, hooks=hooks, simulator="engine")
        return {"success_rate": result["success_rate"],
                "consecutive_successes": result["consecutive_successes"],
                "mean_return": round(result["mean_return"], 2)}

    rows = []
    for angle in [float(a) for a in args.angles.split(",")]:
        rows.append({"goal_angle": round(angle, 4), "policy": measure(policy, angle),
                     "zero_action": measure(zero, angle)})
    own = {"policy": measure(policy, None), "zero_action": measure(zero, None)}
    print(json.dumps({"bench": "cube_goal_angle", "run": str(args.run), "checkpoint": args.checkpoint,
                      "step": state.get("step"), "episodes": args.episodes, "by_goal_angle": rows,
                      "task_own_goals": own,
                      "seconds": round(time.perf_counter() - start, 1),
                      "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
