"""`robot-rl tabular`: the course's tabular methods on grid worlds and Gymnasium toy-text envs.

    robot-rl tabular vi --grid book --iterations 3 --json     value iteration (V_3 and its policy)
    robot-rl tabular pi --grid bridge --noise 0               policy iteration
    robot-rl tabular pe --grid book --policy EEEx/N#Nx/NWNW   policy evaluation
    robot-rl tabular q-learning --env CliffWalking-v1 --json  Q-learning (SARSA: `sarsa`)

Dynamic programming prints `{"values", "policy", "iterations"}`: for a grid, rows top first with
null at walls and actions N/S/E/W ("exit" at exit cells); for a Gymnasium id, flat per-state lists
with action indices. TD control adds `returns` (every episode's undiscounted return).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from robot_rl.commands import seed_arg
from robot_rl.errors import ConfigError

_ARROWS = {"N": "↑", "S": "↓", "E": "→", "W": "←", "exit": "◎", "random": "·"}
_POLICY_HELP = ("policy to evaluate, one character per cell, rows separated by '/': N S E W, x at exits, "
                "# at walls; e.g. the book grid's optimal policy is EEEx/N#Nx/NWNW. "
                "Default: the uniform random policy")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tabular", help="dynamic programming and TD control on grid worlds and toy-text envs",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    methods = parser.add_subparsers(dest="method", metavar="METHOD")
    methods.required = True
    for name, help_text in (("vi", "value iteration"), ("pi", "policy iteration"),
                            ("pe", "policy evaluation")):
        sub = methods.add_parser(name, help=help_text, description=f"{help_text.capitalize()} on a grid "
                                 "world (or a Gymnasium toy-text env with --env).")
        where = sub.add_mutually_exclusive_group()
        where.add_argument("--grid", default=None,
                           help="grid name (book, bridge, cliff, cliff2, discount, maze), open:N, or a .txt "
                                "map file; default book")
        where.add_argument("--env", default=None,
                           help="a Gymnasium toy-text id instead: FrozenLake-v1, FrozenLake8x8-v1, "
                                "CliffWalking-v1, Taxi-v4")
        sub.add_argument("--iterations", type=int, default=None,
                         help="run exactly this many sweeps (pi: improvement rounds); "
                              "default: until convergence")
        sub.add_argument("--tol", type=float, default=1e-8, help="stop when max |ΔV| < tol (default 1e-8)")
        _dynamics_options(sub)
        if name == "pe":
            sub.add_argument("--policy", default=None, help=_POLICY_HELP)
            sub.add_argument("--in-place", action="store_true",
                             help="Gauss–Seidel sweeps (state by state on small grids), "
                                  "not synchronous ones")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        sub.set_defaults(run=run_dp)
    for name, help_text in (("q-learning", "Q-learning (off-policy TD control)"),
                            ("sarsa", "SARSA (on-policy TD control)")):
        sub = methods.add_parser(name, help=help_text, description=f"{help_text}. Defaults: Sutton & Barto's "
                                 "example 6.6 (500 episodes, ε 0.1, α 0.5, γ 1 on CliffWalking-v1).")
        sub.add_argument("--env", default="CliffWalking-v1",
                         help="a grid (name, open:N or .txt map) or a Gymnasium id with Discrete spaces "
                              "(default CliffWalking-v1)")
        sub.add_argument("--episodes", type=int, default=500)
        sub.add_argument("--epsilon", type=float, default=0.1, help="ε (the first episode's, if decaying)")
        sub.add_argument("--epsilon-end", type=float, default=None, help="ε after decay (default: no decay)")
        sub.add_argument("--epsilon-schedule", default="fixed", choices=("fixed", "linear", "exponential"))
        sub.add_argument("--epsilon-decay-episodes", type=int, default=None,
                         help="episodes over which ε decays (default: all)")
        sub.add_argument("--alpha", type=float, default=0.5, help="step size α in (0, 1]")
        sub.add_argument("--seed", type=seed_arg, default=0)
        sub.add_argument("--max-steps", type=int, default=None,
                         help="truncate episodes after this many steps")
        _dynamics_options(sub, gamma_default="the grid's, 1 for a Gymnasium id")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        sub.set_defaults(run=run_td)


def _dynamics_options(sub: argparse.ArgumentParser, gamma_default: str = "the grid's; 0.99 with --env",
                      ) -> None:
    sub.add_argument("--gamma", type=float, default=None,
                     help=f"discount γ in (0, 1] (default: {gamma_default})")
    sub.add_argument("--noise", type=float, default=None,
                     help="grids: probability of slipping sideways, in [0, 1) (default: the grid's)")
    sub.add_argument("--living-reward", type=float, default=None,
                     help="grids: reward of every move (default: the grid's)")


def _grid_overrides(args: argparse.Namespace, what: str) -> None:
    if args.noise is not None or args.living_reward is not None:
        raise ConfigError(f"--noise and --living-reward apply to grid worlds, not to {what}")


def run_dp(args: argparse.Namespace) -> int:
    import numpy as np

    from robot_rl.sim.gridworld import grid_mdp, load_grid, to_rows
    from robot_rl.sim.mdp import uniform_policy
    from robot_rl.sim.toy_text import make_discrete_env, toy_text_mdp
    from robot_rl.tabular import policy_evaluation, policy_iteration, value_iteration

    env_states = 0
    if args.env is not None:
        _grid_overrides(args, args.env)
        if getattr(args, "policy", None) is not None:
            raise ConfigError("--policy applies to grid worlds; with --env the uniform random policy "
                              "is evaluated")
        env = make_discrete_env(args.env)
        try:
            mdp = toy_text_mdp(env, gamma=0.99 if args.gamma is None else args.gamma)
        finally:
            env.close()
        env_states = int(env.observation_space.n)  # an appended absorbing state is not shown
        label = args.env
    else:
        grid = load_grid(args.grid or "book")
        mdp = grid_mdp(grid, args.noise, args.gamma, args.living_reward)
        label = _grid_label(grid.with_params(args.noise, args.gamma, args.living_reward))
    options: dict[str, Any] = {"tol": args.tol, "iterations": args.iterations}
    if args.method == "vi":
        result = value_iteration(mdp, **options)
        policy = [mdp.action_names[a] for a in result.policy]
    elif args.method == "pi":
        result = policy_iteration(mdp, **options)
        policy = [mdp.action_names[a] for a in result.policy]
    else:
        evaluated = uniform_policy(mdp) if args.policy is None else parse_policy(mdp, args.policy)
        result = policy_evaluation(mdp, evaluated, in_place=args.in_place, **options)
        pi = evaluated if evaluated.ndim == 2 else np.eye(mdp.num_actions)[evaluated]
        policy = [mdp.action_names[int(np.argmax(row))] if row.max() == 1.0 else "random" for row in pi]
    values = result.values.tolist()
    if mdp.grid_index is None:  # Gymnasium ids: flat lists of action indices
        out = {"values": values[:env_states], "policy": result.policy.tolist()[:env_states],
               "iterations": result.iterations}
    else:
        out = {"values": to_rows(mdp, values), "policy": to_rows(mdp, policy),
               "iterations": result.iterations}
    if args.json:
        print(json.dumps(out))
        return 0
    name = {"vi": "value iteration", "pi": "policy iteration", "pe": "policy evaluation"}[args.method]
    unit = "rounds" if args.method == "pi" else "sweeps"
    state = "converged" if result.converged else f"not converged (max |ΔV| {result.delta:.3g})"
    print(f"{name} on {label}: {result.iterations} {unit}, {state}")
    shown = out["policy"] if mdp.grid_index is not None else [mdp.action_names[a] for a in out["policy"]]
    _print_table(out["values"], shown)
    return 0


def run_td(args: argparse.Namespace) -> int:
    import numpy as np

    from robot_rl.sim.gridworld import ACTIONS, EXIT, to_rows
    from robot_rl.sim.toy_text import make_discrete_env
    from robot_rl.tabular import TDConfig, q_learning, sarsa

    if _is_grid(args.env):
        env = make_discrete_env(args.env, noise=args.noise, gamma=args.gamma,
                                living_reward=args.living_reward)
    else:
        _grid_overrides(args, args.env)
        env = make_discrete_env(args.env)
    mdp = getattr(env.unwrapped, "mdp", None)  # a grid world's MDP
    gamma = args.gamma if args.gamma is not None else (mdp.gamma if mdp is not None else 1.0)
    config = TDConfig(episodes=args.episodes, alpha=args.alpha, gamma=gamma, epsilon=args.epsilon,
                      epsilon_end=args.epsilon_end, epsilon_schedule=args.epsilon_schedule,
                      epsilon_decay_episodes=args.epsilon_decay_episodes, seed=args.seed,
                      max_steps=args.max_steps)
    try:
        result = (q_learning if args.method == "q-learning" else sarsa)(env, config)
    finally:
        env.close()
    returns = result.returns.tolist()
    if mdp is not None:
        exits = mdp.valid[:, EXIT]
        policy = ["exit" if exits[s] else ACTIONS[a] for s, a in enumerate(result.policy)]
        out = {"values": to_rows(mdp, result.values.tolist()), "policy": to_rows(mdp, policy),
               "returns": returns}
    else:
        out = {"values": result.values.tolist(), "policy": result.policy.tolist(), "returns": returns}
    if args.json:
        print(json.dumps(out))
        return 0
    last = result.returns[-min(100, len(returns)):]
    print(f"{args.method} on {args.env}: {args.episodes} episodes, mean return {np.mean(returns):.2f} "
          f"(last {len(last)}: {np.mean(last):.2f}); greedy policy and its values:")
    _print_table(out["values"], out["policy"])
    return 0


def parse_policy(mdp: Any, text: str) -> Any:
    """(S,) action indices from the --policy string (see its help); the terminal state takes exit."""
    import numpy as np

    from robot_rl.sim.gridworld import EXIT

    rows = text.strip().split("/")
    index = mdp.grid_index
    if len(rows) != index.shape[0] or any(len(r) != index.shape[1] for r in rows):
        raise ConfigError(f"--policy: expected {index.shape[0]} rows of {index.shape[1]} characters "
                          f"separated by '/', got {text!r}")
    codes = {"N": 0, "S": 1, "E": 2, "W": 3, "x": EXIT}
    policy = np.full(mdp.num_states, EXIT, dtype=np.int64)
    for i, row in enumerate(rows):
        for j, ch in enumerate(row):
            s = int(index[i, j])
            if s < 0:
                if ch != "#":
                    raise ConfigError(f"--policy: row {i}, column {j} is a wall; write '#' there")
                continue
            if ch not in codes or not mdp.valid[s, codes[ch]]:
                allowed = "x (an exit cell)" if mdp.valid[s, EXIT] else "one of N S E W"
                raise ConfigError(f"--policy: {ch!r} at row {i}, column {j}; expected {allowed}")
            policy[s] = codes[ch]
    return policy


def _is_grid(name: str) -> bool:
    from robot_rl.sim.gridworld import GRID_NAMES

    return name in GRID_NAMES or name.startswith("open:") or name.endswith(".txt")


def _grid_label(grid: Any) -> str:
    return f"{grid.name} (noise {grid.noise:g}, γ {grid.gamma:g}, living reward {grid.living_reward:g})"


def _print_table(values: list, policy: list) -> None:
    if values and isinstance(values[0], list):
        for vrow, prow in zip(values, policy, strict=True):
            cells = ["   #####  " if v is None else f"{v:8.2f} {_ARROWS.get(p, '?')}"
                     for v, p in zip(vrow, prow, strict=True)]
            print(" ".join(cells))
        return
    print("state      value  action")
    for s, (v, a) in enumerate(zip(values, policy, strict=True)):
        print(f"{s:5d} {v:10.4f}  {a}")
    sys.stdout.flush()
