"""The task spec: validation, the plain (manifest) form, observation building and the action map.

Expected values are worked by hand from the documented conventions (select -> transform -> clip ->
scale; history newest first; robot = offset + scale * action, clipped).
"""

from __future__ import annotations

import ast
import copy
import json
import math
import pathlib
import pickle
import re

import numpy as np
import pytest

from robot_rl.spec import (
    ActionSpec,
    ObservationBuilder,
    ObsTerm,
    SpecError,
    TaskSpec,
    action_to_robot,
    build_observation,
)


def make_spec(terms=None, fields=None, **overrides) -> TaskSpec:
    """A two-joint spec over fields "x" (3 elements) and "m" (a 2x3 array, 6 elements)."""
    kwargs = dict(
        name="toy",
        joint_names=("hip", "knee"),
        observation=tuple(terms or (ObsTerm("x", "x"),)),
        action=ActionSpec.from_bounds("position", [-2.0, 0.0], [2.0, 10.0]),
        joint_limits=((-1.5, 1.5), (-math.inf, math.inf)),
        control_period=0.02,
        physics_dt=0.005,
        state_fields=fields or {"x": 3, "m": 6},
    )
    kwargs.update(overrides)
    return TaskSpec(**kwargs)


# ---------------------------------------------------------------------------------------- validation


def test_spec_dims_and_physics_steps():
    spec = make_spec([ObsTerm("a", "x"), ObsTerm("b", "m", (1, 4), history=3)])
    assert spec.obs_dim == 3 + 2 * 3
    assert spec.act_dim == 2
    assert spec.physics_steps == 4
    assert spec.observation_slices() == {"a": slice(0, 3), "b": slice(3, 9)}


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(control_period=0.021), "control_period"),  # 4.2 physics steps
    (dict(physics_dt=0.0), "physics_dt"),
    (dict(joint_limits=((-1.0, 1.0),)), "joint_limits"),
    (dict(joint_limits=((1.0, -1.0), (0.0, 1.0))), "joint_limits[0]"),
    (dict(joint_names=("hip", "hip")), "joint_names"),
    (dict(joint_names=("hip",)), "action"),
    (dict(observation=(ObsTerm("a", "y"),)), "observation[0].source"),
    (dict(observation=(ObsTerm("a", "x", (0, 3)),)), "observation[0].indices"),
    (dict(observation=(ObsTerm("a", "x"), ObsTerm("a", "m"))), "observation[1].name"),
    (dict(observation=()), "observation"),
    (dict(state_fields={"x": 0}), "state_fields.x"),
])
def test_invalid_spec_names_the_field(kwargs, field):
    with pytest.raises(SpecError, match="^" + re.escape(field) + ":"):
        make_spec(**kwargs)


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(transform="tan"), "transform"),
    (dict(history=0), "history"),
    (dict(clip=(1.0, -1.0)), "clip"),
    (dict(scale=float("nan")), "scale"),
    (dict(indices=(-1,)), "indices"),
    (dict(indices=(0.5,)), r"indices\[0\]"),
])
def test_invalid_term_names_the_field(kwargs, field):
    with pytest.raises(SpecError, match=rf"^{field}:"):
        ObsTerm("t", "x", **kwargs)


def test_action_spec_validation():
    with pytest.raises(SpecError, match=r"^kind:"):
        ActionSpec.from_bounds("force", [-1.0], [1.0])
    with pytest.raises(SpecError, match=r"^low\[0\]:"):
        ActionSpec.from_bounds("torque", [1.0], [-1.0])
    with pytest.raises(SpecError, match=r"^scale:"):
        ActionSpec("torque", (-1.0,), (1.0,), (1.0, 2.0), (0.0,))


# ---------------------------------------------------------------------------------------- plain form


def _rich_spec() -> TaskSpec:
    return make_spec(
        [ObsTerm("pos", "x", (2, 0), transform="sin", scale=0.5, clip=(-math.inf, 0.25), history=2),
         ObsTerm("m", "m", clip=(-1.0, 1.0)), ObsTerm("one", "m", (5,), transform="cos")],
        action=ActionSpec("torque", (-math.inf, -3.0), (math.inf, 3.0), (1.0, 3.0), (0.0, 0.1)))


