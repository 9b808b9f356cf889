"""Distributed rollouts (`rollout_workers: N`): N Ray actors collect each on-policy rollout, the learner
updates.

Each actor (`RolloutWorker`) holds a slice of the run's `num_envs` environments (the batched engine
where the task has one, the launch file's vectorization otherwise; envs `first .. first + n - 1` seeded
as a local run seeds them) and a numpy copy of the policy. Per update the learner broadcasts the
weights once (`ray.put`) with the normaliser statistics, every worker runs the trainer's own
collection step (`Trainer._collect`, the same code as a local run, not a copy) for `num_steps` steps,
and the learner writes the workers' columns into its ordinary `RolloutBuffer` and updates. The batch
is the local run's, `(num_steps, num_envs)`; only the action noise streams and the episode order differ.

Normaliser statistics. The learner owns the running observation mean/var (and the reward scaler's
running return variance and per-env discounted returns). At the start of an iteration each worker
receives them and, step by step, merges its own observations into its copy, exactly as a local run
merges all envs' observations (so a worker normalises with "start + its own data so far"). It also
keeps the moments of its new data alone and sends them back; the learner merges every worker's new
moments into its statistics with Chan et al.'s parallel formula, which is exact: after each iteration
the learner's mean/var/count equal those of a local run that saw the same observations, in any order.

A worker that dies (its process killed, its node lost) loses what it had collected in that iteration;
the iteration completes with the other workers' columns (a narrower buffer, logged), the dead worker's
envs restart from a reset, and a new actor replaces it at once. Each death is printed (worker, pid,
update, samples lost, the replacement's pid) and counted in progress.csv (`worker_restarts`,
`lost_samples`), so nothing is lost silently. A slot whose worker dies `MAX_CONSECUTIVE_DEATHS` times
in a row, an error raised inside a worker, or an actor the cluster cannot place within
`START_TIMEOUT_S` stops the run with an error (its checkpoints stay; `--resume` goes on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch

from robot_rl.acting import NumpyActing, PolicyWeights, policy_weights
from robot_rl.errors import RobotRLError
from robot_rl.normalization import ObservationNormalizer, RewardScaler, RunningMeanStd
from robot_rl.rollout import _STORED as STORED_FIELDS  # the buffer's per-step fields: a new one travels too
from robot_rl.rollout import RolloutBuffer
from robot_rl.run_base import TrainerBase
from robot_rl.trainer import Trainer

MAX_CONSECUTIVE_DEATHS = 3
"""A worker slot whose actor dies this many iterations in a row stops the run (a crash loop, not bad luck)."""
START_TIMEOUT_S = 180.0
"""An actor not running this long after it was asked for stops the run with an error instead of waiting
forever: a cluster without a free CPU for it (each takes one) never places it."""


class TrackedMoments(RunningMeanStd):
    """Running statistics that also keep the moments of what was merged since `restart` (`new`)."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        super().__init__(shape)
        self.new = RunningMeanStd(shape)

    def update_from_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, batch_count: float) -> None:
        super().update_from_moments(batch_mean, batch_var, batch_count)
        self.new.update_from_moments(batch_mean, batch_var, batch_count)

    def restart(self, state: dict[str, Any]) -> None:
        """Take the learner's statistics; forget the new moments."""
        self.load_state_dict(state)
        self.new = RunningMeanStd(self.shape)


class Moments(NamedTuple):
    """Mean, population variance and number of samples (the arguments of `update_from_moments`)."""

    mean: np.ndarray
    var: np.ndarray
    size: float


