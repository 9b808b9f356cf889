"""Launch files: the YAML schema of a training run, validated into typed configs.

A launch file names the task, the algorithm and its hyperparameters, seeds, budget, evaluation and
logging. Every section is a frozen dataclass whose defaults reproduce our benchmarks; the file and
`--set KEY=VALUE` overrides are merged first and validated once, so an unknown key, a wrong type or a
bad value is one `ConfigError` naming the dotted key. The algorithm's own section (`ppo:`, `trpo:`,
...) is validated by that algorithm's config class, looked up in `ALGORITHMS`.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from robot_rl import strict_yaml
from robot_rl.config import apply_overrides, check, check_choice, from_dict, read_launch_file, to_dict
from robot_rl.errors import ConfigError
from robot_rl.sim.adr import ADRConfig
from robot_rl.sim.randomization import RandomizationConfig, check_randomization

# algorithm name -> (agent module, config class in CONFIGS, agent class, trainer "module:class").
# Explicit: the error lists these names. A trainer has `__init__(config, run_dir)`, `resume(run_dir)`,
# `train() -> dict` and `policy_from_checkpoint(config, state) -> policy on raw observations`.
ON_POLICY = "robot_rl.trainer:Trainer"
CONFIGS = "robot_rl.agents.configs"
"""Where every algorithm's config class lives (torch-free; each agent module re-exports its own)."""
ALGORITHMS: dict[str, tuple[str, str, str, str]] = {
    "ppo": ("robot_rl.agents.ppo", "PPOConfig", "PPO", ON_POLICY),
    "trpo": ("robot_rl.agents.trpo", "TRPOConfig", "TRPO", ON_POLICY),
    "reinforce": ("robot_rl.agents.reinforce", "ReinforceConfig", "Reinforce", ON_POLICY),
    "vpg": ("robot_rl.agents.vpg", "VPGConfig", "VPG", ON_POLICY),
    "dqn": ("robot_rl.agents.dqn", "DQNConfig", "DQN", "robot_rl.dqn_trainer:DQNTrainer"),
}


# Upper bounds on sizes, checked before anything is allocated (a typo must not take the machine down).
MAX_WIDTH = 4096
"""Widest hidden layer: a 4096×4096 float32 layer is 64 MiB, ×3 with Adam's moments."""
MAX_LAYERS = 16
"""Most hidden layers of one network."""
MAX_THREADS = 256
"""Most torch threads (100 000 segfaulted torch, 5 000 hung it)."""
MAX_ENVS = 4096
"""Most sub-environments of one vector env."""
MAX_SEED = 2**64 - 1
"""Largest seed (the run's, eval.seed): 64 bits, what torch.manual_seed takes."""


@dataclass(frozen=True)
class PolicyConfig:
    """Actor and critic networks."""

    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the actor MLP."""
    critic_hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the critic MLP."""
    activation: Literal["tanh", "relu", "elu"] = "tanh"
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian (state-independent, learned)."""
    log_std_min: float | None = None
    """A floor on that log standard deviation (None: none). With no entropy bonus PPO can drive the
    exploration noise toward zero before the task is learned (cube:reorient: entropy 7.9 -> -7.4 while
    success stayed flat); the floor keeps exploring. The deterministic policy (a bundle) is unaffected."""
    squash: bool = False
    """Squash actions with tanh (log-prob corrected); otherwise the Gaussian sample is clipped."""
    ortho_init: bool = True
    """Orthogonal weights (gain √2 hidden, 0.01 on the action mean, 1 on the value), zero biases;
    false keeps torch's default initialisation, as the RL Zoo's tuned MuJoCo PPO settings do."""
    critic_privileged: tuple[str, ...] = ()
    """Asymmetric actor-critic: the task's privileged terms (simulator state a robot cannot measure, e.g.
    the cube's velocity and drawn mass) the critic sees besides the observation, normalised, in this
    order (PPO and TRPO on `vectorization: batched`); the actor, and so a bundle, never sees them.
    Empty: the critic sees the policy's observation."""

    def __post_init__(self) -> None:
        for key, widths in (("policy.hidden", self.hidden), ("policy.critic_hidden", self.critic_hidden)):
            check(all(0 < h <= MAX_WIDTH for h in widths), key,
                  f"layer widths must be in [1, {MAX_WIDTH}], got {list(widths)}")
            check(len(widths) <= MAX_LAYERS, key, f"at most {MAX_LAYERS} hidden layers, got {len(widths)}")
        check(all(isinstance(n, str) and n for n in self.critic_privileged), "policy.critic_privileged",
              f"must be a list of term names, got {list(self.critic_privileged)}")
        check(-20.0 <= self.log_std_init <= 2.0, "policy.log_std_init",
              f"must be a number in [-20, 2] (a standard deviation of e^-20 to e^2), got {self.log_std_init}")
        if self.log_std_min is not None:
            check(-20.0 <= self.log_std_min <= self.log_std_init, "policy.log_std_min",
                  f"must be a number in [-20, policy.log_std_init = {self.log_std_init}] (a floor below the "
                  f"initial noise), or null for none; got {self.log_std_min}")


