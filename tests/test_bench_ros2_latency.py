"""bench/ros2_latency.py's pairing of answers with states (no ROS needed): what its losses and
latencies mean, including the case where a count alone would hide a lost state."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ros2_latency", ROOT / "bench" / "ros2_latency.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

PERIOD = 0.002
SENT = np.arange(100) * PERIOD


def command(value: float = 0.3) -> np.ndarray:
    return np.array([value, -0.1, 0.2])  # a policy's command: 3 values


def test_echo_answers_are_matched_by_the_index_they_carry():
    got = [(t + 0.0004, np.array([float(k), 1, 0, 0, 0, 0])) for k, t in enumerate(SENT) if k != 7]
    r = bench.analyse(SENT, got, 500.0)
    assert (r["matching"], r["lost"], r["unanswered_by_time"], r["received"]) == ("exact", 1, 1, 99)
    assert abs(r["p50_ms"] - 0.4) < 1e-9 and abs(r["max_ms"] - 0.4) < 1e-9


def test_policy_answers_in_order_and_safe_commands_apart():
    got = [(t + 0.0006, command()) for t in SENT] + [(SENT[-1] + 0.004, np.zeros(3))]  # + the watchdog's
    r = bench.analyse(SENT, got, 500.0)
    assert (r["matching"], r["lost"], r["unanswered_by_time"], r["safe_commands"]) == ("in order", 0, 0, 1)
    assert abs(r["p50_ms"] - 0.6) < 1e-9 and abs(r["max_ms"] - 0.6) < 1e-9


def test_a_lost_state_and_a_state_answered_twice_do_not_shift_the_latencies():
    # state 30 never answered; state 60 answered twice, the second time 2.5 ms late: the counts agree,
    # but pairing in order would put every answer from 30 to 60 one period late
    got = [(t + 0.0005, command()) for k, t in enumerate(SENT) if k != 30] + [(SENT[60] + 0.0025, command())]
    got.sort(key=lambda x: x[0])
    r = bench.analyse(SENT, got, 500.0)
    assert r["matching"] == "latest before" and r["lost"] == 0  # the count cannot see it
    assert r["unanswered_by_time"] == 1  # the pairing by time can
    assert abs(r["p50_ms"] - 0.5) < 1e-9


def test_policy_losses_by_count_when_answers_are_missing():
    got = [(t + 0.0005, command()) for k, t in enumerate(SENT) if k % 25 != 3]
    r = bench.analyse(SENT, got, 500.0)
    assert (r["matching"], r["lost"], r["unanswered_by_time"]) == ("latest before", 4, 4)
    assert abs(r["p99_ms"] - 0.5) < 1e-9