class WorkerRollout(NamedTuple):
    """What a worker sends back for one iteration: its columns of the buffer and what it saw."""

    columns: dict[str, np.ndarray]
    """Each of the buffer's per-step fields, `(num_steps, n, ...)`."""
    last_values: np.ndarray  # (n,): V(observation after the last step)
    obs_moments: Moments | None
    reward_moments: Moments | None
    reward_returns: np.ndarray | None  # (n,): the reward scaler's running discounted returns
    episode_returns: list[float]
    episode_lengths: list[int]
    episode_successes: list[int]
    collect_s: float
    """Seconds the worker spent collecting (inside the actor)."""


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """What a worker is built from (also what rebuilds it after a death)."""

    config: Any
    """The run's TrainConfig with num_envs = this worker's share."""
    index: int
    first_env: int
    """Index of its first environment among the run's num_envs."""
    reset_seed: int
    """Environment i of the run resets with reset_seed + i, as a local run's vector env."""
    generation: int
    """0 for the first actor of the slot, k for its k-th replacement (a fresh action-noise stream)."""


class RolloutWorker:
    """A Ray actor's state: a slice of the environments, a numpy policy and copies of the normalisers.

    The collection methods are the trainer's own functions, so a distributed step is a local step.
    """

    # the trainer's functions, called on a worker (Any: mypy checks them against the Trainer's self type)
    _collect: Any = Trainer._collect
    _normalize: Any = Trainer._normalize
    _count_episodes: Any = TrainerBase._count_episodes
    _count_successes: Any = Trainer._count_successes
    _normalize_privileged: Any = Trainer._normalize_privileged
    _value_input: Any = staticmethod(Trainer._value_input)
    privileged_dim = 0
    """A symmetric critic: launch validation refuses policy.critic_privileged with rollout_workers."""
    _privileged_raw = None

    def __init__(self, setup: WorkerSetup) -> None:
        from robot_rl.sim import get_spec, make
        from robot_rl.sim.registry import is_engine_task

        torch.set_num_threads(1)
        cfg = setup.config
        self.config, self.setup, self.adr = cfg, setup, None
        spec = get_spec(cfg.task)
        vectorization = "batched" if is_engine_task(cfg.task) else cfg.vectorization
        threads = (cfg.env_threads or 1) if vectorization == "batched" else None
        self.envs = make(cfg.task, num_envs=cfg.num_envs, seed=cfg.seed + setup.first_env,
                         vectorization=vectorization, randomize=cfg.randomize, threads=threads)
        self.buffer = RolloutBuffer(cfg.algorithm.num_steps, cfg.num_envs, spec.obs_dim, spec.act_dim)
        self.acting = NumpyActing(None, seed=[cfg.seed, setup.index, setup.generation])  # type: ignore[arg-type]
        norm = cfg.normalize
        self.obs_normalizer, self.obs_moments = None, None
        if norm.observations:
            self.obs_normalizer = ObservationNormalizer((spec.obs_dim,), clip=norm.clip_observations)
            self.obs_normalizer.rms = self.obs_moments = TrackedMoments((spec.obs_dim,))
        self.reward_scaler, self.reward_moments = None, None
        if norm.rewards:
            gamma = float(getattr(cfg.algorithm, "gamma", 0.99))
            self.reward_scaler = RewardScaler(cfg.num_envs, gamma=gamma, clip=norm.clip_rewards)
            self.reward_scaler.rms = self.reward_moments = TrackedMoments(())
        self.step = self.episodes = 0
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.episode_successes: list[int] = []
        self.obs_raw = self.envs.reset(seed=setup.reset_seed + setup.first_env)[0]
        self.running_return = np.zeros(cfg.num_envs)
        self.running_length = np.zeros(cfg.num_envs, dtype=np.int64)

    def pid(self) -> int:
        """The actor's process id (a test or an operator can kill it)."""
        return os.getpid()

    def collect(self, weights: PolicyWeights, obs_stats: dict[str, Any] | None,
                reward_stats: dict[str, Any] | None) -> WorkerRollout:
        """One iteration: `num_steps` vector steps with `weights`, from the learner's statistics."""
        start = time.perf_counter()
        self.acting.load_weights(weights)
        if self.obs_moments is not None and obs_stats is not None:
            self.obs_moments.restart(obs_stats)
        if self.reward_scaler is not None and self.reward_moments is not None and reward_stats is not None:
            self.reward_moments.restart(reward_stats)
            self.reward_scaler.returns = np.array(reward_stats["returns"], dtype=np.float64)
        self.obs_raw, self.running_return, self.running_length = self._collect(
            self.obs_raw, self.running_return, self.running_length)
        last_values = self.acting.value(self._normalize(self.obs_raw, update=False))
        columns = {name: getattr(self.buffer, name).numpy() for name in STORED_FIELDS}
        result = WorkerRollout(
            columns, last_values,
            _new_moments(self.obs_moments) if self.obs_moments else None,
            _new_moments(self.reward_moments) if self.reward_moments else None,
            self.reward_scaler.returns.copy() if self.reward_scaler else None,
            self.episode_returns, self.episode_lengths, self.episode_successes, 0.0)
        self.episode_returns, self.episode_lengths, self.episode_successes = [], [], []
        return result._replace(collect_s=time.perf_counter() - start)

    def close(self) -> None:
        self.envs.close()


