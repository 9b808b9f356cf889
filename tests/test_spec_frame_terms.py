"""The spec's offset, frame and gravity options of an observation term: by hand on a known state, the
robot's builder equal to the engine's batched one, and the manifest form (old manifests still load)."""

import math

import numpy as np
import pytest

from robot_rl.sim.engine.observation import BatchObservationBuilder
from robot_rl.spec import ActionSpec, ObservationBuilder, ObsTerm, SpecError, TaskSpec

# qpos: base x y z, base quaternion w x y z, one hinge; qvel: base linear (world), angular (local), hinge.
QUAT = (3, 4, 5, 6)
TERMS = (ObsTerm("projected_gravity", "qpos", indices=QUAT, transform="gravity"),
         ObsTerm("base_lin_vel", "qvel", indices=(0, 1, 2), frame="qpos", frame_indices=QUAT),
         ObsTerm("joint_pos", "qpos", indices=(7,), offset=(0.25,), scale=2.0))


def spec(terms=TERMS) -> TaskSpec:
    return TaskSpec(name="floating", joint_names=("hinge",), observation=tuple(terms),
                    action=ActionSpec.from_bounds("position", [-1.0], [1.0]), joint_limits=((-1.0, 1.0),),
                    control_period=0.02, physics_dt=0.002, state_fields={"qpos": 8, "qvel": 7})


def state(quat: list[float], lin: list[float], hinge: float) -> dict[str, np.ndarray]:
    return {"qpos": np.array([0.0, 0.0, 0.3, *quat, hinge]), "qvel": np.array([*lin, 0.0, 0.0, 0.0, 0.0])}


def test_terms_by_hand_rolled_and_yawed() -> None:
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    b = ObservationBuilder(spec())
    # Rolled +90° about x: gravity (0, -1, 0) in the base; world velocity (1, 0, 0) stays (1, 0, 0).
    np.testing.assert_allclose(b.build(state([c, s, 0, 0], [1, 0, 0], 0.5)),
                               [0, -1, 0, 1, 0, 0, 0.5], atol=1e-12)
    # Yawed +90°: upright, gravity (0, 0, -1); world (1, 0, 0) is (0, -1, 0) in the base; (0-0.25)*2.
    np.testing.assert_allclose(b.build(state([c, 0, 0, s], [1, 0, 0], 0.0)),
                               [0, 0, -1, 0, -1, 0, -0.5], atol=1e-12)
    # Pitched +90° about y: gravity along +x of the base.
    np.testing.assert_allclose(b.build(state([c, 0, s, 0], [0, 0, 2], 0.25))[:6], [1, 0, 0, -2, 0, 0],
                               atol=1e-12)


def test_the_batched_builder_equals_the_robot_builder() -> None:
    rng = np.random.default_rng(5)
    n = 6
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    qpos = np.concatenate([rng.normal(size=(n, 3)), q, rng.normal(size=(n, 1))], axis=1)
    qvel = rng.normal(size=(n, 7))
    batched = BatchObservationBuilder(spec(), n).build({"qpos": qpos, "qvel": qvel})
    for i in range(n):
        one = ObservationBuilder(spec()).build({"qpos": qpos[i], "qvel": qvel[i]})
        np.testing.assert_allclose(batched[i], one, rtol=1e-12, atol=1e-15)
        assert abs(np.linalg.norm(one[:3]) - 1.0) < 1e-12  # a unit direction, whatever the attitude


def test_the_manifest_form_round_trips_and_old_terms_still_load() -> None:
    original = spec()
    data = original.to_dict()
    assert data["observation"][1]["frame"] == "qpos" and data["observation"][2]["offset"] == [0.25]
    assert "frame" not in data["observation"][0] and "offset" not in data["observation"][0]
    assert TaskSpec.from_dict(data) == original
    old = spec((ObsTerm("joint_pos", "qpos", indices=(7,)),)).to_dict()
    plain = {"name", "source", "indices", "transform", "scale", "clip", "history"}
    assert set(old["observation"][0]) == plain
    assert TaskSpec.from_dict(old).observation[0].offset is None


@pytest.mark.parametrize("term, message", [
    (ObsTerm("v", "qvel", indices=(0, 1), frame="qpos", frame_indices=QUAT), "observation[0].frame: rotates "
                                                                             "3-vectors"),
    (ObsTerm("v", "qvel", indices=(0, 1, 2), frame="qpos", frame_indices=(5, 6, 7, 8)),
     "observation[0].frame_indices: index 8 is out of range"),
    (ObsTerm("v", "qvel", indices=(0, 1, 2), frame="xquat", frame_indices=QUAT),
     "observation[0].frame: 'xquat' is not in state_fields"),
    (ObsTerm("j", "qpos", indices=(7,), offset=(0.1, 0.2)), "observation[0].offset: has 2 entries for 1"),
])
def test_a_term_that_does_not_fit_its_fields_is_named(term: ObsTerm, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec((term,))


def test_a_malformed_term_is_named() -> None:
    with pytest.raises(SpecError, match="frame_indices: a frame is one quaternion"):
        ObsTerm("v", "qvel", indices=(0, 1, 2), frame="qpos", frame_indices=(3, 4, 5))
    with pytest.raises(SpecError, match="transform: 'gravity' reads one quaternion"):
        ObsTerm("g", "qpos", indices=(3, 4, 5), transform="gravity")
    with pytest.raises(SpecError, match="offset: must be finite"):
        ObsTerm("j", "qpos", indices=(7,), offset=(math.inf,))
