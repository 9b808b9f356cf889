"""Q-learning (Watkins 1989; Sutton & Barto §6.5): off-policy TD control.

    Q(s, a) ← Q(s, a) + α [r + γ max_a' Q(s', a') − Q(s, a)]

The target uses the greedy action at s' whatever the ε-greedy behaviour does next, so Q approaches
Q* — on the cliff, the edge path — while the behaviour still pays for its exploration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .td_control import TDConfig, TDResult, run_td_control


def q_learning_bootstrap(q_next: np.ndarray, next_action: int) -> float:
    """max_a' Q(s', a'): the greedy policy's value, not the behaviour's."""
    return float(q_next.max())


def q_learning(env: Any, config: TDConfig | None = None) -> TDResult:
    """Run Q-learning on a Gymnasium env with Discrete spaces (see `run_td_control`)."""
    return run_td_control(env, q_learning_bootstrap, config or TDConfig(), on_policy=False)
