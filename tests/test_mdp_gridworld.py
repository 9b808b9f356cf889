"""FiniteMDP validation and backups, grid maps and their semantics, the grid env, toy-text MDPs."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.sim.gridworld import (
    ACTIONS,
    EXIT,
    GRID_NAMES,
    grid_mdp,
    load_grid,
    make_grid_env,
    open_grid,
    parse_grid,
    to_rows,
)
from robot_rl.sim.mdp import FiniteMDP, policy_matrix, uniform_policy
from robot_rl.sim.toy_text import make_discrete_env, toy_text_mdp

N, S, E, W = 0, 1, 2, 3


def book_state(mdp: FiniteMDP, row: int, col: int) -> int:
    return int(mdp.grid_index[row, col])


def successor_distribution(mdp: FiniteMDP, s: int, a: int) -> dict[int, float]:
    out: dict[int, float] = {}
    for s2, p in zip(mdp.next_states[s, a], mdp.probs[s, a], strict=True):
        if p > 0:
            out[int(s2)] = out.get(int(s2), 0.0) + float(p)
    return out


# ---------------------------------------------------------------- map parsing


def test_book_map_layout():
    grid = load_grid("book")
    assert grid.shape == (3, 4)
    assert grid.walls.tolist() == [[False] * 4, [False, True, False, False], [False] * 4]
    assert grid.exits[0, 3] == 1.0 and grid.exits[1, 3] == -1.0
    assert np.isnan(grid.exits).sum() == 10
    assert grid.start == (2, 0)
    assert (grid.noise, grid.gamma, grid.living_reward) == (0.2, 0.9, 0.0)


def test_multi_character_rewards_and_settings():
    grid = parse_grid("noise = 0\nliving_reward = -0.5\n; comment\n#  -100  S\n+10  .  0.25\n", "t")
    assert grid.exits[0, 1] == -100.0 and grid.exits[1, 0] == 10.0 and grid.exits[1, 2] == 0.25
    assert grid.walls[0, 0] and grid.start == (0, 2)
    assert (grid.noise, grid.gamma, grid.living_reward) == (0.0, 0.9, -0.5)


@pytest.mark.parametrize("name", GRID_NAMES)
def test_named_grids_load(name):
    mdp = grid_mdp(name)
    grid = load_grid(name)
    assert mdp.num_states == int((~grid.walls).sum()) + 1
    assert mdp.start_state == mdp.grid_index[grid.start]


@pytest.mark.parametrize("text, message", [
    (". . +1\n. .\nS . .", "ragged"),
    (". ? +1\nS . .", "unknown symbol '?'"),
    ("... . +1\nS . .", "unknown symbol '...'"),
    (". . .\nS . .", "no exit"),
    (". . +1\n. . .", "exactly one start"),
    ("S . +1\nS . .", "exactly one start"),
    ("noise: 0.1\nS . +1", "bad setting"),
    ("speed = 1\nS . +1", "bad setting"),
    ("", "no rows"),
])
def test_malformed_maps_are_refused(text, message):
    with pytest.raises(ConfigError, match="grid bad") as err:
        parse_grid(text, "bad")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, key", [({"noise": 1.0}, "noise"), ({"noise": -0.1}, "noise"),
                                         ({"gamma": 0.0}, "gamma"), ({"gamma": 1.01}, "gamma")])
def test_bad_parameters_are_refused(kwargs, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        grid_mdp("book", **kwargs)


def test_unknown_grid_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        load_grid("boook")
    for name in GRID_NAMES:
        assert name in str(err.value)


def test_grid_from_file_and_open_grid(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("S . +5\n")
    assert load_grid(str(path)).exits[0, 2] == 5.0
    with pytest.raises(ConfigError, match="does not exist"):
        load_grid(str(tmp_path / "missing.txt"))
    grid = load_grid("open:7")
    assert grid.shape == (7, 7) and not grid.walls.any() and grid.start == (6, 0)
    assert grid.exits[0, 6] == 1.0 and grid.exits[1, 6] == -1.0
    assert grid_mdp(open_grid(300)).num_states == 300 * 300 + 1


# ---------------------------------------------------------------- grid semantics


def test_noise_splits_to_perpendicular_moves():
    mdp = grid_mdp("book")
    s = book_state(mdp, 0, 1)  # top middle-left; S is the wall below
    assert successor_distribution(mdp, s, E) == pytest.approx(
        {book_state(mdp, 0, 2): 0.8, s: 0.1 + 0.1})  # slips N (edge) and S (wall) both stay
    s = book_state(mdp, 2, 1)  # bottom row, the wall is north of it
    assert successor_distribution(mdp, s, N) == pytest.approx(
        {s: 0.8, book_state(mdp, 2, 2): 0.1, book_state(mdp, 2, 0): 0.1})
    assert successor_distribution(mdp, s, E) == pytest.approx(
        {book_state(mdp, 2, 2): 0.8, s: 0.1 + 0.1})  # slip N: wall, slip S: edge
    noisy = grid_mdp("book", noise=0.5)
    s = book_state(noisy, 1, 0)
    assert successor_distribution(noisy, s, S) == pytest.approx(
        {book_state(noisy, 2, 0): 0.5, s: 0.25 + 0.25})  # E is the wall, W is the edge


def test_exit_action_only_at_exit_cells_and_terminal_absorbing():
    mdp = grid_mdp("book", living_reward=-0.04)
    terminal = mdp.num_states - 1
    assert mdp.terminal.tolist() == [False] * terminal + [True]
    for (r, c), reward in (((0, 3), 1.0), ((1, 3), -1.0)):
        s = book_state(mdp, r, c)
        assert mdp.valid[s].tolist() == [False, False, False, False, True]
        assert successor_distribution(mdp, s, EXIT) == {terminal: 1.0}
        assert mdp.expected_reward()[s, EXIT] == reward
    others = [s for s in range(terminal) if not mdp.valid[s, EXIT]]
    assert len(others) == 9 and mdp.valid[others, :4].all()
    assert np.allclose(mdp.expected_reward()[others, :4], -0.04)
    assert successor_distribution(mdp, terminal, EXIT) == {terminal: 1.0}
    assert mdp.expected_reward()[terminal, EXIT] == 0.0
    q = mdp.q_from_v(np.arange(mdp.num_states, dtype=float))
    assert np.all(np.isneginf(q[~mdp.valid])) and np.all(np.isfinite(q[mdp.valid]))


def _reference_grid_mdp(grid):
    """A per-cell Python loop building the same arrays, to check the vectorised builder."""
    height, width = grid.shape
    cells = [(r, c) for r in range(height) for c in range(width) if not grid.walls[r, c]]
    index = {cell: i for i, cell in enumerate(cells)}
    terminal = len(cells)
    moves = {0: (-1, 0), 1: (1, 0), 2: (0, 1), 3: (0, -1)}
    slips = {0: (2, 3), 1: (2, 3), 2: (0, 1), 3: (0, 1)}
    dist = {}
    for (r, c), s in index.items():
        if not np.isnan(grid.exits[r, c]):
            dist[s, EXIT] = {(terminal, grid.exits[r, c]): 1.0}
            continue
        for a in range(4):
            d: dict = {}
            slip = grid.noise / 2
            for move, p in ((a, 1 - grid.noise), (slips[a][0], slip), (slips[a][1], slip)):
                r2, c2 = r + moves[move][0], c + moves[move][1]
                s2 = index.get((r2, c2), s)
                d[s2, grid.living_reward] = d.get((s2, grid.living_reward), 0.0) + p
            dist[s, a] = d
    dist[terminal, EXIT] = {(terminal, 0.0): 1.0}
    return dist


def test_vectorised_builder_matches_per_cell_loop():
    rng = np.random.default_rng(3)
    tokens = rng.choice([".", ".", ".", "#", "-1", "+2"], size=(9, 13))
    tokens[4, 6] = "S"
    text = "noise = 0.3\nliving_reward = -0.1\n" + "\n".join(" ".join(row) for row in tokens)
    grid = parse_grid(text, "random")
    mdp = grid_mdp(grid)
    reference = _reference_grid_mdp(grid)
    assert {(s, a) for s in range(mdp.num_states) for a in range(5) if mdp.valid[s, a]} == set(reference)
    for (s, a), dist in reference.items():
        got: dict = {}
        for s2, p, r in zip(mdp.next_states[s, a], mdp.probs[s, a], mdp.rewards[s, a], strict=True):
            if p > 0:
                got[int(s2), float(r)] = got.get((int(s2), float(r)), 0.0) + float(p)
        assert got == pytest.approx(dist)


def test_q_from_v_matches_definition():
    mdp = grid_mdp("discount", living_reward=-0.3)
    v = np.random.default_rng(0).normal(size=mdp.num_states)
    v[mdp.terminal] = 0.0
    expected = np.full((mdp.num_states, mdp.num_actions), -np.inf)
    for s in range(mdp.num_states):
        for a in np.flatnonzero(mdp.valid[s]):
            expected[s, a] = sum(p * (r + mdp.gamma * v[s2]) for s2, p, r in
                                 zip(mdp.next_states[s, a], mdp.probs[s, a], mdp.rewards[s, a], strict=True))
    assert np.allclose(mdp.q_from_v(v), expected)
    assert np.allclose(mdp.max_q(v), expected.max(axis=1))


def random_mdp(num_states: int, num_actions: int, fan_out: int, seed: int) -> FiniteMDP:
    """Random dynamics, a rarely allowed action, an unused slot, and one terminal state."""
    rng = np.random.default_rng(seed)
    valid = rng.random((num_states, num_actions)) < 0.7
    valid[:, -1] = rng.random(num_states) < 0.02  # allowed in few states: the sparse path
    valid[~valid.any(axis=1), 0] = True
    probs = rng.random((num_states, num_actions, fan_out))
    probs[:, :, -1] = 0.0  # a slot nobody uses
    probs[:, 1, 1] = 0.0  # action 1 has one successor fewer
    probs /= probs.sum(axis=2, keepdims=True)
    probs[~valid] = 0.0
    next_states = rng.integers(0, num_states, size=(num_states, num_actions, fan_out))
    rewards = rng.normal(size=(num_states, num_actions, fan_out))
    terminal = np.zeros(num_states, dtype=bool)
    terminal[0] = True
    next_states[0], rewards[0], probs[0], valid[0] = 0, 0.0, 0.0, [True] + [False] * (num_actions - 1)
    probs[0, 0, 0] = 1.0
    return FiniteMDP(next_states, probs, rewards, valid, terminal, 0.9, tuple("abcdef"[:num_actions]))


@pytest.mark.parametrize("num_states", [7, 40_000])  # one chunk, and several
def test_value_sweep_matches_q_from_v_on_random_mdps(num_states):
    mdp = random_mdp(num_states, 4, 3, seed=num_states)
    v = np.random.default_rng(1).normal(size=num_states)
    q = mdp.q_from_v(v)
    out = np.empty(num_states)
    delta = mdp.value_sweep(v, out)
    assert np.allclose(out, q.max(axis=1), rtol=0, atol=1e-12)
    assert delta == pytest.approx(np.max(np.abs(q.max(axis=1) - v)))
    if num_states == 7:  # the definition, slot by slot
        for s in range(num_states):
            for a in range(4):
                expected = sum(p * (r + 0.9 * v[s2]) for s2, p, r in
                               zip(mdp.next_states[s, a], mdp.probs[s, a], mdp.rewards[s, a], strict=True))
                assert q[s, a] == (pytest.approx(expected) if mdp.valid[s, a] else -np.inf)


def test_transition_matrix_of_a_policy():
    mdp = grid_mdp("book")
    p_pi, r_pi = mdp.transition_matrix(uniform_policy(mdp))
    assert np.allclose(p_pi.sum(axis=1), 1.0)
    s = book_state(mdp, 2, 1)  # bottom row, below the wall
    left, right = book_state(mdp, 2, 0), book_state(mdp, 2, 2)
    # N (wall): stay .8, E .1, W .1 | S (edge): stay .8, E .1, W .1 | E: E .8, stay .2 | W: W .8, stay .2
    # uniform mean: stay (.8 + .8 + .2 + .2)/4 = .5, E (.1 + .1 + .8)/4 = .25, W likewise .25.
    assert p_pi[s, s] == pytest.approx(0.5)
    assert p_pi[s, right] == pytest.approx(0.25) and p_pi[s, left] == pytest.approx(0.25)
    assert r_pi[book_state(mdp, 0, 3)] == 1.0


# ---------------------------------------------------------------- FiniteMDP validation


def _chain(**overrides):
    arrays = dict(next_states=np.array([[[1]], [[1]]]), probs=np.ones((2, 1, 1)), rewards=np.zeros((2, 1, 1)),
                  valid=np.ones((2, 1), dtype=bool), terminal=np.array([False, True]), gamma=0.5,
                  action_names=("go",))
    arrays.update(overrides)
    return FiniteMDP(**arrays)


@pytest.mark.parametrize("overrides, message", [
    ({"gamma": 0.0}, "gamma"), ({"gamma": 1.5}, "gamma"),
    ({"probs": np.full((2, 1, 1), 0.5)}, "sum to 1"),
    ({"probs": np.ones((2, 1, 2))}, "shape"),
    ({"next_states": np.array([[[2]], [[1]]])}, "next_states"),
    ({"rewards": np.array([[[0.0]], [[1.0]]])}, "terminal"),
    ({"next_states": np.array([[[1]], [[0]]])}, "terminal"),
    ({"valid": np.array([[True], [False]]), "probs": np.array([[[1.0]], [[0.0]]])}, "allows no action"),
    ({"action_names": ("a", "b")}, "action_names"),
])
def test_finite_mdp_validation(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _chain(**overrides)
    assert _chain().gamma == 0.5


def test_policy_matrix_refuses_invalid_actions():
    mdp = grid_mdp("book")
    policy = np.zeros(mdp.num_states, dtype=int)  # N everywhere, but exit cells allow only exit
    with pytest.raises(ConfigError, match="does not allow"):
        policy_matrix(mdp, policy)
    assert np.allclose(uniform_policy(mdp).sum(axis=1), 1.0)
    assert uniform_policy(mdp)[book_state(mdp, 0, 3)].tolist() == [0, 0, 0, 0, 1]


def test_to_rows():
    mdp = grid_mdp("book")
    rows = to_rows(mdp, list(range(mdp.num_states)))
    assert rows == [[0, 1, 2, 3], [4, None, 5, 6], [7, 8, 9, 10]]


# ---------------------------------------------------------------- the Gymnasium env


def test_grid_env_exit_and_spaces():
    env = make_grid_env("book")
    mdp = env.unwrapped.mdp
    assert env.observation_space.n == mdp.num_states and env.action_space.n == 4
    obs, _ = env.reset(seed=0)
    assert obs == book_state(mdp, 2, 0)
    env.unwrapped._state = book_state(mdp, 0, 3)  # put the agent on the +1 exit
    obs, reward, terminated, truncated, info = env.step(W)  # any action exits
    assert (obs, reward, terminated, truncated) == (mdp.num_states - 1, 1.0, True, False)
    assert info["action"] == "exit"


def test_grid_env_samples_the_noise():
    env = make_grid_env("book")
    mdp = env.unwrapped.mdp
    start = book_state(mdp, 2, 1)
    env.reset(seed=123)
    counts: dict[int, int] = {}
    n = 4000
    for _ in range(n):
        env.unwrapped._state = start
        obs = env.step(N)[0]
        counts[obs] = counts.get(obs, 0) + 1
    sigma = np.sqrt(0.1 * 0.9 / n)
    assert abs(counts[start] / n - 0.8) < 4 * np.sqrt(0.16 / n)
    assert abs(counts[book_state(mdp, 2, 2)] / n - 0.1) < 4 * sigma
    assert abs(counts[book_state(mdp, 2, 0)] / n - 0.1) < 4 * sigma


def test_grid_env_is_seeded_and_time_limited():
    def rollout(seed):
        env = make_grid_env("maze", max_episode_steps=30)
        env.reset(seed=seed)
        out = []
        for t in range(30):
            obs, _, terminated, truncated, _ = env.step(t % 4)
            out.append(obs)
            if terminated or truncated:
                break
        return out, truncated

    a, truncated = rollout(5)
    assert a == rollout(5)[0] and a != rollout(6)[0]
    assert truncated and len(a) == 30


# ---------------------------------------------------------------- toy text


def test_frozen_lake_mdp_matches_env_model():
    env = make_discrete_env("FrozenLake-v1")
    mdp = toy_text_mdp(env, gamma=0.9)
    model = env.unwrapped.P
    assert mdp.num_states == 16 and mdp.action_names == ("LEFT", "DOWN", "RIGHT", "UP")
    assert np.flatnonzero(mdp.terminal).tolist() == [5, 7, 11, 12, 15]  # holes and the goal
    for s in range(16):
        if mdp.terminal[s]:
            assert successor_distribution(mdp, s, 0) == {s: 1.0}
            continue
        for a in range(4):
            expected: dict[int, float] = {}
            for p, s2, _, _ in model[s][a]:
                expected[s2] = expected.get(s2, 0.0) + p
            assert successor_distribution(mdp, s, a) == pytest.approx(expected)
    assert mdp.expected_reward()[14, 2] == pytest.approx(1 / 3)  # RIGHT from 14 reaches the goal w.p. 1/3
    assert mdp.start_state == 0


def test_cliff_walking_and_taxi_mdps():
    cliff = toy_text_mdp("CliffWalking-v1", gamma=1.0)
    assert successor_distribution(cliff, 36, 1) == {36: 1.0}  # RIGHT from the start: the cliff, back
    assert cliff.expected_reward()[36, 1] == -100 and cliff.terminal[47] and cliff.terminal.sum() == 1
    taxi = toy_text_mdp("Taxi-v4")
    assert taxi.num_states == 501 and taxi.terminal.tolist() == [False] * 500 + [True]
    dropoffs = np.argwhere(taxi.rewards == 20)
    assert len(dropoffs) and np.all(taxi.next_states[tuple(dropoffs.T)] == 500)


def test_make_discrete_env_errors():
    with pytest.raises(ConfigError, match="observation space Box"):
        make_discrete_env("Pendulum-v1")
    with pytest.raises(ConfigError, match="unknown environment 'NoSuchEnv-v0'"):
        make_discrete_env("NoSuchEnv-v0")
    assert make_discrete_env("bridge").unwrapped.mdp.num_states == 18
    assert ACTIONS[EXIT] == "exit"
