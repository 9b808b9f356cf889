"""A trained policy from what a user names on the command line: a run directory (a checkpoint of it)
or a policy bundle (a folder with manifest.json, or `zoo:<name>`). `play` and `robustness` take both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.sim.randomization import RandomizationConfig


@dataclass(frozen=True)
class PolicySource:
    task: str
    act: Callable[[np.ndarray], np.ndarray]
    """Deterministic policy: raw observation `(obs_dim,)` -> normalised action."""
    label: str
    """What it is, for a title: e.g. "ppo bundle zoo:Hopper-v5_ppo"."""
    seed: int
    """The evaluation seed it was trained or exported with (episode i uses seed + i)."""
    randomize: RandomizationConfig
    """The training run's domain randomization (inactive if it had none)."""
    simulator: str = "gymnasium"
    """The simulator it was trained on, for `evaluation.evaluate`: "engine" for a run trained with
    `vectorization: batched` (the MuJoCo engine's worlds), else "gymnasium" (the registry's env)."""


def is_bundle(path: str) -> bool:
    return path.startswith("zoo:") or (Path(path) / "manifest.json").is_file()


def load_policy_source(path: str, checkpoint: str = "latest", runtime: str = "numpy") -> PolicySource:
    """Load the policy `path` names; a ConfigError if it is neither a run directory nor a bundle."""
    if is_bundle(path):
        from robot_rl.config import from_dict
        from robot_rl.policies import load

        if checkpoint != "latest":
            raise ConfigError("--checkpoint applies to a run directory, not to a bundle")
        policy = load(path, runtime=runtime)
        prov = policy.manifest.provenance
        training = prov.get("training_config") or {}
        randomize = from_dict(RandomizationConfig, training.get("randomize"), "training_config.randomize")
        seed = int((prov.get("evaluation") or {}).get("seed", 0))
        return PolicySource(policy.spec.name, policy.act_normalized, f"{prov.get('algorithm')} bundle {path}",
                            seed, randomize, trained_on(training.get("vectorization")))
    if not (Path(path) / "config.yaml").is_file():
        raise ConfigError(f"{path}: neither a run directory (config.yaml) nor a policy bundle "
                          "(manifest.json)")
    from robot_rl.trainer import load_run_policy

    config, policy_fn, _ = load_run_policy(path, checkpoint)
    return PolicySource(config.task, policy_fn, f"{config.algo} run {Path(path).name}", config.eval.seed,
                        config.randomize, trained_on(config.vectorization))


def trained_on(vectorization: object) -> str:
    """The `simulator` of a policy trained with `vectorization`: the engine's worlds for "batched"."""
    return "engine" if vectorization == "batched" else "gymnasium"
