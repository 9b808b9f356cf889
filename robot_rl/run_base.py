"""What every trainer shares: resuming a run, checkpoints, evaluation, the divergence check, the
common progress columns and the end of a run. The on-policy `Trainer` and the `DQNTrainer` subclass it
and write only their own loop.

A subclass sets `config`, `run_dir`, `step`, `agent` (with `updates_done` and `parameters_finite()`),
`episodes`, `episode_returns`, `episode_lengths`, `obs_normalizer`, `reward_scaler` (or None) and
`acting` (rollout-time sampling with `refresh`, `state`, `load_state`), and implements `policy_fn()` (the
deterministic policy on raw observations); it extends `state`/`load_state` with what is its own.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.checkpoint import (
    CHECKPOINT_DIR,
    atomic_write_text,
    from_checkpoint_state,
    list_checkpoints,
    load_checkpoint,
    save_best_checkpoint,
    save_checkpoint,
    to_checkpoint_state,
)
from robot_rl.errors import ConfigError, RobotRLError
from robot_rl.evaluation import evaluate
from robot_rl.launch import config_to_yaml_dict, read_run_config
from robot_rl.normalization import ObservationNormalizer, RewardScaler
from robot_rl.recording import eval_video
from robot_rl.run_dir import RunDirError, RunLock, clear_unfinished_run
from robot_rl.run_log import RunLog, truncate_progress


class TrainingDiverged(RobotRLError):
    """A loss or a parameter became NaN/Inf."""


class TrainingStopped(RobotRLError):
    """`request_stop` (a signal) ended the run between updates, after a final checkpoint."""

    def __init__(self, reason: str, step: int, path: Path) -> None:
        super().__init__(f"stopped by {reason} at step {step}: checkpoint {path} written")
        self.reason, self.step, self.path = reason, step, path


class TrainerBase:
    config: Any
    run_dir: Path
    step: int
    agent: Any
    """Has `updates_done`, `parameters_finite()`, `state_dict()` and `load_state_dict()`."""
    episodes: int
    episode_returns: deque[float]
    episode_lengths: deque[int]
    obs_normalizer: ObservationNormalizer | None
    reward_scaler: RewardScaler | None
    acting: Any
    """Rollout-time sampling: `refresh()`, `state()`, `load_state(state)`."""
    best_eval: float | None = None
    """The best periodic evaluation's mean return so far (checkpoints/best.pt holds its state)."""

    _lock: RunLock | None = None
    _stop_request: str | None = None

    def request_stop(self, reason: str = "stopped") -> None:
        """Stop at the loop's next `stop_point` (safe to call from a signal handler: it sets a field)."""
        self._stop_request = reason

    def stop_point(self) -> None:
        """Called by a trainer's loop between updates, where its state is whole: after `request_stop`,
        write a checkpoint (atomically, as every checkpoint) and raise TrainingStopped; `--resume`
        continues from it."""
        if self._stop_request is not None:
            reason, self._stop_request = self._stop_request, None
            raise TrainingStopped(reason, self.step, self.save_checkpoint())

    @classmethod
    def resume(cls, run_dir: str | Path, config: Any = None) -> Any:
        """Rebuild a run from its config (config.yaml unless given) and continue from its newest
        checkpoint that loads *and fits the network*: a truncated checkpoint, or one of another network
        copied in, falls back to the one before, saying so."""
        run_dir = Path(run_dir)
        if config is None:
            config, _ = read_resume_config(run_dir)
        lock = RunLock(run_dir)
        lock.acquire()  # before anything is read for writing: a second writer is refused here
        try:
            trainer, path, skipped = cls._newest_fitting(config, run_dir)
            trainer._lock = lock
            truncate_progress(run_dir, trainer.step)
        except BaseException:
            lock.release()
            raise
        for reason in skipped:
            print(f"skipped {reason}")
        print(f"resuming {run_dir} from {path.name} at step {trainer.step}")
        return trainer

    @classmethod
    def _newest_fitting(cls, config: Any, run_dir: Path) -> tuple[Any, Path, list[str]]:
        checkpoints = list_checkpoints(run_dir)
        if not checkpoints:
            raise RobotRLError(f"{run_dir}: no checkpoint in {run_dir / CHECKPOINT_DIR}")
        skipped: list[str] = []
        trainer = None
        for _, path in reversed(checkpoints):
            try:
                state = load_checkpoint(path)
            except RobotRLError as err:
                skipped.append(str(err))
                continue
            if trainer is None:
                trainer = cls(config, run_dir)  # type: ignore[call-arg]
            try:
                trainer.load_state(state)
            except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
                skipped.append(f"checkpoint {path}: it does not fit this run's network "
                               f"({load_error_summary(err)})")
                trainer.close()  # partly loaded: the next try starts from a fresh trainer
                trainer = None
                continue
            return trainer, path, skipped
        raise RobotRLError(f"{run_dir}: no checkpoint that loads and fits the run ({'; '.join(skipped)})")

    def close(self) -> None:
        """Release what a trainer holds that is not garbage-collected promptly (its environments)."""
        envs = getattr(self, "envs", None)
        if envs is not None:
            envs.close()

    def train(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Train to total_steps (see the subclass's `_train`), holding the run directory's lock: a
        second process writing the same folder is refused, not mixed in. A new run first clears
        what a run killed before its first checkpoint left there."""
        if self._lock is None:
            self._lock = RunLock(self.run_dir)
            self._lock.acquire()
            try:
                if self.step == 0:
                    removed = clear_unfinished_run(self.run_dir)
                    if removed:
                        print(f"{self.run_dir}: removed {', '.join(removed)} of a run killed before its "
                              f"first checkpoint")
            except BaseException:
                self._release_lock()
                raise
        try:
            return self._train(*args, **kwargs)
        except OSError as err:  # a full disk, a folder made read-only mid-run
            if isinstance(err, BrokenPipeError):
                raise
            raise RunDirError(f"{self.run_dir}: writing the run failed at step {self.step}: "
                              f"{err.strerror or err}{f' ({err.filename})' if err.filename else ''}; "
                              f"{self._checkpoint_note()}") from None
        finally:
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _train(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds: tensors, numbers, strings, lists, dicts (weights_only loading)."""
        import torch

        obs_norm, reward_scaler = self.obs_normalizer, self.reward_scaler
        return {
            "step": self.step,
            "episodes": self.episodes,
            "agent": self.agent.state_dict(),
            "obs_normalizer": to_checkpoint_state(obs_norm.state_dict()) if obs_norm else None,
            "reward_scaler": to_checkpoint_state(reward_scaler.state_dict()) if reward_scaler else None,
            "torch_rng": torch.get_rng_state(),
            "acting": self.acting.state(),
            "config": config_to_yaml_dict(self.config),
            "best_eval": self.best_eval,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        import torch

        self.step = int(state["step"])
        self.episodes = int(state.get("episodes", 0))
        self.best_eval = state.get("best_eval")
        self.agent.load_state_dict(state["agent"])
        if self.obs_normalizer is not None:
            self.obs_normalizer.load_state_dict(from_checkpoint_state(state["obs_normalizer"]))
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(from_checkpoint_state(state["reward_scaler"]))
        torch.set_rng_state(state["torch_rng"])
        self.acting.refresh()
        self.acting.load_state(state["acting"])

    def policy_fn(self) -> Any:
        raise NotImplementedError

    def evaluate(self, episodes: int, seed: int | None = None, video: bool = False) -> dict[str, Any]:
        """`video`: with eval.video, film the first episode to videos/eval_step<STEP>.mp4."""
        cfg = self.config
        hooks, render_mode = eval_video(self.run_dir, cfg.task, self.step) if video and cfg.eval.video \
            else ([], None)
        return evaluate(cfg.task, self.policy_fn(), episodes, cfg.eval.seed if seed is None else seed,
                        randomize=cfg.randomize if cfg.eval.randomize else None, hooks=hooks,
                        render_mode=render_mode)

    def periodic_evaluation(self) -> float:
        """Evaluate now; a new best mean return replaces checkpoints/best.pt (with eval.keep_best)."""
        result = self.evaluate(self.config.eval.episodes, video=True)
        self._keep_if_best(result["mean_return"])
        return result["mean_return"]

    def _keep_if_best(self, mean_return: float) -> None:
        ev = self.config.eval
        if ev.keep_best and ev.every_steps > 0 and math.isfinite(mean_return) \
                and (self.best_eval is None or mean_return > self.best_eval):
            self.best_eval = float(mean_return)
            save_best_checkpoint(self.run_dir, self.best_state())

    def best_state(self) -> dict[str, Any]:
        """What checkpoints/best.pt holds: the checkpoint state; a subclass leaves out what only resuming
        needs (best.pt is for export and evaluation; a run resumes from its step checkpoints)."""
        return self.state()

    def save_checkpoint(self) -> Path:
        return save_checkpoint(self.run_dir, self.step, self.state(), keep=self.config.log.keep_checkpoints)

    def _check_finite(self, metrics: dict[str, float], unit: str = "update") -> None:
        """Stop on a non-finite loss or parameter, naming the step; no checkpoint is written after it."""
        bad = [k for k, v in metrics.items() if k.endswith("loss") and not math.isfinite(v)]
        if bad or not self.agent.parameters_finite():
            what = f"loss {bad[0]} = {metrics[bad[0]]}" if bad else "a network parameter"
            raise TrainingDiverged(f"training diverged at step {self.step} "
                                   f"({unit} {self.agent.updates_done}): {what} is not finite; "
                                   f"{self._checkpoint_note()}")

    def _checkpoint_note(self) -> str:
        """What a stopped run leaves to resume from, for its error line."""
        saved = list_checkpoints(self.run_dir)
        if saved:
            return f"the last good checkpoint {saved[-1][1]} (step {saved[-1][0]}) is intact"
        return (f"no checkpoint was written before it (log.checkpoint_every_steps = "
                f"{self.config.log.checkpoint_every_steps}), so the run cannot be resumed")

    def _base_row(self, start: float, start_step: int) -> dict[str, Any]:
        """The progress columns every trainer writes (RunLog's PROGRESS_FIELDS)."""
        recent, lengths = self.episode_returns, self.episode_lengths
        elapsed = time.perf_counter() - start
        return {
            "step": self.step,
            "update": self.agent.updates_done,
            "time_s": round(elapsed, 3),
            "sps": (self.step - start_step) / max(elapsed, 1e-9),
            "episode_return": float(np.mean(recent)) if recent else float("nan"),
            "episode_length": float(np.mean(lengths)) if lengths else float("nan"),
            "episodes": self.episodes,
        }

    def _count_episodes(self, rewards: np.ndarray, done: np.ndarray, running_return: np.ndarray,
                        running_length: np.ndarray) -> None:
        """Add a vector step's rewards to the running episode sums (in place); record finished ones."""
        running_return += rewards
        running_length += 1
        if done.any():
            for i in np.flatnonzero(done):
                self.episode_returns.append(float(running_return[i]))
                self.episode_lengths.append(int(running_length[i]))
                self.episodes += 1
            running_return[done] = 0.0
            running_length[done] = 0

    def _next_multiple(self, every: int) -> int:
        return 0 if every <= 0 else (self.step // every + 1) * every

    def _finish(self, log: RunLog, start: float) -> dict[str, Any]:
        """The end of every run: final checkpoint, deterministic evaluation, eval.json, plot."""
        self.save_checkpoint()
        result = self.evaluate(self.config.eval.episodes, video=True)
        self._keep_if_best(result["mean_return"])  # the final policy competes for best.pt too
        result["step"] = self.step
        result["wall_time_s"] = time.perf_counter() - start
        atomic_write_text(self.run_dir / "eval.json", json.dumps(result, indent=2))
        log.scalar("eval/mean_return", result["mean_return"], self.step)
        log.finish()
        return result


def load_error_summary(err: BaseException) -> str:
    """The first informative line of a `load_state_dict` error (torch lists every mismatch, one per
    line, under a header): e.g. "size mismatch for net.0.weight: ... [64, 11] ... [64, 4]"."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = [line for line in lines if not line.startswith("Error(s) in loading")]
    text = (detail or lines or [type(err).__name__])[0]
    return text if len(text) <= 300 else text[:297] + "..."


def read_resume_config(run_dir: str | Path) -> tuple[Any, str | None]:
    """The config to resume `run_dir` with: its config.yaml, or, if that is damaged, the config saved
    in its newest readable checkpoint (with a note saying so; train() rewrites config.yaml)."""
    from robot_rl.launch import parse_train_config

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() and not list_checkpoints(run_dir):
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        return read_run_config(run_dir), None
    except ConfigError as err:
        damage = str(err)
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            config = parse_train_config(load_checkpoint(path).get("config"))
        except (RobotRLError, AttributeError):  # parse_train_config refuses a missing (None) config
            continue
        note = f"{damage}; resuming with the config saved in {path}"
        print(note)
        return config, note
    raise ConfigError(f"{damage}; and no checkpoint holds a readable config, so the run cannot resume")


def check_memory(nbytes: int, key: str, what: str) -> None:
    """Refuse, before allocating, a buffer larger than half this machine's physical memory (a size
    typo must be one error line, not an out-of-memory kill or a swapping machine)."""
    import os

    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no estimate to compare with
        return
    if nbytes > physical // 2:
        raise ConfigError(f"{key}: the {what} would take {nbytes / 2**30:.1f} GiB; this machine has "
                          f"{physical / 2**30:.1f} GiB of memory (at most half is allowed); make it smaller")
