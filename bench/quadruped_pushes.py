"""The quadruped pushed: velocity tracking and falls of quadruped policies with and without random pushes
(`randomize.push`), each policy on the same episodes, so that a policy trained with pushes is measured
beside its peer trained without (`zoo:quadruped-walk_ppo`) in the same run.

Conditions (nominal physics otherwise; deterministic policy; episode i seeded seed + i):
- "nominal": no pushes;
- "push_0.5": launch/quadruped_walk_ppo.yaml's pushes, +-0.5 m/s in x and y every [5, 7.5] s (one per
  10-second episode);
- "push_1.0": legged_gym's strength, +-1 m/s in x and y, every [2, 4] s (2-5 per episode).
Each on "forward" commands (forward only, U[-1, 1] m/s: the goal's measure, bench/quadruped_tracking.py)
and on the task's own commands. Tracking error: per episode the mean over its steps of |command_xy -
v_xy| (m/s, base frame; the pushes' own disturbance included), averaged over episodes; a fall: an
episode ended by a termination. `pushes`: how many pushes the episodes got in all. Prints one JSON line.

    python bench/quadruped_pushes.py /work/runs/quad_push zoo:quadruped-walk_ppo --episodes 10
"""

from __future__ import annotations

from typing import Any

from quadruped_conditions import arguments, run


def conditions() -> dict[str, Any]:
    from robot_rl.sim.randomization import RandomizationConfig
    from robot_rl.sim.randomization.push import PushConfig

    half = PushConfig(interval=(5.0, 7.5), x=(-0.5, 0.5), y=(-0.5, 0.5))
    one = PushConfig(interval=(2.0, 4.0), x=(-1.0, 1.0), y=(-1.0, 1.0))
    return {"nominal": None, "push_0.5": RandomizationConfig(push=half),
            "push_1.0": RandomizationConfig(push=one)}


def main() -> None:
    args = arguments(__doc__)
    named = conditions()
    run("quadruped_pushes", named, args, count_pushes=True,
        conditions={k: v.describe() if v else "none" for k, v in named.items()})


if __name__ == "__main__":
    main()
