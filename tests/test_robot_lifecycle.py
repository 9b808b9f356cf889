"""The Robot lifecycle: every illegal call refused (naming both states), e-stop from every state,
recovery, and cleanup guaranteed by the context manager and the control loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_rl.hardware.control_loop import ControlLoop
from robot_rl.hardware.robot import HardwareError, Lifecycle, Robot, RobotState
from robot_rl.hardware.safety import SafetyConfig, SafetyFilter
from robot_rl.spec import ActionSpec, ObsTerm, TaskSpec

CALLS = ("configure", "activate", "read_state", "write_command", "deactivate", "recover")
ALLOWED = {
    "configure": {Lifecycle.UNCONFIGURED},
    "activate": {Lifecycle.INACTIVE},
    "read_state": {Lifecycle.INACTIVE, Lifecycle.ACTIVE},
    "write_command": {Lifecycle.ACTIVE},
    "deactivate": {Lifecycle.ACTIVE},
    "recover": {Lifecycle.ERROR},
}
SPEC = TaskSpec(name="two-joint", joint_names=("a", "b"), observation=(ObsTerm("q", "joint_positions"),),
                action=ActionSpec.from_bounds("position", (-1.0, -1.0), (1.0, 1.0)),
                joint_limits=((-1.0, 1.0), (-1.0, 1.0)), control_period=0.01, physics_dt=0.01,
                state_fields={"joint_positions": 2})


class Backend(Robot):
    """A backend of our own base class: records its hooks; `fail` names a hook that raises."""

    joint_names = ("a", "b")
    command_kind = "position"

    def __init__(self, fail: str | None = None) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.fail = fail
        self.q = np.array([0.25, -0.5])
        self.seq = 0
        self.sent: list[np.ndarray] = []

    def _hook(self, name: str) -> None:
        self.calls.append(name)
        if self.fail == name:
            raise RuntimeError(f"{name} failed")

    def _configure(self) -> None:
        self._hook("configure")

    def _activate(self) -> RobotState:
        self._hook("activate")
        return self._read_state()

    def _read_state(self) -> RobotState:
        self.seq += 1
        return RobotState(self.q.copy(), np.zeros(2), timestamp=self.seq * 0.01, sequence=self.seq)

    def _write_command(self, command: np.ndarray) -> np.ndarray:
        self._hook("write_command")
        self.sent.append(command.copy())
        return command

    def _deactivate(self) -> None:
        self._hook("deactivate")

    def _estop(self) -> None:
        self._hook("estop")

    def _recover(self) -> None:
        self._hook("recover")

    def _close(self) -> None:
        self._hook("close")

    def clock(self) -> float:
        return self.seq * 0.01


def robot_in(state: Lifecycle) -> Backend:
    """A robot brought to `state` through legal calls only."""
    robot = Backend()
    if state is Lifecycle.CLOSED:
        robot.close()
    elif state is Lifecycle.ERROR:
        robot.estop("test")
    elif state is not Lifecycle.UNCONFIGURED:
        robot.configure()
        if state is Lifecycle.ACTIVE:
            robot.activate()
    assert robot.lifecycle is state
    return robot


def call(robot: Robot, name: str) -> object:
    return robot.write_command(np.zeros(2)) if name == "write_command" else getattr(robot, name)()


ILLEGAL = [(c, s) for c in CALLS for s in Lifecycle if s not in ALLOWED[c]]
LEGAL = [(c, s) for c in CALLS for s in ALLOWED[c]]


@pytest.mark.parametrize(("name", "state"), ILLEGAL, ids=[f"{c}-{s.value}" for c, s in ILLEGAL])
def test_every_illegal_call_is_refused_naming_both_states(name, state):
    robot = robot_in(state)
    before = list(robot.calls)
    with pytest.raises(HardwareError) as err:
        call(robot, name)
    message = str(err.value)
    assert f"{name}()" in message and repr(state.value) in message
    for allowed in ALLOWED[name]:
        assert allowed.value in message
    assert robot.lifecycle is state  # refused: nothing changed, no hook ran
    assert robot.calls == before


@pytest.mark.parametrize(("name", "state"), LEGAL, ids=[f"{c}-{s.value}" for c, s in LEGAL])
def test_every_legal_call_is_accepted(name, state):
    robot = robot_in(state)
    call(robot, name)
    expected = {"configure": Lifecycle.INACTIVE, "activate": Lifecycle.ACTIVE, "read_state": state,
                "write_command": Lifecycle.ACTIVE, "deactivate": Lifecycle.INACTIVE,
                "recover": Lifecycle.UNCONFIGURED}[name]
    assert robot.lifecycle is expected


@pytest.mark.parametrize("state", list(Lifecycle), ids=[s.value for s in Lifecycle])
def test_estop_from_every_state(state):
    robot = robot_in(state)
    robot.estop("button")
    if state is Lifecycle.CLOSED:  # nothing left to stop
        assert robot.lifecycle is Lifecycle.CLOSED
    else:
        assert robot.lifecycle is Lifecycle.ERROR
        assert robot.calls[-1] == "estop" and robot.last_error == "button"


@pytest.mark.parametrize("state", [s for s in Lifecycle if s is not Lifecycle.CLOSED])
def test_estop_never_raises_even_if_the_link_fails(state):
    robot = robot_in(state)
    robot.fail = "estop"
    robot.estop("button")
    assert robot.lifecycle is Lifecycle.ERROR
    assert robot.last_error == "button; e-stop hook failed: estop failed"


def test_recover_then_configure_again():
    robot = robot_in(Lifecycle.ACTIVE)
    robot.estop("fault")
    robot.recover()
    assert robot.lifecycle is Lifecycle.UNCONFIGURED and robot.last_error is None
    robot.configure()
    robot.activate()
    assert robot.lifecycle is Lifecycle.ACTIVE


def test_a_failing_hook_moves_to_error_and_stops_the_motors():
    robot = robot_in(Lifecycle.ACTIVE)
    robot.fail = "write_command"
    with pytest.raises(RuntimeError):
        robot.write_command(np.zeros(2))
    assert robot.lifecycle is Lifecycle.ERROR
    assert robot.calls[-1] == "estop"
    assert robot.last_error == "write_command: write_command failed"


def test_context_manager_cleans_up_when_the_body_raises():
    robot = Backend()
    with pytest.raises(ZeroDivisionError), robot:
        robot.configure()
        robot.activate()
        _ = 1 / 0
    assert robot.lifecycle is Lifecycle.CLOSED
    assert robot.calls[-2:] == ["deactivate", "close"]
    robot.close()  # idempotent
    assert robot.calls.count("close") == 1


class Policy:
    spec = SPEC

    def __init__(self, fail_at: int | None = None) -> None:
        self.n, self.fail_at = 0, fail_at

    def act(self, fields):
        self.n += 1
        if self.n == self.fail_at:
            raise RuntimeError("bug in the policy")
        return np.array([0.9, -0.9])


def test_control_loop_cleans_up_when_the_loop_raises():
    robot = Backend()
    loop = ControlLoop(robot, Policy(fail_at=3), realtime=False)
    with pytest.raises(RuntimeError, match="bug in the policy"):
        loop.run(steps=10)
    assert robot.lifecycle is Lifecycle.CLOSED
    assert robot.calls[-2:] == ["deactivate", "close"]
    assert loop.stats().stop_reason == "error" and loop.stats().steps == 2


def test_activation_seeds_targets_from_the_measured_state():
    robot = Backend()
    robot.q = np.array([0.25, -0.5])
    # rate limit 0.05 of the range (2) = 0.1 per step: the first command starts at the measured q
    loop = ControlLoop(robot, Policy(), SafetyFilter(SPEC, SafetyConfig(max_delta=0.05)), realtime=False)
    loop.run(steps=2)
    np.testing.assert_allclose(robot.sent[0], [0.35, -0.6])
    np.testing.assert_allclose(robot.sent[1], [0.45, -0.7])


def test_no_stale_command_survives_reactivation():
    robot = Backend()
    loop = ControlLoop(robot, Policy(), SafetyFilter(SPEC, SafetyConfig(max_delta=0.05)), realtime=False)
    loop.run(steps=5, close=False)
    robot.q = np.array([-0.5, 0.5])  # moved while inactive
    robot.sent.clear()
    loop.run(steps=1)
    np.testing.assert_allclose(robot.sent[0], [-0.4, 0.4])  # from the new measured state
    assert not math.isclose(robot.sent[0][0], 0.75)