@dataclass(frozen=True)
class NormalizeConfig:
    """Running observation normalisation and return-based reward scaling (saved in checkpoints)."""

    observations: bool = True
    rewards: bool = True
    clip_observations: float = 10.0
    clip_rewards: float = 10.0

    def __post_init__(self) -> None:
        check(self.clip_observations > 0, "normalize.clip_observations", "must be > 0")
        check(self.clip_rewards > 0, "normalize.clip_rewards", "must be > 0")


@dataclass(frozen=True)
class EvalConfig:
    """Deterministic evaluation (the Gaussian mean), on its own environment and seeds."""

    episodes: int = 10
    every_steps: int = 0
    """Evaluate every this many environment steps; 0 = only at the end of training."""
    seed: int = 1_000_000
    """Seed of the evaluation environment; episode i uses seed + i."""
    keep_best: bool = True
    """With every_steps > 0: keep the checkpoint of the best periodic evaluation as checkpoints/best.pt
    (export it with `robot-rl export RUN_DIR --checkpoint best`)."""
    randomize: bool = False
    """Evaluate under the run's `randomize:` perturbations (drawn per episode from its seed) instead of
    the nominal model, so that keep_best keeps the checkpoint that is best across them: the robust one."""
    video: bool = False
    """Film the first episode of every evaluation (periodic and final) to videos/eval_step<STEP>.mp4 in
    the run directory (480x480, H.264; needs a renderer: see the README's system packages)."""

    def __post_init__(self) -> None:
        check(self.episodes >= 1, "eval.episodes", "must be >= 1")
        check(self.every_steps >= 0, "eval.every_steps", "must be >= 0")
        check(self.seed >= 0, "eval.seed", "must be >= 0 (Gymnasium and NumPy take no negative seeds)")
        check(self.seed <= MAX_SEED, "eval.seed", f"must be <= {MAX_SEED} (64 bits)")


