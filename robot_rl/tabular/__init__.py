"""Tabular methods of the course: dynamic programming on a FiniteMDP and TD control on Discrete envs.

Dynamic programming (`robot_rl.sim.mdp.FiniteMDP` in, `SolveResult` out): policy evaluation
(synchronous or in place), policy improvement, policy iteration, generalized policy iteration and value
iteration. TD control (any Gymnasium env with Discrete observation and action spaces): Q-learning and
SARSA with ε-greedy exploration. Only numpy is needed here; Gymnasium only for the TD methods.
"""

from .exploration import EpsilonSchedule, epsilon_greedy, greedy_action
from .policy_evaluation import SolveResult, policy_evaluation
from .policy_iteration import generalized_policy_iteration, policy_improvement, policy_iteration
from .q_learning import q_learning
from .sarsa import sarsa
from .td_control import TDConfig, TDResult, run_td_control
from .value_iteration import value_iteration

__all__ = [
    "EpsilonSchedule", "SolveResult", "TDConfig", "TDResult", "epsilon_greedy",
    "generalized_policy_iteration", "greedy_action", "policy_evaluation", "policy_improvement",
    "policy_iteration", "q_learning", "run_td_control", "sarsa", "value_iteration",
]
