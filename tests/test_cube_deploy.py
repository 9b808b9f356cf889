"""The cube through the hardware layer: the control loop integrates the relative action exactly as the
engine does in training, the safe action of a relative kind holds the targets, and the host-side goals
count hold-and-advance and drops on the measured state."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.goals import quat_about_z
from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.goal_tracker import GoalTracker, goal_tracker, parse_goal
from robot_rl.hardware.mujoco_robot import MujocoRobot
from robot_rl.hardware.robot import RobotState
from robot_rl.hardware.safety import SafetyFilter
from robot_rl.sim.engine.batched import BatchedEngine
from robot_rl.sim.registry import engine_task
from robot_rl.spec import ObservationBuilder

TASK = "cube:rotate-z"


class Scripted:
    """A policy playing a fixed sequence of normalised actions, recording the state fields it saw."""

    def __init__(self, spec, actions: np.ndarray) -> None:
        self.spec, self.actions, self.seen = spec, actions, []

    def act_normalized(self, fields):
        self.seen.append({k: np.array(v, dtype=np.float64) for k, v in fields.items()})
        return self.actions[len(self.seen) - 1]

    def act(self, fields):  # a relative action is never asked for robot units
        raise AssertionError("the loop must integrate act_normalized")


def test_the_loop_integrates_and_observes_the_relative_action_exactly_as_the_engine():
    seed, steps = 3, 12
    robot = MujocoRobot(TASK, seed=seed, realtime=False)
    robot.configure()
    spec = robot.spec
    assert spec is not None and spec.action.kind == "position_delta"
    actions = np.random.default_rng(0).uniform(-1.5, 1.5, (steps, spec.act_dim))  # beyond ±1: clipped
    policy = Scripted(spec, actions)
    loop = ControlLoop(robot, policy, goals=goal_tracker(spec, seed=0))
    stats = loop.run(steps=steps)
    assert stats.steps == steps and stats.safety["total"] == 0

    engine = BatchedEngine(engine_task(TASK), 1, seed=seed, threads=1, autoreset=False)  # training's path
    engine.reset(seed=seed)
    builder, loop_builder = ObservationBuilder(spec), ObservationBuilder(spec)
    try:
        for k in range(steps):
            fields = engine.world_state(0)
            seen = policy.seen[k]
            for name in ("qpos", "qvel", "joint_targets", "last_action"):
                np.testing.assert_allclose(seen[name], fields[name], rtol=0, atol=1e-12,
                                           err_msg=f"{name} @ {k}")
            seen["cube_goal"] = fields["cube_goal"]  # the host draws its own goals: compare the rest
            np.testing.assert_allclose(loop_builder.build(seen), builder.build(fields), rtol=0, atol=1e-12)
            engine.step(actions[k][None])
    finally:
        engine.close()


def _state(q: np.ndarray, seq: int) -> RobotState:
    return RobotState(joint_positions=q, joint_velocities=np.zeros_like(q), timestamp=0.05 * seq,
                      sequence=seq)


def test_the_safe_action_of_a_relative_kind_holds_the_current_targets():
    from robot_rl.sim import get_spec

    spec = get_spec(TASK)
    f = SafetyFilter(spec)
    measured = np.full(9, 0.1)
    f.reset(_state(measured, 1))
    np.testing.assert_allclose(f.safe_action(_state(measured, 1)), measured)  # seeded from the measurement
    target = measured + 0.05
    np.testing.assert_allclose(f.filter(target, _state(measured + 0.2, 2), now=0.1), target)
    # the joints moved on, but holding means the targets stay where they were sent (a zero change)
    np.testing.assert_allclose(f.refuse("stale", "test", _state(measured + 0.3, 3)), target)
    f.estop("test")
    np.testing.assert_allclose(f.filter(target + 0.1, _state(measured + 0.3, 4), now=0.2), target)


def _fields(yaw: float, z: float = 0.03) -> dict[str, np.ndarray]:
    qpos = np.zeros(16)
    qpos[9:12] = [0.0, 0.0, z]
    qpos[12:16] = quat_about_z(np.array([yaw]))[0]
    return {"qpos": qpos}


def test_hold_and_advance_on_the_measured_orientation_counts_scripted_successes_and_a_drop():
    from robot_rl.sim import get_spec

    spec = get_spec(TASK)
    tracker = goal_tracker(spec, seed=1)
    assert isinstance(tracker, GoalTracker) and tracker.field == "cube_goal"
    tracker.reset(_fields(0.0), sequence=0)
    first = tracker.goal.copy()
    yaw = 2 * np.arctan2(first[3], first[0])
    assert abs(abs(yaw) - np.pi / 2) < 1e-9  # rotate-z: a quarter turn from the measured orientation
    seq = 1
    for _ in range(4):  # within 0.4 rad for four updates: not yet
        tracker.update(_fields(yaw - 0.3), seq)
        seq += 1
    assert tracker.successes == 0
    tracker.update(_fields(yaw - 0.3), seq - 1)  # the same measurement again: not a hold step
    assert tracker.successes == 0
    out = tracker.update(_fields(yaw - 0.3), seq)  # the fifth: reached, the next goal at once
    assert tracker.successes == 1 and not np.allclose(out["cube_goal"], first)
    tracker.update(_fields(yaw, z=-0.05), seq + 1)  # below the palm: a drop
    assert tracker.dropped and tracker.report()["success"]


def test_a_fixed_goal_parameter_stays_the_goal_and_bad_goals_are_one_error():
    from robot_rl.sim import get_spec

    spec = get_spec(TASK)
    tracker = goal_tracker(spec, goal=parse_goal("yaw:90"))
    assert tracker is not None
    tracker.reset(_fields(0.0), 0)
    for seq in range(1, 16):  # reached after 5 updates, then held on: counted once
        tracker.update(_fields(np.pi / 2), seq)
    np.testing.assert_allclose(tracker.goal, quat_about_z(np.array([np.pi / 2]))[0])
    assert tracker.successes == 1 and tracker.report()["goal_source"] == "fixed"
    tracker.update(_fields(0.0), 16)  # left, then reached again: a second success
    for seq in range(17, 22):
        tracker.update(_fields(np.pi / 2), seq)
    assert tracker.successes == 2
    tracker.update(_fields(0.0), 22)
    for seq in range(23, 28):  # a topic repeating the same goal every update does not restart the hold
        tracker.set_goal(tuple(-quat_about_z(np.array([np.pi / 2]))[0]))
        tracker.update(_fields(np.pi / 2), seq)
    assert tracker.successes == 3
    tracker.set_goal((1.0, 0.0, 0.0, 0.0))  # another goal: taken at the next measurement
    np.testing.assert_allclose(tracker.goal, quat_about_z(np.array([np.pi / 2]))[0])
    assert tracker.update(_fields(0.0), 28)["cube_goal"].tolist() == [1.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(tracker.goal, [1.0, 0.0, 0.0, 0.0])
    for bad in ("1,2,3", "0,0,0,0", "yaw:x", "nan,0,0,1"):
        with pytest.raises(ConfigError, match="goal"):
            goal_tracker(spec, goal=parse_goal(bad))
    with pytest.raises(ConfigError, match="no host-side goal"):
        goal_tracker(get_spec("Hopper-v5"), goal=(1.0, 0.0, 0.0, 0.0))


def test_the_policy_nodes_diagnostics_carry_a_goal_tasks_goals():
    from robot_rl.hardware.ros2_diagnostics import NodeSnapshot, diagnose
    from robot_rl.sim import get_spec

    tracker = goal_tracker(get_spec(TASK), seed=0)
    assert tracker is not None
    tracker.reset(_fields(0.0), 0)
    values = diagnose(NodeSnapshot("active", task=TASK, goals=tracker.report())).values
    assert values["goals_reached"] == 0 and values["goal_source"] == "drawn" and values["dropped"] is False
    assert values["goal_error_rad"] == pytest.approx(np.pi / 2)
    assert "goals_reached" not in diagnose(NodeSnapshot("active", task="Hopper-v5")).values
