"""Replay buffers: exact storage across the wrap-around, uniform and prioritized sampling, the sum tree.

Expected values are worked by hand (positions after a wrap-around, prefix sums of a small tree,
P(i) = p_i^α / Σ p^α and w_i = (N·P(i))^−β / max w).
"""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.replay import PrioritizedReplayBuffer, ReplayBuffer, SumTree


def _step(t: int, n: int = 2) -> dict[str, np.ndarray]:
    """Vector step t of n envs: every field encodes (t, env) so that a stored row names its origin."""
    ids = 10 * t + np.arange(n)
    return {"obs": np.stack([ids, -ids], axis=1).astype(np.float32), "actions": ids % 3,
            "rewards": ids.astype(np.float32) / 2, "next_obs": np.stack([ids + 0.5, -ids], axis=1),
            "terminated": (ids % 4 == 1), "truncated": (ids % 4 == 2)}


def test_stores_exactly_what_was_added_across_the_wrap_around():
    buffer = ReplayBuffer(capacity=5, obs_shape=(2,), seed=0)
    for t in range(3):  # 6 transitions into 5 slots: the first one is overwritten
        written = buffer.add(**_step(t))
        np.testing.assert_array_equal(written, (2 * t + np.arange(2)) % 5)
    assert (len(buffer), buffer.pos) == (5, 1)
    expected_ids = np.array([21, 1, 10, 11, 20])  # ids 20, 21 went to slots 4 and 0; id 0 is gone
    batch = buffer.get(np.arange(5))
    np.testing.assert_array_equal(batch.obs, np.stack([expected_ids, -expected_ids], axis=1))
    np.testing.assert_array_equal(batch.next_obs[:, 0], expected_ids + 0.5)
    np.testing.assert_array_equal(batch.actions, expected_ids % 3)
    np.testing.assert_array_equal(batch.rewards, expected_ids / 2)
    np.testing.assert_array_equal(batch.terminated, expected_ids % 4 == 1)  # id 1 and 21: terminated
    np.testing.assert_array_equal(batch.truncated, expected_ids % 4 == 2)  # id 10: truncated only
    assert batch.terminated.tolist() == [True, True, False, False, False]
    assert batch.truncated.tolist() == [False, False, True, False, False]
    assert batch.obs.dtype == np.float32 and batch.actions.dtype == np.int64


def test_more_than_capacity_at_once_keeps_the_newest():
    buffer = ReplayBuffer(capacity=3, obs_shape=(2,))
    buffer.add(**_step(0, n=5))  # ids 0..4: the last three stay, in order, ending at pos 5 % 3 = 2
    assert (len(buffer), buffer.pos) == (3, 2)
    np.testing.assert_array_equal(buffer.get(np.arange(3)).actions, np.array([3, 4, 2]) % 3)
    np.testing.assert_array_equal(buffer.get(np.arange(3)).obs[:, 0], [3, 4, 2])


def test_uniform_sampling_covers_the_stored_part_evenly():
    buffer = ReplayBuffer(capacity=100, obs_shape=(2,), seed=1)
    for t in range(5):
        buffer.add(**_step(t))  # 10 of 100 slots used
    batch = buffer.sample(50_000)
    counts = np.bincount(batch.indices, minlength=100)
    assert counts[10:].sum() == 0  # never an empty slot
    assert np.all(np.abs(counts[:10] - 5000) < 350)  # σ ≈ 67 per slot
    np.testing.assert_array_equal(batch.obs, buffer.obs[batch.indices])


def test_state_round_trip_restores_contents_and_sampling():
    buffer = ReplayBuffer(capacity=4, obs_shape=(2,), seed=3)
    for t in range(3):
        buffer.add(**_step(t))
    copy = ReplayBuffer(capacity=4, obs_shape=(2,), seed=99)
    copy.load_state_dict(buffer.state_dict())
    assert (copy.pos, len(copy)) == (buffer.pos, len(buffer))
    a, b = buffer.sample(16), copy.sample(16)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.obs, b.obs)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(capacity=5, obs_shape=(2,)).load_state_dict(buffer.state_dict())


