"""The off-policy training loop of DQN: act ε-greedily, store transitions, replay them, log, save.

It offers the on-policy `Trainer`'s interface (`__init__(config, run_dir)`, `resume`, `train`,
`policy_from_checkpoint`) and writes the same run directory (config.yaml, progress.csv and
TensorBoard through `RunLog`, atomic checkpoints, eval.json, learning_curve.png), so `robot-rl train`,
`train --resume` and `eval` work unchanged. One iteration collects `train_freq` vector steps, then
takes `gradient_steps` gradient steps (once `learning_starts` environment steps have passed); target
updates follow the environment step count. Acting runs in numpy between updates.

Observations and rewards are stored raw; optional observation normalisation and reward scaling are
applied when a minibatch is drawn, with the current statistics (as SB3 does with VecNormalize), so
old transitions are never stale in the normaliser's units. A checkpoint holds the networks, the
optimiser, the replay buffer (unless `save_replay` is false), the normalisers and every RNG, so a
killed run resumes from it with the same step count.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from robot_rl.agents.dqn import DQN
from robot_rl.agents.exploration import EpsilonGreedy, beta_at, epsilon_at, greedy_policy
from robot_rl.checkpoint import (
    atomic_write_text,
    from_checkpoint_state,
    to_checkpoint_state,
)
from robot_rl.errors import ConfigError
from robot_rl.launch import TrainConfig, config_to_yaml_dict
from robot_rl.normalization import ObservationNormalizer, RewardScaler
from robot_rl.replay import Batch, PrioritizedReplayBuffer, ReplayBuffer
from robot_rl.run_base import TrainerBase, check_memory
from robot_rl.run_dir import make_run_dir
from robot_rl.run_log import RunLog


def check_discrete_task(config: TrainConfig) -> Any:
    """The task's spec; a ConfigError naming the task unless its actions are discrete."""
    from robot_rl.sim import get_spec
    from robot_rl.sim.registry import discrete_task_names

    spec = get_spec(config.task)
    if not spec.action.is_discrete:
        discrete = discrete_task_names()
        raise ConfigError(f"task: {config.task!r} has a continuous ({spec.action.kind}) action space; "
                          f"algo {config.algo} needs discrete actions; discrete tasks: {', '.join(discrete)}")
    if config.algorithm.network == "nature_cnn" and config.normalize.observations:
        raise ConfigError("normalize.observations: must be false with dqn.network nature_cnn "
                          "(pixels are scaled by 1/255 in the network)")
    return spec