def test_round_trip_through_strict_json_is_exact():
    spec = _rich_spec()
    text = json.dumps(spec.to_dict(), allow_nan=False)  # ±inf must not reach JSON as Infinity
    back = TaskSpec.from_dict(json.loads(text))
    assert back == spec
    assert back.joint_limits[1] == (-math.inf, math.inf)
    assert back.action.low[0] == -math.inf and back.action.high[0] == math.inf
    assert back.observation[0].clip == (-math.inf, 0.25)
    assert back.to_dict() == spec.to_dict()
    assert spec.to_dict()["obs_dim"] == spec.obs_dim == 2 * 2 + 6 + 1


def test_pickle_and_deepcopy_give_equal_specs():
    spec = _rich_spec()
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert copy.deepcopy(spec) == spec


def test_state_fields_are_read_only():
    spec = make_spec()
    with pytest.raises(TypeError):
        spec.state_fields["x"] = 5  # type: ignore[index]


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d["observation"][1].update(scale="big"), r"observation\[1\]\.scale"),
    (lambda d: d["observation"][0].update(transform="tan"), r"observation\[0\]\.transform"),
    (lambda d: d["observation"][0].update(colour=1), r"observation\[0\]\.colour"),
    (lambda d: d["observation"][2].pop("source"), r"observation\[2\]\.source"),
    (lambda d: d["action"].update(kind="force"), r"action\.kind"),
    (lambda d: d["action"].update(scale=[1.0]), r"action\.scale"),
    (lambda d: d.update(obs_dim=3), "obs_dim"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.pop("physics_dt"), "physics_dt"),
    (lambda d: d.update(joint_limits=[[0.0, "a"], [None, None]]), r"joint_limits\[0\]\[1\]"),
    (lambda d: d["state_fields"].update(x=2), r"observation\[0\]\.indices"),
])
def test_from_dict_errors_name_the_field(mutate, field):
    data = json.loads(json.dumps(_rich_spec().to_dict()))
    mutate(data)
    with pytest.raises(SpecError, match=rf"^{field}:"):
        TaskSpec.from_dict(data)


# ---------------------------------------------------------------------------------------- observations


