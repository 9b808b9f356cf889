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
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.checkpoint import (
    atomic_write_text,
    from_checkpoint_state,
    load_latest_checkpoint,
    save_best_checkpoint,
    save_checkpoint,
    to_checkpoint_state,
)
from robot_rl.errors import RobotRLError
from robot_rl.evaluation import evaluate
from robot_rl.launch import config_to_yaml_dict, read_run_config
from robot_rl.recording import eval_video
from robot_rl.run_log import RunLog, truncate_progress


class TrainingDiverged(RobotRLError):
    """A loss or a parameter became NaN/Inf."""


class TrainerBase:
    config: Any
    run_dir: Path
    step: int
    agent: Any
    best_eval: float | None = None
    """The best periodic evaluation's mean return so far (checkpoints/best.pt holds its state)."""

    @classmethod
    def resume(cls, run_dir: str | Path) -> Any:
        """Rebuild a run from its config.yaml and continue from its newest readable checkpoint."""
        run_dir = Path(run_dir)
        trainer = cls(read_run_config(run_dir), run_dir)  # type: ignore[call-arg]
        state, path = load_latest_checkpoint(run_dir)
        trainer.load_state(state)
        truncate_progress(run_dir, trainer.step)
        print(f"resuming {run_dir} from {path.name} at step {trainer.step}")
        return trainer

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds: tensors, numbers, strings, lists, dicts (weights_only loading)."""
        import torch

        obs_norm, reward_scaler = self.obs_normalizer, self.reward_scaler  # type: ignore[attr-defined]
        return {
            "step": self.step,
            "episodes": self.episodes,  # type: ignore[attr-defined]
            "agent": self.agent.state_dict(),
            "obs_normalizer": to_checkpoint_state(obs_norm.state_dict()) if obs_norm else None,
            "reward_scaler": to_checkpoint_state(reward_scaler.state_dict()) if reward_scaler else None,
            "torch_rng": torch.get_rng_state(),
            "acting": self.acting.state(),  # type: ignore[attr-defined]
            "config": config_to_yaml_dict(self.config),
            "best_eval": self.best_eval,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        import torch

        self.step = int(state["step"])
        self.episodes = int(state.get("episodes", 0))  # type: ignore[attr-defined]
        self.best_eval = state.get("best_eval")
        self.agent.load_state_dict(state["agent"])
        if self.obs_normalizer is not None:  # type: ignore[attr-defined]
            self.obs_normalizer.load_state_dict(from_checkpoint_state(state["obs_normalizer"]))
        if self.reward_scaler is not None:  # type: ignore[attr-defined]
            self.reward_scaler.load_state_dict(from_checkpoint_state(state["reward_scaler"]))
        torch.set_rng_state(state["torch_rng"])
        self.acting.refresh()  # type: ignore[attr-defined]
        self.acting.load_state(state["acting"])  # type: ignore[attr-defined]

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
                                   f"({unit} {self.agent.updates_done}): "
                                   f"{what} is not finite; the last good checkpoint in "
                                   f"{self.run_dir / 'checkpoints'} is intact")

    def _base_row(self, start: float, start_step: int) -> dict[str, Any]:
        """The progress columns every trainer writes (RunLog's PROGRESS_FIELDS)."""
        recent, lengths = self.episode_returns, self.episode_lengths  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - start
        return {
            "step": self.step,
            "update": self.agent.updates_done,
            "time_s": round(elapsed, 3),
            "sps": (self.step - start_step) / max(elapsed, 1e-9),
            "episode_return": float(np.mean(recent)) if recent else float("nan"),
            "episode_length": float(np.mean(lengths)) if lengths else float("nan"),
            "episodes": self.episodes,  # type: ignore[attr-defined]
        }

    def _count_episodes(self, rewards: np.ndarray, done: np.ndarray, running_return: np.ndarray,
                        running_length: np.ndarray) -> None:
        """Add a vector step's rewards to the running episode sums (in place); record finished ones."""
        running_return += rewards
        running_length += 1
        if done.any():
            for i in np.flatnonzero(done):
                self.episode_returns.append(float(running_return[i]))  # type: ignore[attr-defined]
                self.episode_lengths.append(int(running_length[i]))  # type: ignore[attr-defined]
                self.episodes += 1  # type: ignore[attr-defined]
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
