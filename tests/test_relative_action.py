"""The relative action kind ("position_delta") of the spec and its one integrator, `TargetIntegrator`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robot_rl.spec import ActionSpec, ObsTerm, SpecError, TargetIntegrator, TaskSpec, action_to_robot


def _spec(action: ActionSpec) -> TaskSpec:
    return TaskSpec(name="toy", joint_names=("a", "b"), observation=(ObsTerm("q", "qpos"),), action=action,
                    joint_limits=((-1.0, 1.0), (0.0, 2.0)), control_period=0.05, physics_dt=0.005,
                    state_fields={"qpos": 2})


def test_position_delta_scale_is_the_rate_of_the_range_and_round_trips_through_json():
    action = ActionSpec.position_delta([-1.0, 0.0], [1.0, 2.0], 0.1)
    assert action.kind == "position_delta" and action.is_relative and action.command_kind == "position"
    assert action.scale == pytest.approx((0.2, 0.2)) and action.offset == (0.0, 0.0)
    spec = _spec(action)
    again = TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.action.kind == "position_delta"
    targets = action.targets()  # what a robot receives: absolute targets over the bounds
    assert targets.kind == "position" and targets.low == (-1.0, 0.0) and targets.high == (1.0, 2.0)


def test_an_older_position_spec_still_loads_unchanged():
    spec = _spec(ActionSpec.from_bounds("position", [-1.0, 0.0], [1.0, 2.0]))
    again = TaskSpec.from_dict(spec.to_dict())
    assert again.action.kind == "position" and not again.action.is_relative
    assert again.action.targets() is again.action


@pytest.mark.parametrize("kwargs, field", [
    ({"offset": (0.1, 0.0)}, "offset"),
    ({"scale": (0.0, 0.1)}, "scale"),
    ({"low": (-np.inf, 0.0)}, "low"),
])
def test_a_bad_position_delta_is_one_error_naming_the_field(kwargs, field):
    args = {"kind": "position_delta", "low": (-1.0, 0.0), "high": (1.0, 2.0), "scale": (0.1, 0.1),
            "offset": (0.0, 0.0), **kwargs}
    with pytest.raises(SpecError, match=rf"^{field}:"):
        ActionSpec(**args)
    with pytest.raises(SpecError, match="rate"):
        ActionSpec.position_delta([-1.0], [1.0], 0.0)


def test_a_relative_action_has_no_stateless_robot_command():
    with pytest.raises(SpecError, match="TargetIntegrator"):
        action_to_robot(ActionSpec.position_delta([-1.0], [1.0], 0.1), [0.5])


def test_the_integrator_adds_clips_and_holds_as_worked_by_hand():
    action = ActionSpec.position_delta([-1.0, 0.0], [1.0, 2.0], 0.1)  # scale 0.2 rad per full action
    integ = TargetIntegrator(action, 2)
    integ.reset(0, [0.5, 3.0])          # measured beyond the bound: the target starts clipped to 2.0
    integ.reset(1, [0.0, 1.0])
    np.testing.assert_allclose(integ.targets, [[0.5, 2.0], [0.0, 1.0]])
    out = integ.step([[1.0, -0.5], [np.nan, 4.0]])  # NaN counts as 0, 4 is clipped to 1
    np.testing.assert_allclose(out, [[0.7, 1.9], [0.0, 1.2]])
    np.testing.assert_allclose(integ.last_action, [[1.0, -0.5], [0.0, 1.0]])
    for _ in range(3):
        integ.step([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(integ.targets[0], [1.0, 1.9])  # 0.7 + 0.6 clipped at the bound 1.0
    held = integ.hold(0)                 # the safe action: no change, last action zero
    np.testing.assert_allclose(held, [1.0, 1.9])
    np.testing.assert_allclose(integ.last_action[0], [0.0, 0.0])
    integ.commit(1, [0.3, 5.0])          # what the robot was really sent becomes the target
    np.testing.assert_allclose(integ.targets[1], [0.3, 2.0])
    fields = integ.fields()
    assert fields["joint_targets"] is integ.targets and fields["last_action"] is integ.last_action