@dataclass(frozen=True)
class LogConfig:
    tensorboard: bool = True
    progress_bar: bool = True
    checkpoint_every_steps: int = 50_000
    """Write a checkpoint after the first update past every multiple of this; 0 = only at the end."""
    keep_checkpoints: int = 3
    plot: bool = True
    """Write learning_curve.png at the end (needs matplotlib)."""

    def __post_init__(self) -> None:
        check(self.checkpoint_every_steps >= 0, "log.checkpoint_every_steps", "must be >= 0")
        check(self.keep_checkpoints >= 1, "log.keep_checkpoints", "must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Only the section of the chosen algorithm may be given."""

    task: str
    """A task id of robot_rl.sim, e.g. Hopper-v5 or dmc:cheetah-run."""
    algo: str
    """One of ALGORITHMS: ppo, trpo, reinforce, vpg."""
    seed: int = 1
    total_steps: int = 1_000_000
    """Environment steps, summed over the vector env's sub-environments."""
    num_envs: int = 1
    vectorization: Literal["sync", "async", "batched"] = "sync"
    """How the num_envs copies step: "sync" (Gymnasium envs in this process), "async" (one process
    each), "batched" (worlds of the MuJoCo engine on threads; the MuJoCo locomotion tasks only)."""
    env_threads: int | None = None
    """Threads stepping the batched engine's physics (default: the cores); batched only."""
    torch_threads: int = 1
    """Threads torch may use; small networks on 2 cores run fastest on one."""
    rollout_workers: int = 0
    """Collect each rollout on this many Ray actors (robot_rl/distributed/rollout.py), the num_envs
    environments split among them; 0 collects in the training process. On-policy algorithms only;
    needs the `distributed` extra."""
    ray_address: str | None = None
    """With rollout_workers: the Ray cluster to run them on (`auto`, `HOST:PORT`, `ray://HOST:PORT`);
    None starts a local Ray instance of rollout_workers CPUs."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    randomize: RandomizationConfig = field(default_factory=RandomizationConfig)
    """Domain randomization of the training envs (evaluation runs the nominal model unless
    eval.randomize)."""
    adr: ADRConfig = field(default_factory=ADRConfig)
    """Automatic domain randomization of the `randomize:` section's range terms (batched only; see
    sim/adr_randomizer.py): thresholds, window, boundary share, steps."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    algorithm: Any = None
    """The algorithm's own config (e.g. PPOConfig); written in a launch file under the algo's name."""

    def __post_init__(self) -> None:
        check_choice(self.algo, "algo", ALGORITHMS)
        check(self.seed >= 0, "seed", "must be >= 0 (Gymnasium and NumPy take no negative seeds)")
        check(self.total_steps >= 1, "total_steps", "must be >= 1")
        check(self.num_envs >= 1, "num_envs", "must be >= 1")
        check(1 <= self.torch_threads <= MAX_THREADS, "torch_threads", f"must be in [1, {MAX_THREADS}]")
        check(self.seed <= MAX_SEED, "seed", f"must be <= {MAX_SEED} (64 bits, what torch.manual_seed takes)")
        check(self.num_envs <= MAX_ENVS, "num_envs", f"must be <= {MAX_ENVS}")
        check(self.env_threads is None or self.env_threads >= 1, "env_threads", "must be >= 1")
        check(self.env_threads is None or self.env_threads <= MAX_THREADS, "env_threads",
              f"must be <= {MAX_THREADS}")
        check(self.env_threads is None or self.vectorization == "batched", "env_threads",
              f"sets the batched engine's threads, but vectorization is {self.vectorization!r}")
        check(not self.eval.randomize or self.randomize.active, "eval.randomize",
              "evaluates under the run's randomize: section, but it randomizes nothing; add one (e.g. "
              "randomize.actuation_delay) or set eval.randomize: false")
        if self.adr.enabled:
            _check_adr(self)
        _check_rollout_workers(self)
        if self.algorithm is None:
            object.__setattr__(self, "algorithm", algorithm_config_class(self.algo)())


def _check_adr(config: TrainConfig) -> None:
    """adr.enabled needs the batched engine and at least one range term to drive; steps name them."""
    from robot_rl.sim.adr import ADR
    from robot_rl.sim.adr_randomizer import GOAL_ANGLE_TASKS, RANGE_TERMS, adr_parameters

    check(config.vectorization == "batched", "adr.enabled",
          f"ADR drives the batched engine's per-world randomizer; set vectorization: batched "
          f"(it is {config.vectorization!r})")
    check(config.adr.goal_angle is None or config.task in GOAL_ANGLE_TASKS, "adr.goal_angle",
          f"task {config.task!r} has no goal curriculum; it is for: {', '.join(GOAL_ANGLE_TASKS)}")
    params = adr_parameters(config.randomize, config.adr)
    check(bool(params), "adr.enabled", f"ADR needs a randomize: range term whose bounds it grows toward "
          f"(give one of: {', '.join(RANGE_TERMS)}) or adr.goal_angle (a goal curriculum)")
    ADR(params, config.adr)  # adr.steps naming a parameter that is not randomized: named here
    from robot_rl.sim.registry import reports_successes

    check(config.adr.return_scale is not None or reports_successes(config.task), "adr.return_scale",
          f"task {config.task!r} counts no successes: set adr.return_scale (a return that counts as full "
          f"performance) so a boundary episode's performance is its return divided by it")


def _check_rollout_workers(config: TrainConfig) -> None:
    """rollout_workers: >= 0, at most one per environment, on-policy only, no ADR, no privileged critic;
    ray_address with it."""
    n = config.rollout_workers
    check(n >= 0, "rollout_workers", f"must be >= 0 (0 collects in the training process, N >= 1 on N Ray "
          f"actors), got {n}")
    if config.ray_address is not None:
        from robot_rl.distributed.cluster import split_address

        check(n > 0, "ray_address", "names the Ray cluster of the rollout workers, but rollout_workers is 0 "
              "(collection in this process); set rollout_workers: N or remove ray_address")
        if config.ray_address != "auto":
            try:
                split_address(config.ray_address)
            except ConfigError:
                raise ConfigError(f"ray_address: {config.ray_address!r} is not valid; give auto, HOST:PORT "
                                  f"or ray://HOST:PORT") from None
    if n == 0:
        return
    check(ALGORITHMS[config.algo][3] == ON_POLICY, "rollout_workers",
          f"distributed rollouts are for the on-policy algorithms "
          f"({', '.join(a for a, v in ALGORITHMS.items() if v[3] == ON_POLICY)}); "
          f"{config.algo} collects in its training process (set rollout_workers: 0)")
    check(n <= config.num_envs, "rollout_workers",
          f"each worker steps at least one of the num_envs environments: {n} workers need num_envs >= {n} "
          f"(it is {config.num_envs})")
    check(not config.adr.enabled, "rollout_workers",
          "ADR grows its ranges from the training envs' episodes in this process; use rollout_workers: 0 "
          "with adr.enabled")
    check(not config.policy.critic_privileged, "policy.critic_privileged",
          f"the privileged critic terms are collected in the training process only; remove "
          f"policy.critic_privileged or use rollout_workers: 0 (it is {n})")


