"""Goal terms of the task spec: a per-episode target (a position, an orientation) and terms relative to
it, checked against hand-worked rotations; their validation and plain form; and the batched builder of
the engine against the one-robot builder, term by term (history, transforms, clips, goals)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from robot_rl.sim.engine.observation import BatchObservationBuilder
from robot_rl.spec import (
    ActionSpec,
    ObservationBuilder,
    ObsTerm,
    SpecError,
    TaskSpec,
    build_observation,
    quat_error,
    rotation_6d,
)

S = math.sqrt(0.5)
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
Z90 = np.array([S, 0.0, 0.0, S])  # 90 degrees about z (w x y z)
Z180 = np.array([0.0, 0.0, 0.0, 1.0])
X90 = np.array([S, S, 0.0, 0.0])


def _spec(terms, fields=None, goals=("goal_pos", "goal_quat")) -> TaskSpec:
    return TaskSpec(name="reach", joint_names=("a",), observation=tuple(terms),
                    action=ActionSpec.from_bounds("torque", [-1.0], [1.0]), joint_limits=((-1.0, 1.0),),
                    control_period=0.02, physics_dt=0.01,
                    state_fields=fields or {"hand": 7, "goal_pos": 3, "goal_quat": 4, "qvel": 2},
                    goal_fields=goals)


POSITION = ObsTerm("to_goal", "hand", (0, 1, 2), relative="position", goal="goal_pos")
QUAT = ObsTerm("orientation_error", "hand", (3, 4, 5, 6), relative="orientation_quat", goal="goal_quat")
SIX_D = ObsTerm("orientation_6d", "hand", (3, 4, 5, 6), relative="orientation_6d", goal="goal_quat")


# ---------------------------------------------------------------------------------------- the math


def test_quat_error_by_hand():
    np.testing.assert_allclose(quat_error(Z90, Z90), IDENTITY, atol=1e-15)
    np.testing.assert_allclose(quat_error(Z90, IDENTITY), Z90, atol=1e-15)
    np.testing.assert_allclose(quat_error(Z180, Z90), Z90, atol=1e-15)  # 180 from 90: 90 more about z
    np.testing.assert_allclose(quat_error(-Z90, IDENTITY), Z90, atol=1e-15)  # q and -q: one answer, w >= 0
    np.testing.assert_allclose(quat_error(IDENTITY, Z90), [S, 0, 0, -S], atol=1e-15)
    batch = quat_error(np.stack([Z90, X90]), np.stack([IDENTITY, X90]))  # any leading shape
    np.testing.assert_allclose(batch, [Z90, IDENTITY], atol=1e-15)


def test_rotation_6d_by_hand():
    np.testing.assert_allclose(rotation_6d(IDENTITY), [1, 0, 0, 0, 1, 0], atol=1e-15)
    # 90 degrees about z: x -> y, y -> -x
    np.testing.assert_allclose(rotation_6d(Z90), [0, 1, 0, -1, 0, 0], atol=1e-15)
    # 90 degrees about x: x stays, y -> z
    np.testing.assert_allclose(rotation_6d(X90), [1, 0, 0, 0, 0, 1], atol=1e-15)


# ---------------------------------------------------------------------------------------- on a robot


def test_a_robots_observation_is_rebuilt_from_its_measured_state_plus_the_goal():
    spec = _spec([ObsTerm("qvel", "qvel"), POSITION, QUAT, SIX_D])
    assert spec.obs_dim == 2 + 3 + 4 + 6
    state = {"hand": np.array([0.5, 0.2, 0.1, *Z90]), "qvel": np.array([1.0, -1.0]),
             "goal_pos": np.array([0.4, 0.2, 0.3]), "goal_quat": IDENTITY}
    obs = build_observation(spec, state)
    np.testing.assert_allclose(obs[:2], [1.0, -1.0])
    np.testing.assert_allclose(obs[2:5], [0.1, 0.0, -0.2], atol=1e-15)  # measured minus goal
    np.testing.assert_allclose(obs[5:9], Z90, atol=1e-15)
    np.testing.assert_allclose(obs[9:], [0, 1, 0, -1, 0, 0], atol=1e-15)
    with pytest.raises(SpecError, match="no field 'goal_quat'"):  # a robot must be given the goal
        build_observation(spec, {k: v for k, v in state.items() if k != "goal_quat"})


def test_goal_terms_round_trip_and_plain_specs_keep_their_old_form():
    spec = _spec([ObsTerm("qvel", "qvel"), POSITION, QUAT, SIX_D])
    text = json.dumps(spec.to_dict(), allow_nan=False)
    assert TaskSpec.from_dict(json.loads(text)) == spec
    assert json.loads(text)["goal_fields"] == ["goal_pos", "goal_quat"]
    plain = _spec([ObsTerm("qvel", "qvel")], fields={"qvel": 2}, goals=())
    d = plain.to_dict()
    assert "goal_fields" not in d and set(d["observation"][0]) == {
        "name", "source", "indices", "transform", "scale", "clip", "history"}


@pytest.mark.parametrize(("term", "goals", "message"), [
    (ObsTerm("t", "hand", (0, 1, 2), relative="position", goal="elsewhere"), ("goal_pos",),
     "'elsewhere' is not one of goal_fields"),
    (ObsTerm("t", "hand", (0, 1), relative="position", goal="goal_pos"), ("goal_pos",),
     "selects 3 goal elements for 2 measured ones"),
    (ObsTerm("t", "hand", (0, 1, 2), relative="position", goal="goal_pos", goal_indices=(3,)), ("goal_pos",),
     "index 3 is out of range for goal field"),
    (ObsTerm("t", "hand", relative="orientation_6d", goal="goal_quat"), ("goal_quat",),
     "4 elements each, got 7 measured"),
])
def test_a_goal_term_that_does_not_fit_is_refused(term, goals, message):
    with pytest.raises(SpecError, match=message):
        _spec([term], goals=goals)


def test_goal_term_fields_are_checked():
    with pytest.raises(SpecError, match="needs the goal state field"):
        ObsTerm("t", "hand", (0, 1, 2), relative="position")
    with pytest.raises(SpecError, match="but relative is 'none'"):
        ObsTerm("t", "hand", goal="goal_pos")
    with pytest.raises(SpecError, match="4 indices"):
        ObsTerm("t", "hand", (3, 4, 5), relative="orientation_quat", goal="goal_quat")
    with pytest.raises(SpecError, match="relative: 'euler' is not valid"):
        ObsTerm("t", "hand", relative="euler", goal="goal_quat")
    with pytest.raises(SpecError, match="goal_fields: 'target' is not in state_fields"):
        _spec([ObsTerm("qvel", "qvel")], goals=("target",))


# ---------------------------------------------------------------------------------------- batched == single


def test_the_engines_batched_builder_equals_the_robot_builder_world_by_world():
    terms = [ObsTerm("qvel", "qvel", clip=(-0.5, 0.5), scale=2.0, history=3),
             ObsTerm("hand_sin", "hand", (0, 2), transform="sin", history=2),
             ObsTerm("to_goal", "hand", (2, 0, 1), relative="position", goal="goal_pos",
                     goal_indices=(2, 0, 1), history=2),
             QUAT, SIX_D]
    spec = _spec(terms)
    n, rng = 4, np.random.default_rng(0)
    batched = BatchObservationBuilder(spec, n)
    singles = [ObservationBuilder(spec) for _ in range(n)]

    def state():
        quats = rng.normal(size=(n, 4))
        quats /= np.linalg.norm(quats, axis=1, keepdims=True)
        goal_q = rng.normal(size=(n, 4))
        goal_q /= np.linalg.norm(goal_q, axis=1, keepdims=True)
        hand = np.concatenate([rng.normal(size=(n, 3)), quats], axis=1)
        return {"hand": hand, "qvel": rng.normal(size=(n, 2)), "goal_pos": rng.normal(size=(n, 3)),
                "goal_quat": goal_q}

    batched.reset(np.ones(n, dtype=bool))
    for step in range(8):
        s = state()
        if step == 5:  # world 2 starts a new episode: its history refills, the others' goes on
            batched.reset(np.array([False, False, True, False]))
            singles[2].reset()
        out = batched.build(s)
        for i in range(n):
            np.testing.assert_allclose(out[i], singles[i].build({k: v[i] for k, v in s.items()}), atol=1e-14)
    rows = np.array([1, 3])  # only some worlds (an autoreset): the others' history is not shifted
    s = state()
    part = batched.build(s, rows=rows)
    for j, i in enumerate(rows):
        np.testing.assert_allclose(part[j], singles[i].build({k: v[i] for k, v in s.items()}), atol=1e-14)
    s = state()
    out = batched.build(s)
    for i in range(n):
        np.testing.assert_allclose(out[i], singles[i].build({k: v[i] for k, v in s.items()}), atol=1e-14)
