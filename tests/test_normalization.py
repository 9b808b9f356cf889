"""Running mean/std, observation normaliser and return-based reward scaler against closed forms."""

import io
import json

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.normalization import ObservationNormalizer, RewardScaler, RunningMeanStd


def test_running_mean_std_equals_numpy_over_the_concatenation() -> None:
    rng = np.random.default_rng(0)
    sizes = [(1, 1.0), (7, 2.0), (100, 0.5), (2, 9.0)]
    batches = [rng.normal(loc=5.0, scale=s, size=(n, 3)) for n, s in sizes]
    rms = RunningMeanStd((3,))
    for batch in batches:
        rms.update(batch)
    data = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rms.var, data.var(axis=0), rtol=1e-12)
    assert rms.count == len(data)


def test_running_mean_std_scalar_shape_and_empty_batch() -> None:
    rms = RunningMeanStd()
    rms.update(np.array([1.0, 2.0, 3.0, 4.0]))
    rms.update(np.array([]))
    rms.update(np.array([10.0]))
    np.testing.assert_allclose(rms.mean, 4.0)
    np.testing.assert_allclose(rms.var, np.var([1.0, 2.0, 3.0, 4.0, 10.0]))


def test_normalizer_standardises_and_clips() -> None:
    norm = ObservationNormalizer((2,), clip=3.0, eps=1e-8)
    norm.update(np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0]]))  # mean (2, 10), var (8/3, 0)
    out = norm.normalize(np.array([[2.0 + np.sqrt(8.0 / 3.0), 10.0], [-100.0, 10.5]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out[1], [-3.0, 3.0])  # both far outside: clipped to ±clip


def test_normalizer_state_dict_round_trips_through_json_and_npz() -> None:
    rng = np.random.default_rng(1)
    norm = ObservationNormalizer((4,), clip=5.0, eps=1e-6)
    norm.update(rng.normal(size=(50, 4)) * 3 + 1)
    obs = rng.normal(size=(8, 4)) * 4

    via_json = ObservationNormalizer((4,))
    plain = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in norm.state_dict().items()}
    text = json.dumps(plain)
    via_json.load_state_dict(json.loads(text))
    np.testing.assert_array_equal(via_json.normalize(obs), norm.normalize(obs))
    assert via_json.clip == 5.0 and via_json.eps == 1e-6

    buffer = io.BytesIO()
    np.savez(buffer, **norm.state_dict())
    buffer.seek(0)
    via_npz = ObservationNormalizer((4,))
    with np.load(buffer, allow_pickle=False) as data:
        via_npz.load_state_dict(dict(data))
    np.testing.assert_array_equal(via_npz.normalize(obs), norm.normalize(obs))

    with pytest.raises(ConfigError, match="'mean' has shape"):
        ObservationNormalizer((3,)).load_state_dict(norm.state_dict())
    with pytest.raises(ConfigError, match="missing 'clip'"):
        ObservationNormalizer((4,)).load_state_dict({"mean": np.zeros(4), "var": np.ones(4), "count": 1.0})


def test_reward_scaler_on_constant_rewards_matches_closed_form_returns() -> None:
    gamma, steps = 0.9, 12
    rewards = np.array([1.0, 3.0])
    scaler = RewardScaler(num_envs=2, gamma=gamma, clip=1e9, eps=1e-8)
    dones = np.zeros((steps, 2), dtype=bool)
    dones[2, 1] = True  # env 1's episode ends at step 2 (terminated or truncated: both reset)
    # Closed form of R_k = r (1 − γ^k) / (1 − γ) after k steps of an episode.
    episode_len = np.array([0, 0])
    seen: list[float] = []
    for t in range(steps):
        episode_len += 1
        seen.extend(rewards * (1 - gamma**episode_len) / (1 - gamma))
        scaled = scaler.step(rewards, dones[t])
        np.testing.assert_allclose(scaled, rewards / np.sqrt(np.var(seen) + 1e-8), rtol=1e-6)
        episode_len[dones[t]] = 0
    np.testing.assert_allclose(scaler.returns[1], 3.0 * (1 - gamma**9) / (1 - gamma))


def test_reward_scaler_clips_and_round_trips() -> None:
    scaler = RewardScaler(num_envs=3, gamma=0.99)
    first = scaler.step(np.array([1.0, -1.0, 0.5]), np.zeros(3, dtype=bool))
    # after one step the returns are the rewards themselves: divide by their population std
    np.testing.assert_allclose(first, np.array([1.0, -1.0, 0.5]) / np.sqrt(np.var([1.0, -1.0, 0.5]) + 1e-8),
                               rtol=1e-6)
    tiny = RewardScaler(num_envs=1, gamma=0.99)
    assert tiny.step(np.array([2.0]), np.array([False]))[0] == pytest.approx(10.0)  # var 0: clipped
    scaler.step(np.array([0.3, 0.2, 0.1]), np.array([True, False, False]))
    restored = RewardScaler(num_envs=3, gamma=0.5)
    restored.load_state_dict(scaler.state_dict())
    assert restored.gamma == 0.99
    np.testing.assert_array_equal(restored.returns, scaler.returns)
    r, d = np.array([0.7, -0.2, 1.5]), np.array([False, True, False])
    np.testing.assert_array_equal(restored.step(r, d), scaler.step(r, d))