class DQNTrainer(TrainerBase):
    def __init__(self, config: TrainConfig, run_dir: str | Path) -> None:
        from robot_rl.sim import make

        self.spec = check_discrete_task(config)
        self.config = config
        cfg = config.algorithm
        item = 1 if cfg.network == "nature_cnn" else 4
        check_memory(cfg.buffer_size * (2 * self.spec.obs_dim * item + 14), "dqn.buffer_size",
                     "replay buffer")
        self.run_dir = Path(run_dir)
        torch.set_num_threads(config.torch_threads)
        torch.manual_seed(config.seed)
        self.envs = make(config.task, num_envs=config.num_envs, seed=config.seed,
                         vectorization=config.vectorization, randomize=config.randomize,
                         threads=config.env_threads)
        make_run_dir(self.run_dir)  # only once the envs exist: a bad one leaves no run
        self.obs_dim, self.num_actions = self.spec.obs_dim, self.spec.action.num_actions
        self.agent = DQN(self.obs_dim, self.num_actions, config.policy, cfg)
        obs_dtype = np.uint8 if cfg.network == "nature_cnn" else np.float32
        if cfg.prioritized:
            self.replay: ReplayBuffer = PrioritizedReplayBuffer(
                cfg.buffer_size, (self.obs_dim,), obs_dtype, seed=config.seed, alpha=cfg.priority_alpha,
                eps=cfg.priority_eps)
        else:
            self.replay = ReplayBuffer(cfg.buffer_size, (self.obs_dim,), obs_dtype, seed=config.seed)
        norm = config.normalize
        self.obs_normalizer = ObservationNormalizer((self.obs_dim,), clip=norm.clip_observations) \
            if norm.observations else None
        self.reward_scaler = RewardScaler(config.num_envs, gamma=cfg.gamma, clip=norm.clip_rewards) \
            if norm.rewards else None
        self.acting = EpsilonGreedy(self.agent, seed=config.seed)
        self.step = 0
        self.episodes = 0
        self.episode_returns: deque[float] = deque(maxlen=20)
        self.episode_lengths: deque[int] = deque(maxlen=20)
        self.metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        replay = None
        if self.config.algorithm.save_replay:
            replay = to_checkpoint_state(self.replay.state_dict())
        return {**super().state(), "replay": replay}

    def best_state(self) -> dict[str, Any]:
        return {**TrainerBase.state(self), "replay": None}  # the replay buffer (GBs for Atari) stays out

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        if state.get("replay") is not None:
            self.replay.load_state_dict(from_checkpoint_state(state["replay"]))

    # ------------------------------------------------------------------ the loop
    def _train(self, callback: Callable[[DQNTrainer], bool] | None = None) -> dict[str, Any]:
        """Train to `total_steps`; `callback(trainer)` after every iteration may stop early (True)."""
        cfg = self.config
        resolved = yaml.safe_dump(config_to_yaml_dict(cfg), sort_keys=False)
        atomic_write_text(self.run_dir / "config.yaml", resolved)
        obs_raw, _ = self.envs.reset(seed=cfg.seed + 7919 * (self.step // cfg.num_envs))
        running = (np.zeros(cfg.num_envs), np.zeros(cfg.num_envs, dtype=np.int64))
        log = RunLog(self.run_dir, cfg.log, cfg.total_steps, f"{cfg.task} {cfg.algo}", self.step)
        start, start_step = time.perf_counter(), self.step
        next_log = self._next_multiple(cfg.algorithm.log_every_steps)
        next_checkpoint = self._next_multiple(cfg.log.checkpoint_every_steps)
        next_eval = self._next_multiple(cfg.eval.every_steps)
        try:
            while self.step < cfg.total_steps:
                obs_raw, running = self._collect(obs_raw, running)
                self._train_phase()
                evaluated = next_eval and self.step >= next_eval
                if evaluated or self.step >= next_log or self.step >= cfg.total_steps:
                    row = self._progress_row(start, start_step)
                    if evaluated:
                        row["eval_return"] = self.periodic_evaluation()
                        next_eval = self._next_multiple(cfg.eval.every_steps)
                    log.log(row)
                    next_log = self._next_multiple(cfg.algorithm.log_every_steps)
                if next_checkpoint and self.step >= next_checkpoint:
                    self.save_checkpoint()
                    next_checkpoint = self._next_multiple(cfg.log.checkpoint_every_steps)
                self.stop_point()  # a signal's request_stop: final checkpoint, TrainingStopped
                if callback is not None and callback(self):
                    break
        finally:
            log.close()
            self.envs.close()
        return self._finish(log, start)

    def _collect(self, obs_raw: np.ndarray, running: tuple[np.ndarray, np.ndarray]
                 ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """`train_freq` ε-greedy vector steps into the replay buffer; the state to continue from."""
        cfg, algo = self.config, self.config.algorithm
        running_return, running_length = running
        start_step = self.step
        for _ in range(algo.train_freq):
            if self.obs_normalizer is not None:
                self.obs_normalizer.update(obs_raw)
            if self.step < algo.learning_starts:
                actions = self.acting.rng.integers(0, self.num_actions, size=cfg.num_envs)
            else:
                epsilon = epsilon_at(self.step, algo, cfg.total_steps)
                actions = self.acting.act(self._normalize(obs_raw), epsilon)
            next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
            done = terminated | truncated
            real_next = next_obs
            if done.any():  # SAME_STEP autoreset: the real last observation is in final_obs
                real_next = next_obs.copy()
                for i in np.flatnonzero(done):
                    real_next[i] = info["final_obs"][i]
            self.replay.add(obs_raw, actions, rewards, real_next, terminated, truncated)
            if self.reward_scaler is not None:
                self.reward_scaler.step(rewards, done)
            self._count_episodes(rewards, done, running_return, running_length)
            obs_raw = next_obs
            self.step += cfg.num_envs
            if self.step >= cfg.total_steps:
                break
        interval = algo.target_update_interval
        self.agent.update_target(self.step // interval - start_step // interval)
        return obs_raw, (running_return, running_length)

    def _train_phase(self) -> None:
        algo = self.config.algorithm
        if self.step < algo.learning_starts or len(self.replay) < algo.batch_size:
            return
        steps = algo.gradient_steps if algo.gradient_steps > 0 else algo.train_freq * self.config.num_envs
        feedback = None
        if isinstance(self.replay, PrioritizedReplayBuffer):
            feedback = self.replay.update_priorities
        self.metrics = self.agent.update(self._sample, steps, feedback)
        self._check_finite(self.metrics, unit="gradient step")
        self.acting.refresh()

    def _sample(self, n: int) -> Batch:
        """n transitions ready for the update: observations normalised, rewards scaled (if configured)."""
        algo = self.config.algorithm
        if isinstance(self.replay, PrioritizedReplayBuffer):
            batch = self.replay.sample(n, beta_at(self.step, algo, self.config.total_steps))
        else:
            batch = self.replay.sample(n)
        if self.obs_normalizer is not None:
            batch.obs = self.obs_normalizer.normalize(batch.obs)
            batch.next_obs = self.obs_normalizer.normalize(batch.next_obs)
        if self.reward_scaler is not None:
            batch.rewards = self.reward_scaler.scale(batch.rewards)
        return batch

    def _normalize(self, obs_raw: np.ndarray) -> np.ndarray:
        """Raw observations → the network's input (float32 for an MLP; pixels stay as they are)."""
        if self.obs_normalizer is not None:
            return self.obs_normalizer.normalize(obs_raw)
        if self.config.algorithm.network == "nature_cnn":
            return np.asarray(obs_raw, dtype=np.uint8)
        return np.asarray(obs_raw, dtype=np.float32)

    # ------------------------------------------------------------------ evaluation, logging, saving
    def policy_fn(self) -> Callable[[np.ndarray], np.ndarray]:
        """The greedy policy on raw observations, as a deployment runs it (index, 0-d int64)."""
        return greedy_policy(self.acting.q, self._normalize)

    @staticmethod
    def policy_from_checkpoint(config: TrainConfig, state: dict[str, Any]
                               ) -> Callable[[np.ndarray], np.ndarray]:
        """The greedy policy (raw observation → action index) saved in `state`."""
        from robot_rl.sim import get_spec

        spec = get_spec(config.task)
        agent = DQN(spec.obs_dim, spec.action.num_actions, config.policy, config.algorithm)
        agent.q_net.load_state_dict(state["agent"]["q_net"])
        acting = EpsilonGreedy(agent, seed=0)
        normalizer = None
        if state.get("obs_normalizer") is not None:
            normalizer = ObservationNormalizer((spec.obs_dim,), clip=config.normalize.clip_observations)
            normalizer.load_state_dict(from_checkpoint_state(state["obs_normalizer"]))
        pixels = config.algorithm.network == "nature_cnn"

        def prepare(obs: np.ndarray) -> np.ndarray:
            if normalizer is not None:
                return normalizer.normalize(obs)
            return np.asarray(obs, dtype=np.uint8 if pixels else np.float32)

        return greedy_policy(acting.q, prepare)

    @staticmethod
    def bundle_network(config: TrainConfig, state: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
        """(kind, exported layers, head) of a policy bundle: the Q-network with an argmax head.

        `robot-rl export` calls this; the bundle acts as `policy_from_checkpoint` does.
        """
        from robot_rl.policies.bundle import BundleError
        from robot_rl.sim import get_spec

        if config.algorithm.network != "mlp":
            raise BundleError(f"a {config.algorithm.network} Q-network does not export: bundles hold MLPs")
        spec = get_spec(config.task)
        agent = DQN(spec.obs_dim, spec.action.num_actions, config.policy, config.algorithm)
        agent.q_net.load_state_dict(state["agent"]["q_net"])
        head = {"num_actions": spec.action.num_actions, "actions": None}  # act() returns the index
        return "argmax", agent.export_layers(), head

    def _progress_row(self, start: float, start_step: int) -> dict[str, Any]:
        algo = self.config.algorithm
        row = self._base_row(start, start_step)
        row.update(epsilon=epsilon_at(self.step, algo, self.config.total_steps), buffer_size=len(self.replay))
        if algo.prioritized:
            row["beta"] = beta_at(self.step, algo, self.config.total_steps)
        row.update(self.metrics)
        return row
