"""SARSA (Rummery & Niranjan 1994; Sutton & Barto §6.4): on-policy TD control.

    Q(s, a) ← Q(s, a) + α [r + γ Q(s', a') − Q(s, a)],   a' ~ ε-greedy(Q(s', ·)), then taken

The target uses the action the ε-greedy policy really takes next, so Q is the value of the exploring
policy: on the cliff, exploration's falls are priced in and the learned path keeps its distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .td_control import TDConfig, TDResult, run_td_control


def sarsa_bootstrap(q_next: np.ndarray, next_action: int) -> float:
    """Q(s', a') for the next action a' of the behaviour policy."""
    return float(q_next[next_action])


def sarsa(env: Any, config: TDConfig | None = None) -> TDResult:
    """Run SARSA on a Gymnasium env with Discrete spaces (see `run_td_control`)."""
    return run_td_control(env, sarsa_bootstrap, config or TDConfig(), on_policy=True)