def _new_moments(rms: TrackedMoments) -> Moments:
    return Moments(rms.new.mean, rms.new.var, rms.new.count)


@dataclasses.dataclass
class _Slot:
    setup: WorkerSetup
    actor: Any
    pid: int | None = None
    deaths_in_a_row: int = 0


class RolloutPool:
    """The learner's side: starts the actors, broadcasts, gathers, replaces the dead ones."""

    def __init__(self, ray: Any, actor_class: Any, slots: list[_Slot], owns_ray: bool) -> None:
        self.ray = ray
        self._actor_class = actor_class
        self.slots = slots
        self._owns_ray = owns_ray
        self.in_flight: int | None = None
        """The update whose rollout the workers are collecting now (None between collections)."""
        self.restarts = 0
        self.lost_samples = 0
        self.last_collect_s = 0.0
        """Seconds of the last collection seen from the learner: broadcast, the workers, the gather."""
        self.last_overhead_s = 0.0
        """Of those, what was not the slowest worker's own collecting: Ray's broadcast and gather."""

    @classmethod
    def start(cls, trainer: Any) -> RolloutPool:
        """Connect to Ray (a local instance of rollout_workers CPUs without ray_address) and start the
        actors, one CPU each; an actor that cannot start is one error naming its cause."""
        from robot_rl.distributed.cluster import ClusterUnreachable, connect, import_ray

        cfg = trainer.config
        ray = import_ray()
        owns_ray = not ray.is_initialized()
        try:
            with _keep_signal_handlers():
                connect(cfg.ray_address, num_cpus=cfg.rollout_workers if cfg.ray_address is None else None)
        except ClusterUnreachable as err:  # its text names the sweep's flag
            raise ClusterUnreachable(str(err).replace("--address", "ray_address", 1)) from None
        actor_class = ray.remote(num_cpus=1, max_restarts=0)(RolloutWorker)
        reset_seed = cfg.seed + 7919 * trainer.agent.updates_done
        slots = []
        for index, (first, count) in enumerate(split_envs(cfg.num_envs, cfg.rollout_workers)):
            setup = WorkerSetup(dataclasses.replace(cfg, num_envs=count, rollout_workers=0, ray_address=None),
                                index, first, reset_seed, 0)
            slots.append(_Slot(setup, actor_class.remote(setup)))
        pool = cls(ray, actor_class, slots, owns_ray)
        try:
            pids = ray.get([s.actor.pid.remote() for s in slots], timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            pool.close()
            raise RobotRLError(f"rollout_workers: {len(slots)} rollout workers did not start within "
                               f"{START_TIMEOUT_S:.0f} s; each takes one CPU and the Ray cluster has "
                               f"{ray.available_resources().get('CPU', 0):.0f} free") from None
        except ray.exceptions.RayError as err:
            pool.close()
            raise RobotRLError(f"rollout_workers: a rollout worker could not start: "
                               f"{_error_line(err)}") from None
        for slot, pid in zip(slots, pids, strict=True):
            slot.pid = pid
        print(f"rollout workers: {len(slots)} Ray actors (pids {', '.join(map(str, pids))}), "
              f"{cfg.num_envs} envs split {[s.setup.config.num_envs for s in slots]}", flush=True)
        return pool

    def collect(self, trainer: Any) -> tuple[RolloutBuffer, torch.Tensor]:
        """One iteration's rollout: the ordinary buffer filled from every worker that lived (a narrower
        one when one died), and V(last observation) `(envs,)`. Updates the trainer's normalisers,
        episode statistics and step count."""
        ray = self.ray
        start = time.perf_counter()
        update = trainer.agent.updates_done + 1
        while True:
            weights = ray.put(policy_weights(trainer.agent))
            obs_stats = ray.put(trainer.obs_normalizer.rms.state_dict()) if trainer.obs_normalizer else None
            refs = [s.actor.collect.remote(weights, obs_stats, self._reward_stats(trainer, s))
                    for s in self.slots]
            self.in_flight = update
            results = [(slot, self._get(slot, ref, update, trainer)) for slot, ref in zip(self.slots, refs,
                                                                                        strict=True)]
            self.in_flight = None
            alive = [(slot, r) for slot, r in results if r is not None]
            if alive:
                break
            print(f"rollout workers: every worker died during update {update}; collecting it again",
                  flush=True)
        buffer, last_values = self._gather(trainer, alive)
        self.last_collect_s = time.perf_counter() - start
        self.last_overhead_s = max(0.0, self.last_collect_s - max(r.collect_s for _, r in alive))
        if len(alive) < len(self.slots):
            print(f"rollout workers: update {update} uses {buffer.num_envs} of {trainer.config.num_envs} "
                  f"envs' columns ({buffer.num_steps * buffer.num_envs} samples)", flush=True)
        return buffer, last_values

    def _reward_stats(self, trainer: Any, slot: _Slot) -> dict[str, Any] | None:
        scaler = trainer.reward_scaler
        if scaler is None:
            return None
        first, count = slot.setup.first_env, slot.setup.config.num_envs
        return {**scaler.rms.state_dict(), "returns": scaler.returns[first:first + count].copy()}

    def _get(self, slot: _Slot, ref: Any, update: int, trainer: Any) -> WorkerRollout | None:
        """The worker's rollout, or None after replacing a worker that died (printed and counted)."""
        ray = self.ray
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as err:
            self._replace(slot, update, trainer, _death_cause(err))
            return None
        except ray.exceptions.RayTaskError as err:
            raise RobotRLError(f"rollout worker {slot.setup.index} (pid {slot.pid}) failed in update "
                               f"{update}: {_error_line(err)}") from None
        slot.deaths_in_a_row = 0
        return result

    def _replace(self, slot: _Slot, update: int, trainer: Any, cause: str) -> None:
        setup = slot.setup
        count = setup.config.num_envs
        lost = count * setup.config.algorithm.num_steps
        slot.deaths_in_a_row += 1
        self.restarts += 1
        self.lost_samples += lost
        if trainer.reward_scaler is not None:  # its envs start new episodes
            trainer.reward_scaler.returns[setup.first_env:setup.first_env + count] = 0.0
        if slot.deaths_in_a_row >= MAX_CONSECUTIVE_DEATHS:
            raise RobotRLError(f"rollout worker {setup.index} died {slot.deaths_in_a_row} updates in a row "
                               f"(last in update {update}: {cause}); stopping")
        self.ray.kill(slot.actor, no_restart=True)
        slot.setup = dataclasses.replace(setup, generation=setup.generation + 1,
                                         reset_seed=setup.reset_seed + 104_729 * (setup.generation + 1))
        slot.actor = self._actor_class.remote(slot.setup)
        old_pid = slot.pid
        try:
            slot.pid = self.ray.get(slot.actor.pid.remote(), timeout=START_TIMEOUT_S)
        except self.ray.exceptions.GetTimeoutError:
            raise RobotRLError(f"rollout worker {setup.index} died in update {update} ({cause}) and its "
                               f"replacement did not start within {START_TIMEOUT_S:.0f} s (no free CPU in "
                               f"the Ray cluster?); stopping") from None
        except self.ray.exceptions.RayError as err:
            slot.pid = None
            print(f"rollout workers: the replacement of worker {setup.index} did not start: "
                  f"{_error_line(err)}", flush=True)
        print(f"rollout workers: worker {setup.index} (pid {old_pid}) died during update {update} ({cause}); "
              f"its {count} envs × {setup.config.algorithm.num_steps} steps ({lost} samples) are not in this "
              f"update; restarted as pid {slot.pid}, its envs reset", flush=True)

    def _gather(self, trainer: Any, alive: list[tuple[_Slot, WorkerRollout]]
                ) -> tuple[RolloutBuffer, torch.Tensor]:
        """The workers' columns into the trainer's buffer (or a narrower one); merge their statistics."""
        envs = sum(slot.setup.config.num_envs for slot, _ in alive)
        buffer = trainer.buffer
        if envs != buffer.num_envs:
            buffer = RolloutBuffer(buffer.num_steps, envs, trainer.obs_dim, trainer.act_dim)
        buffer.reset()
        last_values = np.empty(envs, dtype=np.float32)
        column = 0
        for slot, r in alive:
            n = slot.setup.config.num_envs
            for name in STORED_FIELDS:
                getattr(buffer, name).numpy()[:, column:column + n] = r.columns[name]
            last_values[column:column + n] = r.last_values
            column += n
            if r.obs_moments is not None and r.obs_moments.size > 0:
                trainer.obs_normalizer.rms.update_from_moments(*r.obs_moments)
            if r.reward_moments is not None and r.reward_moments.size > 0:
                trainer.reward_scaler.rms.update_from_moments(*r.reward_moments)
                first = slot.setup.first_env
                trainer.reward_scaler.returns[first:first + n] = r.reward_returns
            trainer.episode_returns.extend(r.episode_returns)
            trainer.episode_lengths.extend(r.episode_lengths)
            trainer.episode_successes.extend(r.episode_successes)
            trainer.episodes += len(r.episode_returns)
        buffer.step = buffer.num_steps
        trainer.step += buffer.num_steps * envs
        return buffer, torch.from_numpy(last_values)

    def columns(self) -> dict[str, float]:
        """The progress.csv columns of distributed collection."""
        return {"collect_s": self.last_collect_s, "ray_overhead_ms": 1000.0 * self.last_overhead_s,
                "worker_restarts": self.restarts, "lost_samples": self.lost_samples}

    @property
    def pids(self) -> list[int | None]:
        return [s.pid for s in self.slots]

    def close(self) -> None:
        """End the actors (and the local Ray instance this pool started)."""
        for slot in self.slots:
            try:
                self.ray.kill(slot.actor, no_restart=True)
            except Exception:  # an actor already gone: the others must still end
                pass
        if self._owns_ray:
            self.ray.shutdown()


@contextlib.contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """Restore this process's SIGINT/SIGTERM handlers after `ray.init`, whose core worker installs a C++
    handler that logs a SIGTERM and dies: `robot-rl train`'s handler (a final checkpoint, then
    `--resume`) must stay in charge. Only the main thread has handlers to keep."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def split_envs(num_envs: int, workers: int) -> list[tuple[int, int]]:
    """(first env, count) per worker: `num_envs` split as evenly as possible, the first ones one larger."""
    base, extra = divmod(num_envs, workers)
    out, first = [], 0
    for k in range(workers):
        count = base + (k < extra)
        out.append((first, count))
        first += count
    return out


def _death_cause(err: BaseException) -> str:
    """A dead actor's cause in a few words (Ray's text is a paragraph of possible causes)."""
    found = re.search(r"Worker exit type: (\w+)", str(err))
    if found:
        return f"its process ended; Ray exit type {found.group(1)}"
    first = str(err).strip().split(". ")[0]
    return first[:160] or type(err).__name__


def _error_line(err: BaseException) -> str:
    """The informative last line of a Ray error (they carry whole tracebacks)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:300]
