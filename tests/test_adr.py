"""Automatic domain randomization: the widen/narrow rule on synthetic performance, boundary sampling,
entropy, hard limits, config errors and checkpoint state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.sim.adr import ADR, MIN_WIDTH, ADRConfig, ADRParameter

MASS = ADRParameter("body_mass_scale", nominal=1.0, step=0.1, minimum=0.5, maximum=1.3)
FRICTION = ADRParameter("geom_friction_scale", nominal=1.0, step=0.05, minimum=0.0)


def _run(adr: ADR, rng: np.random.Generator, performance, episodes: int) -> None:
    """Play `episodes` episodes whose boundary performance is `performance(name, side, value)`."""
    for _ in range(episodes):
        draw = adr.sample(rng)
        if draw.boundary is not None:
            name, side = draw.boundary
            adr.record(draw.boundary, performance(name, side, draw.values[name]))


def test_ranges_start_at_nominal_and_entropy_at_the_floor() -> None:
    adr = ADR([MASS, FRICTION], ADRConfig(enabled=True))
    assert adr.ranges() == {"body_mass_scale": (1.0, 1.0), "geom_friction_scale": (1.0, 1.0)}
    assert adr.entropy() == pytest.approx(math.log(MIN_WIDTH))
    draw = adr.sample(np.random.default_rng(0))
    assert draw.values == {"body_mass_scale": 1.0, "geom_friction_scale": 1.0}


def test_good_performance_widens_until_the_hard_limits() -> None:
    adr = ADR([MASS, FRICTION], ADRConfig(enabled=True, window=5, boundary_probability=1.0))
    _run(adr, np.random.default_rng(1), lambda *_: 1.0, episodes=2000)
    low, high = adr.ranges()["body_mass_scale"]
    assert (low, high) == (pytest.approx(0.5), pytest.approx(1.3))  # clamped at minimum and maximum
    f_low, f_high = adr.ranges()["geom_friction_scale"]
    assert f_low == pytest.approx(0.0) and f_high > 2.0  # no maximum: keeps widening
    widths = [1.3 - 0.5, f_high - f_low]
    assert adr.entropy() == pytest.approx(float(np.mean(np.log(widths))))


def test_bad_performance_narrows_back_but_never_past_nominal() -> None:
    adr = ADR([MASS], ADRConfig(enabled=True, window=4, boundary_probability=1.0))
    rng = np.random.default_rng(2)
    _run(adr, rng, lambda *_: 1.0, episodes=40)
    wide = adr.ranges()["body_mass_scale"]
    assert wide[0] < 1.0 < wide[1]
    _run(adr, rng, lambda *_: 0.0, episodes=400)
    assert adr.ranges()["body_mass_scale"] == (1.0, 1.0)


def test_middle_performance_keeps_the_range_and_each_bound_is_judged_on_its_own() -> None:
    adr = ADR([MASS], ADRConfig(enabled=True, low=0.2, high=0.8, window=10, boundary_probability=1.0))
    rng = np.random.default_rng(3)
    _run(adr, rng, lambda *_: 0.5, episodes=500)
    assert adr.ranges()["body_mass_scale"] == (1.0, 1.0) and adr.updates == 0
    # the policy copes with heavier bodies but not with lighter ones: only the upper bound grows
    _run(adr, rng, lambda _n, side, _v: 1.0 if side == "high" else 0.0, episodes=500)
    low, high = adr.ranges()["body_mass_scale"]
    assert low == 1.0 and high == pytest.approx(1.3)


def test_a_bound_stuck_at_its_limit_does_not_wipe_the_other_bounds_buffer() -> None:
    # goal_angle-like: the lower bound is pinned (minimum = nominal), only the upper one can move
    pinned = ADRParameter("goal_angle", nominal=0.6, step=0.1, minimum=0.6, maximum=3.0)
    adr = ADR([pinned], ADRConfig(enabled=True, window=3, high=0.6))
    for _ in range(2):
        adr.record(("goal_angle", "high"), 1.0)
    for _ in range(3):  # a full window of successes at the pinned low bound: it cannot move
        assert not adr.record(("goal_angle", "low"), 1.0)
    assert adr.record(("goal_angle", "high"), 1.0)  # the third high success still completes its window
    assert adr.ranges()["goal_angle"] == (0.6, pytest.approx(0.7)) and adr.updates == 1


def test_a_threshold_decides_only_after_a_full_window() -> None:
    adr = ADR([MASS], ADRConfig(enabled=True, window=3))
    assert not adr.record(("body_mass_scale", "high"), 1.0)
    assert not adr.record(("body_mass_scale", "high"), 1.0)
    assert adr.ranges()["body_mass_scale"] == (1.0, 1.0)
    assert adr.record(("body_mass_scale", "high"), 0.9)  # mean 0.97 >= 0.8: widen
    assert adr.ranges()["body_mass_scale"] == (1.0, pytest.approx(1.1))
    assert not adr.record(None, 1.0)  # a world that was not at a bound changes nothing


def test_boundary_worlds_pin_one_parameter_at_a_bound_in_the_configured_share() -> None:
    adr = ADR([MASS, FRICTION], ADRConfig(enabled=True, window=1, boundary_probability=0.25))
    adr.record(("body_mass_scale", "low"), 1.0)
    adr.record(("body_mass_scale", "high"), 1.0)  # range now [0.9, 1.1]
    rng = np.random.default_rng(4)
    draws = [adr.sample(rng) for _ in range(4000)]
    boundary = [d for d in draws if d.boundary is not None]
    assert 0.22 < len(boundary) / len(draws) < 0.28
    for d in boundary:
        name, side = d.boundary
        assert d.values[name] == adr.ranges()[name][0 if side == "low" else 1]
    inner = np.array([d.values["body_mass_scale"] for d in draws if d.boundary is None])
    assert inner.min() >= 0.9 and inner.max() <= 1.1 and inner.std() > 0.05  # uniform over the range


def test_same_generator_same_draws() -> None:
    a, b = (ADR([MASS, FRICTION], ADRConfig(enabled=True)) for _ in range(2))
    for adr in (a, b):
        adr.record(("geom_friction_scale", "high"), 1.0)
    ra, rb = np.random.default_rng(7), np.random.default_rng(7)
    assert [a.sample(ra) for _ in range(50)] == [b.sample(rb) for _ in range(50)]


def test_state_round_trip_keeps_ranges_and_buffers() -> None:
    adr = ADR([MASS, FRICTION], ADRConfig(enabled=True, window=3, boundary_probability=1.0))
    _run(adr, np.random.default_rng(5), lambda *_: 1.0, episodes=37)
    adr.record(("geom_friction_scale", "low"), 1.0)
    copy = ADR([MASS, FRICTION], ADRConfig(enabled=True, window=3, boundary_probability=1.0))
    copy.load_state_dict(adr.state_dict())
    assert copy.ranges() == adr.ranges() and copy.updates == adr.updates
    assert copy.record(("geom_friction_scale", "low"), 1.0) == adr.record(("geom_friction_scale", "low"), 1.0)
    with pytest.raises(ValueError, match="parameters"):
        ADR([MASS], ADRConfig(enabled=True)).load_state_dict(adr.state_dict())


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"low": -0.1}, "adr.low"), ({"high": 1.5}, "adr.high"), ({"low": 0.8, "high": 0.8}, "adr.low"),
    ({"low": 0.9, "high": 0.5}, "adr.low"), ({"window": 0}, "adr.window"),
    ({"boundary_probability": 0.0}, "adr.boundary_probability"), ({"high": math.nan}, "adr.high"),
    ({"steps": {"body_mass_scale": -0.1}}, "adr.steps.body_mass_scale"),
])
def test_bad_config_names_the_key(kwargs, key) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ADRConfig(enabled=True, **kwargs)


def test_bad_parameters_and_unknown_step_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"adr\.steps\.mass: is not a randomized parameter.*body_mass"):
        ADR([MASS], ADRConfig(enabled=True, steps={"mass": 0.1}))
    with pytest.raises(ConfigError, match=r"adr\.x\.step"):
        ADRParameter("x", nominal=1.0, step=0.0)
    with pytest.raises(ConfigError, match="nominal"):
        ADRParameter("x", nominal=2.0, step=0.1, maximum=1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ADR([MASS], ADRConfig(enabled=True)).record(("body_mass_scale", "low"), 3.0)
