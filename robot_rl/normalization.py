"""Running statistics for observation normalisation and return-based reward scaling (numpy only).

Both are part of what a trained policy *is*: the observation statistics travel in the policy bundle
(a robot normalises its observations exactly as training did), so their state is plain arrays and
floats — JSON- or npz-able, never pickled. Statistics are kept in float64 so that millions of merged
samples do not drift; normalised outputs are float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError


class RunningMeanStd:
    """Mean and (population) variance of every sample seen, over the leading batch axis.

    Batches merge by Chan, Golub & LeVeque's parallel formula, so the result equals np.mean/np.var of
    the concatenation of all batches, in one pass and O(shape) memory. Starts empty: mean 0, var 1,
    count 0 (the first batch replaces them).
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.shape: tuple[int, ...] = tuple(shape)
        self.mean = np.zeros(self.shape, dtype=np.float64)
        self.var = np.ones(self.shape, dtype=np.float64)
        self.count = 0.0

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch shaped `(n, *shape)`."""
        batch = np.reshape(np.asarray(batch, dtype=np.float64), (-1, *self.shape))
        n = batch.shape[0]
        if n == 0:
            return
        if n == 1:  # the per-step case of a single env: skip np.mean/np.var's overhead
            self.update_from_moments(batch[0], np.zeros(self.shape), 1)
            return
        self.update_from_moments(batch.mean(axis=0), batch.var(axis=0), n)

    def update_from_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, batch_count: float) -> None:
        """Merge a batch given its mean, population variance and size (the Chan et al. step)."""
        total = self.count + batch_count
        delta = batch_mean - self.mean
        m2 = (self.var * self.count + batch_var * batch_count
              + np.square(delta) * (self.count * batch_count / total))
        self.mean = self.mean + delta * (batch_count / total)
        self.var = m2 / total
        self.count = float(total)

    def state_dict(self) -> dict[str, Any]:
        """`{"mean": array, "var": array, "count": float}` (copies)."""
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": float(self.count)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from `state_dict()`; a shape mismatch is a ConfigError naming the key."""
        mean = _array(state, "mean", self.shape)
        var = _array(state, "var", self.shape)
        self.mean, self.var, self.count = mean, var, _float(state, "count")


class ObservationNormalizer:
    """obs ↦ clip((obs − mean) / sqrt(var + eps), ±clip), with running mean/var over observations.

    `update` on training batches only; `normalize` everywhere (the bundle carries mean/var/clip/eps).
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, eps: float = 1e-8) -> None:
        self.rms = RunningMeanStd(shape)
        self.clip = float(clip)
        self.eps = float(eps)

    def update(self, batch: np.ndarray) -> None:
        """Merge observations `(n, *shape)` into the statistics."""
        self.rms.update(batch)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Normalised, clipped observations, float32, same shape as `obs` (`(..., *shape)`)."""
        scaled = (np.asarray(obs, dtype=np.float64) - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """`{"mean", "var"}` arrays and `{"count", "clip", "eps"}` floats."""
        return {**self.rms.state_dict(), "clip": self.clip, "eps": self.eps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from `state_dict()`."""
        self.rms.load_state_dict(state)
        self.clip = _float(state, "clip")
        self.eps = _float(state, "eps")


class RewardScaler:
    """Divide rewards by the std of the running discounted return, per env (no mean subtraction).

    As SB3's VecNormalize and Gymnasium's NormalizeReward: each env keeps R ← γR + r; the running
    variance of R over all envs and steps scales the reward, r / sqrt(var(R) + eps), clipped to ±clip;
    R is reset to 0 where the episode ended (terminated or truncated), after it was used. This keeps
    the value targets O(1) whatever the reward's units, without changing the optimal policy.
    The very first steps see a near-zero variance; the clip bounds them, as in SB3.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.num_envs = int(num_envs)
        self.gamma = float(gamma)
        self.clip = float(clip)
        self.eps = float(eps)
        self.returns = np.zeros(self.num_envs, dtype=np.float64)
        self.rms = RunningMeanStd(())

    def step(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Update with one vector step (`rewards`, `dones`: `(num_envs,)`) and return scaled rewards."""
        rewards = np.asarray(rewards, dtype=np.float64)
        self.returns = self.returns * self.gamma + rewards
        self.rms.update(self.returns)
        scaled = self.scale(rewards)
        self.returns[np.asarray(dones, dtype=bool)] = 0.0
        return scaled

    def scale(self, rewards: np.ndarray) -> np.ndarray:
        """Scale rewards with the current statistics, without updating them: float32, same shape."""
        scaled = np.asarray(rewards, dtype=np.float64) / np.sqrt(self.rms.var + self.eps)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Running return per env, return statistics, and the constants, as arrays and floats."""
        return {"returns": self.returns.copy(), **self.rms.state_dict(), "gamma": self.gamma,
                "clip": self.clip, "eps": self.eps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from `state_dict()`."""
        self.returns = _array(state, "returns", (self.num_envs,))
        self.rms.load_state_dict(state)
        self.gamma = _float(state, "gamma")
        self.clip = _float(state, "clip")
        self.eps = _float(state, "eps")


def _array(state: Mapping[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key not in state:
        raise ConfigError(f"normalizer state: missing {key!r}")
    value = np.array(state[key], dtype=np.float64)
    if value.shape != shape:
        raise ConfigError(f"normalizer state: {key!r} has shape {value.shape}, expected {shape}")
    return value


def _float(state: Mapping[str, Any], key: str) -> float:
    if key not in state:
        raise ConfigError(f"normalizer state: missing {key!r}")
    return float(state[key])