def algorithm_config_class(algo: str) -> type[Any]:
    check_choice(algo, "algo", ALGORITHMS)
    _, config_name, _, _ = ALGORITHMS[algo]
    return getattr(importlib.import_module(CONFIGS), config_name)  # torch-free: validates anywhere


def agent_class(algo: str) -> type[Any]:
    check_choice(algo, "algo", ALGORITHMS)
    module, _, agent_name, _ = ALGORITHMS[algo]
    return getattr(importlib.import_module(module), agent_name)


def trainer_class(algo: str) -> type[Any]:
    check_choice(algo, "algo", ALGORITHMS)
    module, name = ALGORITHMS[algo][3].split(":")
    return getattr(importlib.import_module(module), name)


def parse_train_config(data: Any) -> TrainConfig:
    """Validate a launch file's mapping (overrides already applied) into a TrainConfig."""
    if not isinstance(data, dict):
        raise ConfigError("a launch file must be a mapping of keys to values")
    data = dict(data)
    data.pop("kind", None)
    algo = data.get("algo")
    if algo is None:
        raise ConfigError(f"missing key 'algo'; choose one of: {', '.join(ALGORITHMS)}")
    check_choice(algo, "algo", ALGORITHMS)
    if "task" not in data:
        raise ConfigError("missing key 'task' (a task id such as Hopper-v5; see `robot-rl tasks`)")
    others = [name for name in ALGORITHMS if name != algo and name in data]
    if others:
        raise ConfigError(f"section {others[0]!r} given, but algo is {algo!r}; "
                          f"use a section named {algo!r} for its hyperparameters")
    section = data.pop(algo, None)
    valid = sorted({f.name for f in dataclasses.fields(TrainConfig)} - {"algorithm"} | {"kind", algo})
    unknown = [k for k in data if k not in valid]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; valid keys: {', '.join(valid)}")
    config = from_dict(TrainConfig, data)
    algorithm = from_dict(algorithm_config_class(algo), section, algo)
    _check_task(config.task)
    check_randomization(config.task, config.randomize)  # a term the task cannot take, named, now
    return dataclasses.replace(config, algorithm=algorithm)


def read_train_launch_file(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """`config.read_launch_file` for a training file: a task declared in it (a `task:` mapping, sim/declared)
    becomes the id `declared:<this file>`, so a run, its subprocesses and its export rebuild the same task."""
    data = read_launch_file(path)
    if isinstance(data.get("task"), dict):
        if any(str(o).startswith("task.") for o in overrides):
            raise ConfigError(f"{path}: --set task.* is not supported for a task declared in the file; "
                              f"edit the file's task: mapping")
        data["task"] = "declared:" + str(Path(path).resolve())
    return apply_overrides(data, overrides)


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    data = read_train_launch_file(path, overrides)
    try:
        return parse_train_config(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved config a run directory was trained with (its config.yaml)."""
    config_file = Path(run_dir) / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        return parse_train_config(strict_yaml.read(config_file))
    except ConfigError as err:
        if str(err).startswith(str(config_file)):
            raise
        raise ConfigError(f"{config_file}: {err}") from None


def config_to_yaml_dict(config: TrainConfig) -> dict[str, Any]:
    """The resolved config as a launch-file mapping (the algorithm section under its name)."""
    data = to_dict(config)
    data[config.algo] = data.pop("algorithm")
    return data


def _check_task(task: str) -> None:
    from robot_rl.sim import task_names

    if isinstance(task, str) and task.startswith("declared:"):
        from robot_rl.sim.registry import engine_task

        engine_task(task)  # builds it: a wrong term, joint or model is named now, before training
        return

    names = task_names()
    if task not in names:
        raise ConfigError(f"task: unknown task {task!r}; valid tasks: {', '.join(names)}")
