"""The policy node's pieces that need no ROS: staleness from arrival, the diagnostics function, the
joints a driver must publish (spec, manifest, decoder), and ControlLoop's tick-at-a-time interface.
The node's behaviour over real rclpy is tests/test_ros2.py's."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.ros2_diagnostics import NodeSnapshot, RobotCounters, as_text, diagnose
from robot_rl.hardware.ros2_node_timing import StateSchedule, stale_detail, watchdog_period
from robot_rl.hardware.ros2_robot import Ros2Robot, robot_joint_names
from robot_rl.policies import load
from robot_rl.spec import SpecError, TaskSpec

ROOT = Path(__file__).resolve().parents[1]
PENDULUM = "zoo:InvertedPendulum-v5_ppo"
ZOO = ("InvertedPendulum-v5_ppo", "Hopper-v5_ppo", "HalfCheetah-v5_ppo")


# ------------------------------------------------------------------------------------------ staleness


def test_a_state_ages_from_its_arrival_and_the_watchdog_fires_just_past_the_timeout():
    assert stale_detail(None, 5.0, 0.06) == "no state has arrived"
    assert stale_detail(1.0, 1.0599, 0.06) is None  # just under the timeout old: still fresh
    assert "arrived 60.5 ms ago (stale timeout 60.0 ms)" in stale_detail(1.0, 1.0605, 0.06)
    assert watchdog_period(0.06, 0.04) == pytest.approx(0.0605)  # 0.5 ms past, at most
    assert watchdog_period(0.0015, 0.001) == pytest.approx(0.0016)  # a tenth of a short period
    # a 50 Hz driver against a 25 Hz bundle: the state after a ticked one is paced out, and the
    # watchdog restarted by its arrival finds it stale 1.5 periods + 0.5 ms later: within 2 periods
    s = StateSchedule(0.04)
    ticked = [s.due(0.02 * k) for k in range(50)]
    assert sum(ticked) in (25, 26)  # down-sampled to the control rate
    k = next(k for k in range(40, 50) if ticked[k] and not ticked[k - 1])
    s = StateSchedule(0.04)
    assert [s.due(0.02 * i) for i in range(k + 1)] == ticked[:k + 1]
    paced_out = 0.02 * k + 0.01  # half a driver period after a ticked state (the tests' stop)
    assert not s.due(paced_out)
    fire = paced_out + watchdog_period(0.06, 0.04)
    assert stale_detail(paced_out, fire, 0.06) is not None and fire - paced_out <= 2 * 0.04


# ------------------------------------------------------------------------------------------ diagnostics


def _ran_loop() -> ControlLoop:
    pytest.importorskip("mujoco")
    from robot_rl.hardware.mujoco_robot import MujocoRobot

    loop = ControlLoop(MujocoRobot("InvertedPendulum-v5", realtime=False), load(PENDULUM))
    loop.run(steps=20)
    return loop


def test_diagnose_levels_and_values_without_ros():
    unconfigured = diagnose(NodeSnapshot("unconfigured"))
    assert (unconfigured.level, unconfigured.message) == ("WARN", "unconfigured")
    assert unconfigured.values == {"lifecycle": "unconfigured", "stale": False, "estop": ""}

    loop = _ran_loop()
    stats, safety = loop.stats(), loop.safety.report()
    robot = RobotCounters(received=120, rejected={"length": 1, "non_finite": 0, "names": 4},
                          last_rejection="names: the JointState has no joint named hinge",
                          commands_sent=20, qos_problems=("state topic /x: incompatible QoS (DEADLINE)",),
                          required_joints=("slider", "hinge"))
    active = NodeSnapshot("active", task="InvertedPendulum-v5", bundle=PENDULUM, trigger="state",
                          period=0.04, steps=20, stats=stats, safety=safety, robot=robot)
    ok = diagnose(active)
    assert ok.level == "OK" and ok.message == f"active at {1 / stats.period.p50:.1f} Hz"
    v = ok.values
    assert (v["task"], v["period_ms"], v["steps"], v["joints_required"]) == (
        "InvertedPendulum-v5", 40.0, 20, "slider, hinge")
    assert v["period_p50_ms"] == stats.period.p50 * 1e3 and v["latency_max_ms"] == stats.latency.max * 1e3
    assert (v["states_received"], v["states_rejected"], v["states_rejected_names"]) == (120, 5, 4)
    assert v["qos_problems"].startswith("state topic /x") and v["safety_interventions"] == safety["total"]
    text = dict(ok.text())
    assert text["stale"] == "false" and text["period_ms"] == "40" and text["states_rejected"] == "5"

    safety_stale = {**safety, "interventions": {"stale": 3}, "total": 3, "last_reason": "stale",
                    "last_detail": "the newest state arrived 61.0 ms ago"}
    stale = diagnose(NodeSnapshot("active", stale=True, task="t", safety=safety_stale, robot=robot))
    assert stale.level == "STALE" and "61.0 ms ago" in stale.message and stale.values["safety_stale"] == 3
    assert "rate_hz" not in stale.values  # a report that goes out at once computes no percentiles
    stopped = diagnose(NodeSnapshot("inactive", stale=True, estop="e-stop from /estop", task="t"))
    assert (stopped.level, stopped.message, stopped.values["estop"]) == ("ERROR", "e-stop from /estop",
                                                                         "e-stop from /estop")
    refused = diagnose(NodeSnapshot("inactive", error="refusing to activate: no joint named hinge"))
    assert refused.level == "ERROR" and "hinge" in refused.message
    assert [as_text(x) for x in (True, 1 / 3, None, 7)] == ["true", "0.333333", "", "7"]


def test_node_modules_import_without_rclpy_and_define_no_class_inside_a_function():
    code = ("import sys; sys.modules['rclpy'] = None\n"
            "import robot_rl.hardware.ros2_policy_node as n, robot_rl.hardware.ros2_node_params as p\n"
            "from robot_rl.hardware.ros2_diagnostics import NodeSnapshot, diagnose\n"
            "print(diagnose(NodeSnapshot('active', stale=True, task='t')).level, len(p.PARAMETERS))\n"
            "import robot_rl.hardware.ros2_sim_bridge\n"
            "try:\n    import robot_rl.hardware.ros2_policy_lifecycle\nexcept ImportError:\n"
            "    print('lifecycle needs rclpy')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    from robot_rl.hardware.ros2_node_params import PARAMETERS

    assert out.stdout.split("\n")[:2] == [f"STALE {len(PARAMETERS)}", "lifecycle needs rclpy"]
    for name in ("ros2_policy_node", "ros2_policy_lifecycle", "ros2_node_params", "ros2_node_timing",
                 "ros2_diagnostics", "ros2_robot", "ros2_sim_bridge", "ros2_sim_bridge_node"):
        tree = ast.parse((ROOT / "hardware" / f"{name}.py").read_text())
        for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            nested = [c.name for c in ast.walk(func) if isinstance(c, ast.ClassDef)]
            assert not nested, f"{name}.{func.name} defines the class(es) {nested}"


# ------------------------------------------------------------------------------------------ joints by name


def test_the_decoder_finds_every_state_joint_by_name_in_any_order_extra_ignored_missing_refused():
    spec = load(PENDULUM).spec
    robot = Ros2Robot(spec)  # not configured: no ROS needed to decode
    dec = robot.decoder
    assert robot.state_joints == ("slider", "hinge") and dec.required == ("slider", "hinge")
    pose = {"slider": (0.05, 0.5), "hinge": (-0.02, -0.1), "gripper": (9.0, math.nan)}

    def decode(names: list[str]):
        return dec.decode(names, [pose[n][0] for n in names], [pose[n][1] for n in names], 0.0, 1)

    plain, swapped, extra = decode(["slider", "hinge"]), decode(["hinge", "slider"]), \
        decode(["gripper", "hinge", "slider"])
    for state in (plain, swapped, extra):
        assert state.fields["qpos"].tolist() == [0.05, -0.02] and state.fields["qvel"].tolist() == [0.5, -0.1]
        assert state.joint_positions.tolist() == [0.05]
    assert load(PENDULUM).act(swapped.fields).tolist() == load(PENDULUM).act(plain.fields).tolist()
    assert decode(["slider"]) is None and dec.rejected["names"] == 1
    assert "no joint named hinge" in dec.last_rejection
    assert "a driver must publish ['slider', 'hinge']" in dec.last_rejection


def test_joint_map_renames_the_state_joints_too():
    assert robot_joint_names(("slider", "hinge"), {"cart": "slider", "pole": "hinge"}) == ("cart", "pole")
    names = ("root:x", "root:qw", "hip", "knee")
    assert robot_joint_names(names, {"base": "root", "leg_hip": "hip"}) == ("base:x", "base:qw", "leg_hip",
                                                                          "knee")
    robot = Ros2Robot(load(PENDULUM).spec, joints=["cart"], joint_map=["cart=slider", "pole=hinge"])
    assert robot.state_joints == ("cart", "pole") and robot.decoder.required == ("cart", "pole")
    given = Ros2Robot(load(PENDULUM).spec, state_joints=["slider", "pole_angle"])  # an explicit list wins
    assert given.decoder.required == ("slider", "pole_angle")


def test_spec_state_joints_are_checked_and_travel_in_the_manifest_only_when_named():
    spec = load(PENDULUM).spec
    d = spec.to_dict()
    assert d["state_joints"] == ["slider", "hinge"] and TaskSpec.from_dict(d) == spec
    unnamed = {k: v for k, v in d.items() if k != "state_joints"}
    old = TaskSpec.from_dict(unnamed)  # a bundle exported before: loads, names nothing
    assert old.state_joints == () and "state_joints" not in old.to_dict()
    for bad, words in [(["slider"], "give 1 qpos entries, state_fields.qpos has 2"),
                       (["slider", "slider"], "must be unique"), (["slider", ""], "non-empty string"),
                       ("slider", "expected a list")]:
        with pytest.raises(SpecError, match=f"state_joints.*{words}"):
            TaskSpec.from_dict({**d, "state_joints": bad})
    free = {**d, "state_fields": {"qpos": 7, "qvel": 6},
            "observation": [{"name": "qpos", "source": "qpos"}, {"name": "qvel", "source": "qvel"}],
            "state_joints": ["b:x", "b:y", "b:z", "b:qw", "b:qx", "b:qy", "b:qz"]}
    free.pop("obs_dim")
    assert TaskSpec.from_dict(free).state_joints[3] == "b:qw"  # 7 positions, 6 velocities


@pytest.mark.parametrize("name", ZOO)
def test_zoo_manifests_name_every_joint_the_sim_bridge_publishes(name):
    pytest.importorskip("mujoco")
    from robot_rl.hardware.mujoco_robot import MujocoRobot
    from robot_rl.sim.joint_naming import joint_layout

    manifest = json.loads((ROOT / "policies" / "zoo" / name / "manifest.json").read_text())
    spec = load(f"zoo:{name}").spec
    robot = MujocoRobot(spec.name, realtime=False)
    robot.configure()
    try:
        names = joint_layout(robot._model)[0]
    finally:
        robot.close()
    assert manifest["task_spec"]["state_joints"] == names == list(spec.state_joints)
    assert set(spec.joint_names) <= set(names)  # the commanded joints are among them


# ------------------------------------------------------------------------------------------ tick by tick


def test_control_loop_hold_sends_the_safe_command_and_stop_leaves_the_robot_open():
    pytest.importorskip("mujoco")
    from robot_rl.hardware.mujoco_robot import MujocoRobot

    robot = MujocoRobot("InvertedPendulum-v5", realtime=False)
    loop = ControlLoop(robot, load(PENDULUM), window=3)
    loop.start()
    for _ in range(5):
        loop.tick()
    assert loop.steps == 5 and np.abs(robot._data.ctrl).max() > 0  # the policy's commands
    loop.hold("stale", "the newest state arrived 70.0 ms ago")
    assert robot._data.ctrl.tolist() == [0.0] and loop.steps == 6  # a torque bundle's safe command
    report = loop.safety.report()
    assert report["interventions"]["stale"] == 1 and "70.0 ms" in report["last_detail"]
    assert len(loop._latency) == 3 and loop.stats().steps == 6  # timing: the last `window` ticks only
    loop.stop()
    assert not loop.running and robot.lifecycle.value == "inactive"
    assert loop.stats().stop_reason == "deactivated"
    loop.start()  # the same robot runs again
    loop.tick()
    assert loop.steps == 1
    loop.stop()
    robot.close()
