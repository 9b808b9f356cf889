"""Launch files: every shipped file validates; bad input is one clear error naming the key, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from robot_rl.cli import main
from robot_rl.config import apply_overrides
from robot_rl.errors import ConfigError
from robot_rl.launch import config_to_yaml_dict, load_train_config, parse_train_config

LAUNCH = Path(__file__).resolve().parents[1] / "launch"
TRAIN_FILES = sorted(p for p in LAUNCH.glob("*.yaml")
                     if yaml.safe_load(p.read_text()).get("kind", "train") == "train")


@pytest.mark.parametrize("path", TRAIN_FILES, ids=lambda p: p.name)
def test_every_training_launch_file_validates_and_round_trips(path: Path) -> None:
    """Named <task>_<algo>.yaml, or <task>_<algo>_<variant>.yaml for a variant of those settings."""
    config = load_train_config(path)
    if config.task.startswith("declared:"):  # the file declares its own task: <robot>_<skill>_<algo>.yaml
        assert path.stem.endswith(f"_{config.algo}") or f"_{config.algo}_" in path.stem
    else:
        task = config.task.split("-v")[0].lower().replace(":", "_").replace("-", "_")
        assert path.stem == f"{task}_{config.algo}" or path.stem.startswith(f"{task}_{config.algo}_")
    again = parse_train_config(config_to_yaml_dict(config))
    assert again == config


def test_the_benchmarked_pairs_have_launch_files() -> None:
    names = {p.stem for p in TRAIN_FILES}
    for task in ("hopper", "halfcheetah", "walker2d", "ant", "humanoid"):
        assert {f"{task}_ppo", f"{task}_trpo"} <= names
    assert {"invertedpendulum_ppo", "invertedpendulum_reinforce", "invertedpendulum_vpg"} <= names
    assert len([n for n in names if n.startswith("dmc_") and n.endswith("_ppo")]) >= 2


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_unknown_key_names_it_and_lists_valid_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "task: Hopper-v5\nalgo: ppo\nppo:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    message = str(err.value)
    assert "ppo.epoch" in message and "epochs" in message and "minibatch_size" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'totl_steps'.*total_steps"):
        load_train_config(_write(tmp_path, "task: Hopper-v5\nalgo: ppo\ntotl_steps: 5\n"))


@pytest.mark.parametrize(("text", "pattern"), [
    ("task: Hopper-v5\nalgo: ppo\ntotal_steps: many\n", r"total_steps: expected an integer"),
    ("task: Hopper-v5\nalgo: ppo\nppo: {clip_range: -1}\n", r"clip_range: must be > 0"),
    ("task: Hopper-v5\nalgo: ppo\nppo: {objective: trust}\n", r"objective.*clip, kl_penalty"),
    ("task: Hopper-v5\nalgo: sac\n", r"algo: 'sac' is not valid; choose one of: ppo, trpo"),
    ("task: Hoper-v5\nalgo: ppo\n", r"unknown task 'Hoper-v5'.*Hopper-v5"),
    ("task: Hopper-v5\nalgo: ppo\ntrpo: {}\n", r"section 'trpo' given, but algo is 'ppo'"),
    ("algo: ppo\n", r"missing key 'task'"),
    ("task: Hopper-v5\nalgo: ppo\npolicy: {activation: sigmoid}\n", r"policy.activation.*tanh, relu, elu"),
    ("- just\n- a list\n", r"mapping"),
    ("task: Hopper-v5\nalgo: ppo\nseed: -1\n", r"seed: must be >= 0"),
    ("task: Hopper-v5\nalgo: ppo\npolicy: {log_std_init: .nan}\n", r"log_std_init: expected a finite"),
    ("task: Hopper-v5\nalgo: ppo\npolicy: {log_std_init: 5}\n", r"policy\.log_std_init: must be a number in"),
    ("task: Hopper-v5\nalgo: ppo\npolicy: {log_std_init: -1, log_std_min: 0}\n",
     r"policy\.log_std_min: must be a number in \[-20, policy.log_std_init = -1"),
    ("task: Hopper-v5\nalgo: ppo\npolicy: {log_std_min: low}\n", r"policy\.log_std_min"),
    ("task: CartPole-v1\nalgo: dqn\ndqn: {learning_rate: .inf}\n", r"dqn\.learning_rate: expected a finite"),
    ("task: Hopper-v5\nalgo: dqn\neval: {seed: -5}\n", r"eval\.seed: must be >= 0"),
])
def test_bad_values_are_named(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_train_config(_write(tmp_path, text))


def test_overrides_apply_by_dotted_name_and_are_validated(tmp_path: Path) -> None:
    path = _write(tmp_path, "task: Hopper-v5\nalgo: ppo\n")
    config = load_train_config(path, ["total_steps=5000", "ppo.epochs=3", "policy.hidden=[32, 32]"])
    assert (config.total_steps, config.algorithm.epochs, config.policy.hidden) == (5000, 3, (32, 32))
    with pytest.raises(ConfigError, match=r"ppo\.epochz"):
        load_train_config(path, ["ppo.epochz=3"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["epochs"])


def test_cli_reports_bad_launch_file_with_exit_code_2(tmp_path: Path, capsys) -> None:
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    path = _write(tmp_path, "task: Hopper-v5\nalgo: ppo\nbogus: 1\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "Traceback" not in err