def test_uint8_storage_for_pixels():
    buffer = ReplayBuffer(capacity=2, obs_shape=(3,), obs_dtype=np.uint8)
    buffer.add(np.array([[0.0, 128.0, 255.0]]), [1], [0.5], np.array([[1.0, 2.0, 3.0]]), [False], [True])
    batch = buffer.get([0])
    assert batch.obs.dtype == np.uint8 and batch.obs.tolist() == [[0, 128, 255]]


# ---------------------------------------------------------------------------------------- sum tree


def test_sum_tree_sums_and_finds_by_prefix():
    tree = SumTree(5)  # 8 leaves internally
    tree.update(np.arange(5), np.array([1.0, 0.0, 3.0, 2.0, 4.0]))
    assert tree.total == 10.0
    prefixes = np.array([0.0, 0.99, 1.0, 3.99, 4.0, 5.99, 6.0, 9.99])
    np.testing.assert_array_equal(tree.find(prefixes), [0, 0, 2, 2, 3, 3, 4, 4])  # leaf 1 (0) never
    tree.update(np.array([2]), np.array([0.5]))
    assert tree.total == 7.5
    np.testing.assert_array_equal(tree.find(np.array([1.2, 1.6])), [2, 3])
    np.testing.assert_array_equal(tree.values(np.arange(5)), [1.0, 0.0, 0.5, 2.0, 4.0])


# ---------------------------------------------------------------------------------------- prioritized


def _prioritized(alpha: float = 0.5) -> PrioritizedReplayBuffer:
    buffer = PrioritizedReplayBuffer(capacity=8, obs_shape=(2,), seed=0, alpha=alpha, eps=0.0)
    for t in range(2):
        buffer.add(**_step(t))  # 4 transitions, all at the initial max priority 1
    return buffer


def test_new_transitions_get_the_largest_priority():
    buffer = _prioritized(alpha=1.0)
    buffer.update_priorities(np.array([0, 1]), np.array([3.0, -0.5]))  # |δ| is the priority
    np.testing.assert_array_equal(buffer.tree.values(np.arange(4)), [3.0, 0.5, 1.0, 1.0])
    buffer.add(**_step(2))
    np.testing.assert_array_equal(buffer.tree.values(np.arange(6)), [3.0, 0.5, 1.0, 1.0, 3.0, 3.0])


def test_sampling_probabilities_and_importance_weights():
    buffer = _prioritized(alpha=0.5)
    buffer.update_priorities(np.arange(4), np.array([1.0, 4.0, 9.0, 16.0]))  # p^α = 1, 2, 3, 4
    probs = np.array([1.0, 2.0, 3.0, 4.0]) / 10.0
    batch = buffer.sample(40_000, beta=1.0)
    freq = np.bincount(batch.indices, minlength=4) / 40_000
    np.testing.assert_allclose(freq, probs, atol=0.006)
    weights = (4 * probs) ** -1.0
    expected = weights[batch.indices] / weights.max()  # the smallest priority has weight 1
    np.testing.assert_allclose(batch.weights, expected, rtol=1e-6)
    assert batch.weights.dtype == np.float32
    half = buffer.sample(8, beta=0.5)
    w = (4 * probs[half.indices]) ** -0.5
    np.testing.assert_allclose(half.weights, w / w.max(), rtol=1e-6)


def test_prioritized_state_round_trip():
    buffer = _prioritized()
    buffer.update_priorities(np.array([1, 3]), np.array([2.0, 5.0]))
    copy = PrioritizedReplayBuffer(capacity=8, obs_shape=(2,), alpha=0.5, eps=0.0)
    copy.load_state_dict(buffer.state_dict())
    np.testing.assert_array_equal(copy.tree.values(np.arange(8)), buffer.tree.values(np.arange(8)))
    assert copy.max_priority == buffer.max_priority == 5.0
    np.testing.assert_array_equal(copy.sample(32).indices, buffer.sample(32).indices)
