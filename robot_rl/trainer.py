"""The on-policy training loop: collect a rollout, update the agent, log, checkpoint, evaluate.

The run directory holds everything a user needs to watch, resume and export a run:
  config.yaml          the resolved launch file (every default filled in)
  progress.csv         one row per update (steps, SPS, returns, losses)
  events.out.tfevents  TensorBoard
  checkpoints/         atomic checkpoints (agent, optimisers, normalisers, RNG state, step); best.pt
                       is the state of the best periodic evaluation (eval.keep_best)
  eval.json            the final deterministic evaluation
  learning_curve.png   return against steps
A killed run resumes from its newest readable checkpoint with the same step count, optimiser and
normaliser state. A non-finite loss or parameter stops training with an error that names the step;
the last good checkpoint is never overwritten by a diverged state.

Asymmetric actor-critic (`policy.critic_privileged`): the critic's input is the normalised observation
followed by the task's privileged terms (the engine's `info["privileged"]`, normalised by their own
running statistics, saved in checkpoints); the actor's is the observation alone, so evaluation, export
and a bundle are unchanged. At a truncation the bootstrap value reads the ended episode's real final
privileged terms (`info["final_privileged"]`), as it reads its final observation.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from robot_rl.acting import NumpyActing
from robot_rl.adr_training import adr_columns, adr_feedback, attach_adr, plot_adr
from robot_rl.agents.base import OnPolicyAgent
from robot_rl.checkpoint import (
    atomic_write_text,
    from_checkpoint_state,
    load_run_checkpoint,
    to_checkpoint_state,
)
from robot_rl.errors import ConfigError, RobotRLError
from robot_rl.launch import TrainConfig, agent_class, config_to_yaml_dict, read_run_config, trainer_class
from robot_rl.networks import GaussianActor
from robot_rl.normalization import ObservationNormalizer, RewardScaler
from robot_rl.rollout import RolloutBuffer
from robot_rl.run_base import TrainerBase, check_memory, load_error_summary
from robot_rl.run_dir import make_run_dir
from robot_rl.run_log import RunLog


class Trainer(TrainerBase):
    rollout_pool: Any = None
    """With rollout_workers, while training: the RolloutPool (its actors' pids, what it is collecting)."""

    def __init__(self, config: TrainConfig, run_dir: str | Path) -> None:
        from robot_rl.sim import get_spec, make
        from robot_rl.sim.registry import reports_successes

        self.config = config
        self.run_dir = Path(run_dir)
        torch.set_num_threads(config.torch_threads)
        torch.manual_seed(config.seed)
        self.spec = get_spec(config.task)
        if self.spec.action.is_discrete:
            raise ConfigError(f"algo: {config.algo!r} trains Gaussian policies for continuous actions, but "
                              f"task {config.task!r} has {self.spec.action.num_actions} discrete actions; "
                              f"use algo: dqn")
        critic_dim = critic_obs_dim(config, self.spec.obs_dim)
        self.privileged_dim = 0 if critic_dim is None else critic_dim - self.spec.obs_dim
        """Width of the critic's privileged terms (0: a symmetric actor-critic)."""
        # float32 obs, privileged terms, action and 8 scalars
        transition = 4 * (self.spec.obs_dim + self.privileged_dim + self.spec.act_dim + 8)
        check_memory(config.algorithm.num_steps * config.num_envs * transition, f"{config.algo}.num_steps",
                     "rollout buffer (num_steps × num_envs transitions)")
        self.envs: Any = make(config.task, num_envs=config.num_envs, seed=config.seed,
                              vectorization=config.vectorization, randomize=config.randomize,
                              threads=config.env_threads, privileged=tuple(config.policy.critic_privileged)) \
            if config.rollout_workers == 0 else None
        """The training envs; None with rollout_workers (the Ray actors hold them)."""
        make_run_dir(self.run_dir)
        self.obs_dim, self.act_dim = self.spec.obs_dim, self.spec.act_dim
        algo_cfg = config.algorithm
        steps_per_update = algo_cfg.num_steps * config.num_envs
        self.total_updates = math.ceil(config.total_steps / steps_per_update)
        self.agent: OnPolicyAgent = make_agent(config, self.obs_dim, self.act_dim, self.total_updates)
        self.agent.seed(config.seed)
        norm = config.normalize
        self.obs_normalizer = ObservationNormalizer((self.obs_dim,), clip=norm.clip_observations) \
            if norm.observations else None
        gamma = float(getattr(algo_cfg, "gamma", 0.99))
        self.reward_scaler = RewardScaler(config.num_envs, gamma=gamma, clip=norm.clip_rewards) \
            if norm.rewards else None
        self.privileged_normalizer = None
        """Running statistics of the privileged terms (asymmetric, with normalize.observations)."""
        if self.privileged_dim and norm.observations:
            self.privileged_normalizer = ObservationNormalizer((self.privileged_dim,),
                                                               clip=norm.clip_observations)
        self._privileged_raw: np.ndarray | None = None
        """The current step's privileged terms `(num_envs, privileged_dim)`, raw (asymmetric only)."""
        self.buffer = RolloutBuffer(algo_cfg.num_steps, config.num_envs, self.obs_dim, self.act_dim,
                                    privileged_dim=self.privileged_dim)
        self.acting = NumpyActing(self.agent, seed=config.seed)
        self.step = 0
        self.episodes = 0
        self.episode_returns: deque[float] = deque(maxlen=20)
        self.episode_lengths: deque[int] = deque(maxlen=20)
        self.episode_successes: deque[int] = deque(maxlen=100)
        """Goals reached in each of the last ended episodes, for tasks that count them (the cube)."""
        self.counts_successes = reports_successes(config.task)
        self.adr = attach_adr(self.envs, config)
        """The run's ADR (ranges, buffers), or None without `adr.enabled`."""

    # ------------------------------------------------------------------ the loop
    def _train(self) -> dict[str, Any]:
        cfg = self.config
        workers = self._start_rollout_workers()  # None: collect in this process
        resolved = yaml.safe_dump(config_to_yaml_dict(cfg), sort_keys=False)
        atomic_write_text(self.run_dir / "config.yaml", resolved)
        obs_raw: Any = None
        if workers is None:
            obs_raw, reset_info = self.envs.reset(seed=cfg.seed + 7919 * self.agent.updates_done)
            self._privileged_raw = reset_info.get("privileged")
        running_return = np.zeros(cfg.num_envs)
        running_length = np.zeros(cfg.num_envs, dtype=np.int64)
        log = RunLog(self.run_dir, cfg.log, cfg.total_steps, f"{cfg.task} {cfg.algo}", self.step)
        start, start_step = time.perf_counter(), self.step
        next_checkpoint = self._next_multiple(cfg.log.checkpoint_every_steps)
        next_eval = self._next_multiple(cfg.eval.every_steps)
        try:
            while self.step < cfg.total_steps:
                if workers is None:
                    obs_raw, running_return, running_length = self._collect(obs_raw, running_return,
                                                                            running_length)
                    buffer = self.buffer
                    privileged = self._normalize_privileged(self._privileged_raw, update=False)
                    last_in = self._value_input(self._normalize(obs_raw, update=False), privileged)
                    last_values = torch.as_tensor(self.acting.value(last_in))
                else:  # the same collection on the Ray actors, gathered into a buffer here
                    buffer, last_values = workers.collect(self)
                metrics = self.agent.update(buffer, last_values)
                self._check_finite(metrics)
                self.acting.refresh()
                row = self._progress_row(metrics, start, start_step)
                if workers is not None:
                    row.update(workers.columns())
                if next_eval and self.step >= next_eval:
                    row["eval_return"] = self.periodic_evaluation()
                    next_eval = self._next_multiple(cfg.eval.every_steps)
                log.log(row)
                if next_checkpoint and self.step >= next_checkpoint:
                    self.save_checkpoint()
                    next_checkpoint = self._next_multiple(cfg.log.checkpoint_every_steps)
                self.stop_point()  # a signal's request_stop: final checkpoint, TrainingStopped
        finally:
            log.close()
            if workers is not None:
                workers.close()
                self.rollout_pool = None
            if self.envs is not None:
                self.envs.close()
        result = self._finish(log, start)
        if self.adr is not None and cfg.log.plot:
            plot_adr(self.run_dir)
        return result

    def _start_rollout_workers(self) -> Any:
        """With rollout_workers: the started RolloutPool (Ray actors that run `_collect`); else None."""
        if self.config.rollout_workers == 0:
            return None
        from robot_rl.distributed.rollout import RolloutPool

        self.rollout_pool = RolloutPool.start(self)
        return self.rollout_pool

    def _collect(self, obs_raw: np.ndarray, running_return: np.ndarray, running_length: np.ndarray):
        """Fill the buffer with `num_steps` vector steps; returns the state to continue from.

        Rollout workers run this same function on their share of the envs (distributed/rollout.py's
        RolloutWorker, which holds the attributes it reads): a change here changes both."""
        buf, acting = self.buffer, self.acting
        buf.reset()
        for _ in range(buf.num_steps):
            obs = self._normalize(obs_raw, update=True)
            privileged = self._normalize_privileged(self._privileged_raw, update=True)  # None: symmetric
            actions, log_probs, values = acting.act(obs, self._value_input(obs, privileged))
            # the env maps the normalised action onto robot units (and clips) through the task spec
            next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
            done = terminated | truncated
            truncated_only = truncated & ~terminated
            bootstrap = None
            if truncated_only.any():  # bootstrap from the value of the real final observation
                idx = np.flatnonzero(truncated_only)
                bootstrap = np.zeros(self.config.num_envs, dtype=np.float32)
                final = np.stack([info["final_obs"][i] for i in idx])
                final_privileged = None if privileged is None else self._normalize_privileged(
                    np.stack([info["final_privileged"][i] for i in idx]), update=False)
                bootstrap[idx] = acting.value(self._value_input(self._normalize(final, update=False),
                                                                final_privileged))
            scaled = self.reward_scaler.step(rewards, done) if self.reward_scaler else rewards
            buf.add(obs, actions, log_probs, scaled, values, terminated, truncated_only, bootstrap,
                    privileged=privileged)
            if self.adr is not None:  # before the running returns of ended episodes are cleared
                adr_feedback(self.adr, self.config.adr, info, running_return + rewards)
            self._count_episodes(rewards, done, running_return, running_length)
            self._count_successes(info)
            obs_raw = next_obs
            self._privileged_raw = info.get("privileged")
        self.step += buf.num_steps * self.config.num_envs
        return obs_raw, running_return, running_length

    def _count_successes(self, info: dict[str, Any]) -> None:
        """Record the `successes` the ended episodes report in `final_info` (hold-and-advance tasks)."""
        final = info.get("final_info") or {}
        if "successes" in final:
            for i in np.flatnonzero(final["_successes"]):
                self.episode_successes.append(int(final["successes"][i]))

    def _normalize(self, obs_raw: np.ndarray, update: bool) -> np.ndarray:
        """Raw observations → the policy's input, float32 (updating the running statistics if asked)."""
        if self.obs_normalizer is None:
            return np.asarray(obs_raw, dtype=np.float32)
        if update:
            self.obs_normalizer.update(obs_raw)
        return self.obs_normalizer.normalize(obs_raw).astype(np.float32)

    def _normalize_privileged(self, raw: np.ndarray | None, update: bool) -> np.ndarray | None:
        """The critic's privileged terms, normalised as the observation is, float32; None if symmetric."""
        if not self.privileged_dim:
            return None
        if raw is None:
            raise RobotRLError(f"{self.config.task}: the environment did not hand out the critic's "
                               f"privileged terms (info['privileged'])")
        if self.privileged_normalizer is None:
            return np.asarray(raw, dtype=np.float32)
        if update:
            self.privileged_normalizer.update(raw)
        return self.privileged_normalizer.normalize(raw).astype(np.float32)

    @staticmethod
    def _value_input(obs: np.ndarray, privileged: np.ndarray | None) -> np.ndarray:
        """The critic's input: the normalised observation, then the privileged terms where there are."""
        return obs if privileged is None else np.concatenate((obs, privileged), axis=1)

    # ------------------------------------------------------------------ evaluation, logging, saving
    def policy_fn(self):
        """The deterministic policy on raw observations, as a deployment runs it."""
        return make_policy_fn(self.agent, self.obs_normalizer)

    @staticmethod
    def policy_from_checkpoint(config: TrainConfig, state: dict[str, Any]):
        """The deterministic policy (raw observation → normalised action) saved in `state`."""
        from robot_rl.sim import get_spec

        spec = get_spec(config.task)
        agent = make_agent(config, spec.obs_dim, spec.act_dim, 1)
        agent.load_state_dict(state["agent"])
        normalizer = None
        if state.get("obs_normalizer") is not None:
            normalizer = ObservationNormalizer((spec.obs_dim,), clip=config.normalize.clip_observations)
            normalizer.load_state_dict(from_checkpoint_state(state["obs_normalizer"]))
        return make_policy_fn(agent, normalizer)

    @staticmethod
    def bundle_network(config: TrainConfig, state: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
        """(kind, exported layers, head) of a policy bundle: the Gaussian actor's mean network.

        `robot-rl export` calls this; the bundle acts as `policy_from_checkpoint` does.
        """
        from robot_rl.sim import get_spec

        spec = get_spec(config.task)
        p = config.policy
        actor = GaussianActor(spec.obs_dim, spec.act_dim, hidden=p.hidden, activation=p.activation,
                              log_std_init=p.log_std_init, squash=p.squash, log_std_min=p.log_std_min)
        actor.load_state_dict(state["agent"]["actor"])
        head = {"squash": "tanh" if actor.squash else "none",
                "log_std": actor.noise_log_std().detach().double().numpy().tolist()}
        return "gaussian", actor.export_layers(), head

    def _progress_row(self, metrics: dict[str, float], start: float, start_step: int) -> dict[str, Any]:
        row = self._base_row(start, start_step)
        row.update(metrics)
        if self.counts_successes:  # over the last 100 ended episodes; NaN columns until one ends
            counts = np.asarray(self.episode_successes, dtype=np.float64)
            rate, row_mean = (np.mean(counts >= 1), np.mean(counts)) if counts.size else (np.nan, np.nan)
            row.update(success_rate=float(rate), consecutive_successes=float(row_mean))
        if self.adr is not None:
            row.update(adr_columns(self.adr))
        return row

    def state(self) -> dict[str, Any]:
        state = super().state()
        if self.privileged_normalizer is not None:
            state["privileged_normalizer"] = to_checkpoint_state(self.privileged_normalizer.state_dict())
        if self.adr is not None:  # a resumed run goes on from the same ranges
            state["adr"] = self.adr.state_dict()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        if self.privileged_normalizer is not None:
            self.privileged_normalizer.load_state_dict(from_checkpoint_state(state["privileged_normalizer"]))
        if self.adr is not None and state.get("adr") is not None:
            self.adr.load_state_dict(state["adr"])


def critic_obs_dim(config: TrainConfig, obs_dim: int) -> int | None:
    """The critic's input width under `policy.critic_privileged` (observation + privileged terms), or
    None for a symmetric actor-critic; a ConfigError for an algorithm, vectorization or term that
    cannot take it (naming the valid choices)."""
    names = tuple(config.policy.critic_privileged)
    if not names:
        return None
    if config.algo not in ASYMMETRIC_ALGOS:
        raise ConfigError(f"policy.critic_privileged: algo {config.algo!r} has no critic that could see "
                          f"them; use one of: {', '.join(ASYMMETRIC_ALGOS)}")
    if config.vectorization != "batched":
        raise ConfigError(f"policy.critic_privileged: privileged critic terms come from the MuJoCo engine's "
                          f"worlds; use vectorization: batched (not {config.vectorization!r})")
    from robot_rl.sim.registry import privileged_dim

    return obs_dim + privileged_dim(config.task, names)


ASYMMETRIC_ALGOS = ("ppo", "trpo")
"""The algorithms whose critic may see privileged terms (a learned value function trained on rollouts)."""


def make_agent(config: TrainConfig, obs_dim: int, act_dim: int, total_updates: int) -> OnPolicyAgent:
    """The run's agent; its critic reads the observation and the privileged terms where the config asks."""
    critic_dim = critic_obs_dim(config, obs_dim)
    extra = {} if critic_dim is None else {"critic_obs_dim": critic_dim}  # REINFORCE/VPG take none
    return agent_class(config.algo)(obs_dim, act_dim, config.policy, config.algorithm, total_updates, **extra)


def load_run_policy(run_dir: str | Path, checkpoint: str = "latest"
                    ) -> tuple[TrainConfig, Any, dict[str, Any]]:
    """(config, deterministic policy on raw observations, checkpoint state) of a run's checkpoint:
    `latest`, `best` or a checkpoint file (see `load_run_checkpoint`).

    Works for every algorithm: the run's trainer class rebuilds its policy from the checkpoint.
    """
    config = read_run_config(run_dir)
    state, path = load_run_checkpoint(run_dir, checkpoint)
    try:
        policy = trainer_class(config.algo).policy_from_checkpoint(config, state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
        raise RobotRLError(f"checkpoint {path} does not fit the run {run_dir} ({config.algo} on "
                           f"{config.task}, policy.hidden {list(config.policy.hidden)}): "
                           f"{load_error_summary(err)}; it was saved by another network") from None
    return config, policy, state


def make_policy_fn(agent: OnPolicyAgent, normalizer: ObservationNormalizer | None):
    """raw observation (obs_dim,) -> deterministic normalised action (act_dim,)."""

    def policy(obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float64)[None]
        if normalizer is not None:
            x = normalizer.normalize(x)
        return agent.act_deterministic(torch.as_tensor(x, dtype=torch.float32))[0].numpy()

    return policy