def test_select_transform_clip_scale_in_order():
    spec = make_spec(
        [ObsTerm("picked", "x", (2, 0)),
         ObsTerm("sin", "x", transform="sin"),
         ObsTerm("cos", "x", transform="cos"),
         ObsTerm("clipped", "x", clip=(-1.0, 1.0), scale=2.0),  # clip first, then scale
         ObsTerm("row1", "m", (3, 4, 5))],  # a 2x3 field is read row-major: row 1
        fields={"x": 3, "m": 6})
    x = np.array([-5.0, math.pi / 2, math.pi])
    state = {"x": x, "m": np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])}
    obs = build_observation(spec, state)
    s = spec.observation_slices()
    np.testing.assert_array_equal(obs[s["picked"]], [math.pi, -5.0])
    np.testing.assert_allclose(obs[s["sin"]], [math.sin(-5.0), 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(obs[s["cos"]], [math.cos(-5.0), 0.0, -1.0], atol=1e-15)
    np.testing.assert_array_equal(obs[s["clipped"]], [-2.0, 2.0, 2.0])
    np.testing.assert_array_equal(obs[s["row1"]], [3.0, 4.0, 5.0])
    assert obs.dtype == np.float64 and obs.shape == (spec.obs_dim,)


def test_history_is_stacked_newest_first_and_reset_fills_it():
    spec = make_spec([ObsTerm("now", "x", (0,)), ObsTerm("hist", "x", (1, 2), history=3)])
    builder = ObservationBuilder(spec)

    def build(a: float, b: float) -> list[float]:
        return builder.build({"x": np.array([a * 10, a, b])}).tolist()

    assert build(1, 2) == [10, 1, 2, 1, 2, 1, 2]  # first frame fills every slot
    assert build(3, 4) == [30, 3, 4, 1, 2, 1, 2]
    assert build(5, 6) == [50, 5, 6, 3, 4, 1, 2]
    assert build(7, 8) == [70, 7, 8, 5, 6, 3, 4]  # the oldest frame drops out
    builder.reset()
    assert build(9, 0) == [90, 9, 0, 9, 0, 9, 0]


def test_build_returns_a_fresh_array():
    spec = make_spec([ObsTerm("hist", "x", history=2)])
    builder = ObservationBuilder(spec)
    first = builder.build({"x": [1.0, 2.0, 3.0]})
    first[:] = -1.0  # a caller writing into the result must not change the history
    np.testing.assert_array_equal(builder.build({"x": [4.0, 5.0, 6.0]}), [4, 5, 6, 1, 2, 3])


def test_missing_field_is_named():
    builder = ObservationBuilder(make_spec([ObsTerm("a", "x"), ObsTerm("b", "m")]))
    with pytest.raises(SpecError, match=r"'m'.*term 'b'"):
        builder.build({"x": np.zeros(3)})


def test_wrong_sized_field_is_named():
    builder = ObservationBuilder(make_spec([ObsTerm("a", "x", (0,))]))
    with pytest.raises(SpecError, match=r"'x' has 4 elements.*expects 3"):
        builder.build({"x": np.zeros(4)})


def test_stateless_build_refuses_history():
    spec = make_spec([ObsTerm("a", "x", history=2)])
    with pytest.raises(SpecError, match="history"):
        build_observation(spec, {"x": np.zeros(3)})


def test_integer_and_scalar_fields_are_read_as_float():
    spec = make_spec([ObsTerm("a", "x", scale=0.5), ObsTerm("s", "s")], fields={"x": 3, "s": 1})
    obs = build_observation(spec, {"x": np.array([1, 2, 3], dtype=np.int32), "s": np.float64(7.0)})
    np.testing.assert_array_equal(obs, [0.5, 1.0, 1.5, 7.0])


# ---------------------------------------------------------------------------------------- actions


def test_action_map_endpoints_midpoint_and_clip():
    spec = make_spec()  # bounds [-2, 2] and [0, 10]
    np.testing.assert_array_equal(action_to_robot(spec, [-1.0, -1.0]), [-2.0, 0.0])
    np.testing.assert_array_equal(action_to_robot(spec, [0.0, 0.0]), [0.0, 5.0])
    np.testing.assert_array_equal(action_to_robot(spec, [1.0, 1.0]), [2.0, 10.0])
    np.testing.assert_array_equal(action_to_robot(spec, [0.5, -0.5]), [1.0, 2.5])
    np.testing.assert_array_equal(action_to_robot(spec, [3.0, -7.0]), [2.0, 0.0])  # clipped


def test_action_map_custom_scale_is_clipped_and_batched():
    action = ActionSpec("velocity", low=(-1.0,), high=(1.0,), scale=(10.0,), offset=(0.5,))
    out = action_to_robot(action, np.array([[-1.0], [0.0], [0.02], [1.0]]))
    np.testing.assert_allclose(out, [[-1.0], [0.5], [0.7], [1.0]])
    with pytest.raises(SpecError, match="shape"):
        action_to_robot(action, [0.0, 0.0])


def test_spec_module_imports_only_numpy_and_stdlib():
    import robot_rl.spec as module

    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    stdlib = {"__future__", "dataclasses", "math", "types", "collections", "functools", "typing"}
    assert roots <= stdlib | {"numpy"}


# ---------------------------------------------------------------------------------------- discrete actions


def test_discrete_action_is_an_index_and_round_trips_exactly():
    spec = make_spec(joint_names=("action",), action=ActionSpec.discrete(3),
                     joint_limits=((-math.inf, math.inf),))
    assert spec.act_dim == 1 and spec.action.num_actions == 3 and spec.action.is_discrete
    assert spec.action.low == (0.0,) and spec.action.high == (2.0,)
    back = TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict(), allow_nan=False)))
    assert back == spec and back.action.num_actions == 3
    out = action_to_robot(spec, 2)
    assert out.dtype == np.int64 and out.shape == () and int(out) == 2
    np.testing.assert_array_equal(action_to_robot(spec, np.array([[0.0], [2.0], [1.0]])), [[0], [2], [1]])
    for bad in (3, -1, 1.5, np.nan, np.inf):  # never clipped to a neighbouring action, never NaN
        with pytest.raises(SpecError, match="index"):
            action_to_robot(spec, bad)
    with pytest.raises(SpecError, match="num_actions"):
        make_spec().action.num_actions  # noqa: B018  a continuous action has no count


@pytest.mark.parametrize(("action", "field"), [
    (lambda: ActionSpec("discrete", (0.0,), (2.5,), (1.0,), (0.0,)), "high"),
    (lambda: ActionSpec("discrete", (1.0,), (2.0,), (1.0,), (0.0,)), "low"),
    (lambda: ActionSpec("discrete", (0.0, 0.0), (1.0, 1.0), (1.0, 1.0), (0.0, 0.0)), "low"),
    (lambda: ActionSpec("discrete", (0.0,), (2.0,), (2.0,), (0.0,)), "scale"),
    (lambda: ActionSpec.discrete(1), "num_actions"),
])
def test_invalid_discrete_action_names_the_field(action, field):
    with pytest.raises(SpecError, match=rf"^{field}:"):
        action()
