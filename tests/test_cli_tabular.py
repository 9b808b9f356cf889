"""`robot-rl tabular`: JSON shapes and contents, the text table, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from robot_rl.cli import main

CS188_BOOK = [[0.64, 0.74, 0.85, 1.00], [0.57, None, 0.57, -1.00], [0.49, 0.43, 0.48, 0.28]]
BOOK_POLICY = [["E", "E", "E", "exit"], ["N", None, "N", "exit"], ["N", "W", "N", "W"]]


def run_json(capsys, *argv):
    assert main(["tabular", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON line
    return json.loads(out)


def close_rows(got, expected, atol):
    return all((g is None and e is None) or (g is not None and e is not None and abs(g - e) <= atol)
               for grow, erow in zip(got, expected, strict=True) for g, e in zip(grow, erow, strict=True))


def test_vi_iterations_json(capsys):
    out = run_json(capsys, "vi", "--grid", "book", "--iterations", "2")
    assert set(out) == {"values", "policy", "iterations"} and out["iterations"] == 2
    assert close_rows(out["values"], [[0, 0, 0.8 * 0.9, 1], [0, None, 0, -1], [0, 0, 0, 0]], 1e-12)
    assert out["policy"][0][2:] == ["E", "exit"] and out["policy"][1][1] is None
    assert out["policy"][1][3] == "exit"


def test_vi_pi_pe_converged(capsys):
    vi = run_json(capsys, "vi", "--grid", "book")
    assert close_rows(vi["values"], CS188_BOOK, 0.005) and vi["policy"] == BOOK_POLICY
    assert vi["iterations"] > 10
    pi = run_json(capsys, "pi", "--grid", "book")
    assert pi["policy"] == BOOK_POLICY and close_rows(pi["values"], vi["values"], 1e-7)
    pe = run_json(capsys, "pe", "--grid", "book", "--policy", "EEEx/N#Nx/NWNW", "--tol", "1e-10")
    assert pe["policy"] == BOOK_POLICY and close_rows(pe["values"], vi["values"], 1e-7)
    uniform = run_json(capsys, "pe", "--grid", "book", "--in-place")
    assert uniform["policy"][0] == ["random", "random", "random", "exit"]
    assert uniform["values"][0][3] == 1.0 and uniform["values"][2][0] < vi["values"][2][0]


def test_overrides_change_the_answer(capsys):
    out = run_json(capsys, "vi", "--grid", "bridge", "--noise", "0", "--gamma", "0.9")
    assert out["policy"][1][1] == "E" and abs(out["values"][1][1] - 10 * 0.9**5) < 1e-9
    out = run_json(capsys, "vi", "--grid", "book", "--living-reward", "-2")  # so bad: exit fast, even at −1
    assert out["policy"][1][2] == "E"


def test_vi_on_a_toy_text_env(capsys):
    out = run_json(capsys, "vi", "--env", "FrozenLake-v1")
    assert len(out["values"]) == 16 and len(out["policy"]) == 16
    assert out["values"][15] == 0.0 and 0.4 < out["values"][0] < 0.7  # γ 0.99, slippery
    taxi = run_json(capsys, "vi", "--env", "Taxi-v4", "--iterations", "3")
    assert len(taxi["values"]) == 500 and taxi["iterations"] == 3  # the appended absorbing state is hidden


def test_td_commands_json(capsys):
    out = run_json(capsys, "q-learning", "--env", "book", "--episodes", "40", "--seed", "3")
    assert len(out["returns"]) == 40 and len(out["values"]) == 3 and out["values"][1][1] is None
    assert out["policy"][0][3] == "exit" and out["policy"][1][3] == "exit"
    assert all(p in ("N", "S", "E", "W") for p in out["policy"][2])
    again = run_json(capsys, "q-learning", "--env", "book", "--episodes", "40", "--seed", "3")
    assert again == out
    cliff = run_json(capsys, "sarsa", "--env", "CliffWalking-v1", "--episodes", "50")
    assert len(cliff["values"]) == 48 and len(cliff["policy"]) == 48 and len(cliff["returns"]) == 50
    assert all(isinstance(a, int) for a in cliff["policy"])


def test_text_output_has_arrows(capsys):
    assert main(["tabular", "vi", "--grid", "book"]) == 0
    text = capsys.readouterr().out
    assert "converged" in text and "→" in text and "↑" in text and "◎" in text and "0.64" in text
    assert main(["tabular", "sarsa", "--env", "cliff", "--episodes", "20"]) == 0
    assert "mean return" in capsys.readouterr().out


BAD_MAPS = {"ragged.txt": "S . +1\n. .\n", "symbol.txt": "S . ?\n. . +1\n", "noexit.txt": "S . .\n. . .\n"}


@pytest.mark.parametrize("argv, fragment", [
    (["vi", "--grid", "nowhere"], "unknown grid 'nowhere'; valid names: book, bridge"),
    (["vi", "--grid", "{tmp}/ragged.txt"], "ragged"),
    (["vi", "--grid", "{tmp}/symbol.txt"], "unknown symbol '?'"),
    (["vi", "--grid", "{tmp}/noexit.txt"], "no exit"),
    (["vi", "--noise", "1"], "noise: 1.0 is outside [0, 1)"),
    (["pi", "--noise", "-0.2"], "noise: -0.2 is outside [0, 1)"),
    (["vi", "--gamma", "0"], "gamma: 0.0 is outside (0, 1]"),
    (["pe", "--gamma", "1.5"], "gamma: 1.5 is outside (0, 1]"),
    (["q-learning", "--env", "Pendulum-v1"], "observation space Box"),
    (["sarsa", "--env", "NoSuchEnv-v9"], "unknown environment 'NoSuchEnv-v9'"),
    (["vi", "--env", "NoSuchEnv-v9"], "unknown environment 'NoSuchEnv-v9'"),
    (["q-learning", "--epsilon", "1.5"], "epsilon: 1.5 is outside [0, 1]"),
    (["q-learning", "--env", "Taxi-v4", "--noise", "0.1"], "apply to grid worlds"),
    (["pe", "--policy", "EEEx/N#Nx"], "--policy: expected 3 rows"),
    (["pe", "--policy", "EEEE/N#Nx/NWNW"], "expected x (an exit cell)"),
])
def test_bad_input_is_one_line_and_exit_2(argv, fragment, tmp_path, capsys):
    for name, text in BAD_MAPS.items():
        (tmp_path / name).write_text(text)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["tabular", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("robot-rl: error: ") and fragment in lines[0]


def test_real_subprocess():
    exe = shutil.which("robot-rl")
    cmd = [exe] if exe else [sys.executable, "-m", "robot_rl.cli"]
    proc = subprocess.run([*cmd, "tabular", "vi", "--grid", "book", "--json"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert close_rows(out["values"], CS188_BOOK, 0.005) and out["policy"] == BOOK_POLICY
    proc = subprocess.run([*cmd, "tabular", "vi", "--grid", "nope"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
