"""Does a quadruped policy walk on after the deploy holds the robot? Prints one JSON line.

    python bench/quadruped_holds.py zoo:quadruped-walk_ppo /work/runs/quad_delay --worlds 32

Why: on a robot the safety layer answers a stale state (and a driver a timed-out command) with the safe
command, the measured pose, for a period or more; a loaded host's first periods over ROS 2 often bring
one (tests/test_quadruped_ros2.py). Each policy walks `--worlds` worlds of quadruped-walk from the same
seeds, each world a different robot (the quadruped launch files' ranges: friction x0.5-1.25, mass and
motor strength x0.9-1.1, per world) from a perturbed start (`initial_state_noise` 0.02: the task's own
reset has no noise, so without these every world would walk the same steps), told 0.6 m/s forward for
`--steps` control periods, with every world held for `hold` periods
from step `at`, per case: its servos sent their joints' measured positions (the deploy's safe command,
`randomize.hold`'s `Hold.safe`), as the action that maps onto them.
Per case: falls, worlds that made less than 0.3 m ("frozen"), and the median forward distance of those
that did not fall. The no-hold case is the reference.

A bundle (not a run directory) is also deployed as on a robot: `robot-rl deploy`'s control loop on the
MuJoCo backend, 0.6 m/s forward, its first 0, 1 or 3 ticks held by the safety layer (a stale state as
the stream starts) before the policy's first command; `deploy` rows: the distance walked in `--steps`
ticks, one episode each (the backend's nominal robot).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASES = ((0, 0), (1, 0), (3, 0), (1, 100), (3, 100), (10, 100))  # (periods held, from step)
COMMAND = [0.6, 0.0, 0.0]  # forward m/s, lateral m/s, yaw rad/s


def _robots():
    from robot_rl.sim.randomization import RandomizationConfig

    return RandomizationConfig(geom_friction_scale=(0.5, 1.25), body_mass_scale=(0.9, 1.1),
                               actuator_gain_scale=(0.9, 1.1), initial_state_noise=0.02, scale_per="world")


def _forward(engine) -> None:
    """Every world of `engine` told 0.6 m/s forward, never redrawn."""
    engine.task_state.since_draw[:] = -(10 ** 9)
    engine._goals["command"][:] = COMMAND


def walk(policy, worlds: int, steps: int, hold: int, at: int, seed: int) -> dict:
    from robot_rl import sim
    from robot_rl.sim.randomization.hold import Hold, HoldConfig

    env = sim.make("quadruped-walk", worlds, seed=seed, vectorization="batched", randomize=_robots())
    try:
        env.reset(seed=seed)
        engine = env.engine
        _forward(engine)
        obs = engine._observe()
        safe = Hold(HoldConfig(periods=(1, 1)), engine.nominal).safe
        offset, scale = np.asarray(env.task_spec.action.offset), np.asarray(env.task_spec.action.scale)
        x0 = np.array([engine.world_state(i)["qpos"][0] for i in range(worlds)])
        fell = np.zeros(worlds, dtype=bool)
        for t in range(steps):
            action = np.stack([policy(o) for o in obs]).astype(np.float32)
            if at <= t < at + hold:  # the action whose targets are the measured joint positions
                qpos = [engine.world_state(i)["qpos"] for i in range(worlds)]
                action[...] = np.clip((np.stack([safe(q) for q in qpos]) - offset) / scale, -1.0, 1.0)
            obs, _, terminated, _, _ = env.step(action)
            fell |= terminated
        dx = np.array([engine.world_state(i)["qpos"][0] for i in range(worlds)]) - x0
    finally:
        env.close()
    standing = dx[~fell]
    return {"hold": hold, "at": at, "fell": int(fell.sum()), "frozen": int((standing < 0.3).sum()),
            "median_dx": None if standing.size == 0 else round(float(np.median(standing)), 2),
            "range_dx": None if standing.size == 0 else [round(float(standing.min()), 2),
                                                         round(float(standing.max()), 2)]}


def deploy_walk(source: str, steps: int, held: int, seed: int) -> dict:
    """`source` deployed by the control loop on the MuJoCo backend, its first `held` ticks held."""
    from robot_rl.hardware.control_loop import ControlLoop
    from robot_rl.hardware.mujoco_robot import MujocoRobot
    from robot_rl.policies import load

    robot = MujocoRobot("quadruped-walk", seed=seed, realtime=False)
    loop = ControlLoop(robot, load(source))
    try:
        loop.start()
        engine = robot._engine
        _forward(engine)
        x0 = engine.world_state(0)["qpos"][0]
        for _ in range(held):
            loop.hold("stale", "bench: the first states came late")
        fell = False
        for _ in range(steps):
            loop.tick()
            if robot.episode_over:
                fell = True
                break
        dx = float(engine.world_state(0)["qpos"][0] - x0)
    finally:
        loop.stop()
        robot.close()
    return {"held_before_first_command": held, "fell": fell, "dx": None if fell else round(dx, 2)}


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("policies", nargs="+", help="run directories (latest checkpoint) or bundles (zoo:NAME)")
    p.add_argument("--worlds", type=int, default=32)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=100)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from quadruped_conditions import load_policy

    load_before = os.getloadavg()[0]
    rows = []
    for source in args.policies:
        label, policy = load_policy(source)
        cases = [walk(policy, args.worlds, args.steps, hold, at, args.seed) for hold, at in CASES]
        for case in cases:
            print(label, case, file=sys.stderr, flush=True)
        row = {"policy": label, "cases": cases}
        if not (Path(source) / "config.yaml").is_file():  # a bundle: deployed as on a robot too
            row["deploy"] = [deploy_walk(source, args.steps, held, args.seed) for held in (0, 1, 3)]
            print(label, row["deploy"], file=sys.stderr, flush=True)
        rows.append(row)
    print(json.dumps({"benchmark": "quadruped_holds", "worlds": args.worlds, "steps": args.steps,
                      "seed": args.seed, "command": COMMAND, "loadavg": [load_before,
                                                                              os.getloadavg()[0]],
                      "policies": rows}))


if __name__ == "__main__":
    main()
