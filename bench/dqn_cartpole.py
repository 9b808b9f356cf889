"""DQN on CartPole-v1: steps and wall time to a greedy return of 500, robot_rl against Stable-Baselines3.

Both train with the RL Zoo's CartPole-v1 settings for SB3's DQN (hyperparams/dqn.yml: lr 2.3e-3,
batch 64, buffer 100k, learning_starts 1000, γ 0.99, train_freq 256, gradient_steps 128, target
update every 10 steps, ε 1 → 0.04 over 16% of 50k steps, 256×256 ReLU), SB3's own defaults (Huber
loss, gradient norm 10, plain DQN targets) and one torch thread; ours from launch/cartpole_dqn.yaml.
After every training phase that passes a multiple of `--eval-every` steps, each is evaluated with the
same evaluator (`robot_rl.evaluation.evaluate`: 20 greedy episodes, seeds 1e6…); the first evaluation
with mean return 500 stops the run. Wall time counts training only: evaluation time is subtracted.
Seeds alternate between the runs, so all see the same load on a shared machine. A third peer is SB3
with denormal floats flushed to zero during its training (our update does this; SB3 does not), to
show how much of the difference that alone makes. A fourth is ours with torch's autograd in place of
the MLP's written-out backward pass, to show what that pass is worth. Prints one JSON line.

    python bench/dqn_cartpole.py                      # 3 seeds each, up to 50k steps
    python bench/dqn_cartpole.py --seeds 1 --max-steps 30000
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

TASK = "CartPole-v1"
LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "cartpole_dqn.yaml"
ZOO = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
           target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
           exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]))


class Stopwatch:
    """Training time to the first evaluation that reaches the goal, evaluation time excluded."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.start = time.perf_counter()
        self.eval_time = 0.0
        self.next_eval = args.eval_every
        self.reached: dict[str, Any] | None = None
        self.evaluations: list[tuple[int, float]] = []

    def maybe_evaluate(self, step: int, policy: Any) -> bool:
        """Evaluate if `step` passed the next multiple of eval_every; True once the goal is reached."""
        from robot_rl.evaluation import evaluate

        if self.reached is not None or step < self.next_eval:
            return self.reached is not None
        t0 = time.perf_counter()
        self.next_eval = (step // self.args.eval_every + 1) * self.args.eval_every
        result = evaluate(TASK, policy, self.args.episodes, seed=1_000_000)
        self.evaluations.append((step, result["mean_return"]))
        if result["mean_return"] >= self.args.goal:
            self.reached = {"steps": step, "wall_s": round(t0 - self.start - self.eval_time, 2)}
        self.eval_time += time.perf_counter() - t0
        return self.reached is not None

    def result(self) -> dict[str, Any]:
        out = self.reached or {"steps": None, "wall_s": None}
        out["evaluations"] = self.evaluations
        out["total_train_s"] = round(time.perf_counter() - self.start - self.eval_time, 2)
        return out


def ours(seed: int, args: argparse.Namespace, autograd: bool = False) -> dict[str, Any]:
    """robot_rl's DQN; with `autograd`, without its hand-written MLP backward pass (torch autograd)."""
    from robot_rl.dqn_trainer import DQNTrainer
    from robot_rl.launch import load_train_config

    config = load_train_config(LAUNCH, [
        f"seed={seed}", f"total_steps={args.max_steps}", "eval.every_steps=0", "eval.episodes=1",
        "log.progress_bar=false", "log.tensorboard=false", "log.plot=false", "log.checkpoint_every_steps=0",
        "dqn.save_replay=false"])
    trainer = DQNTrainer(config, tempfile.mkdtemp(prefix="bench_dqn_"))
    if autograd:
        trainer.agent.backprop = None
    watch = Stopwatch(args)
    watch.start = time.perf_counter()
    trainer.train(callback=lambda t: watch.maybe_evaluate(t.step, t.policy_fn()))
    return watch.result()


def sb3(seed: int, args: argparse.Namespace, flush_denormal: bool = False) -> dict[str, Any]:
    """SB3 as it ships; with `flush_denormal`, with denormals flushed to zero as our update does."""
    import gymnasium
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    model = DQN("MlpPolicy", gymnasium.make(TASK), seed=seed, device="cpu", verbose=0, **ZOO)

    def policy(obs: np.ndarray) -> np.ndarray:
        return model.predict(np.asarray(obs, dtype=np.float32), deterministic=True)[0]

    class Evaluate(BaseCallback):
        def _on_rollout_start(self) -> None:  # right after a training phase, as ours
            watch.maybe_evaluate(self.num_timesteps, policy)

        def _on_step(self) -> bool:
            return watch.reached is None

    watch = Stopwatch(args)
    torch.set_flush_denormal(flush_denormal)
    try:
        model.learn(total_timesteps=args.max_steps, callback=Evaluate())
    finally:
        torch.set_flush_denormal(False)
    watch.maybe_evaluate(model.num_timesteps, policy)  # after the last phase
    return watch.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--max-steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--goal", type=float, default=500.0)
    parser.add_argument("--no-autograd", action="store_true",
                        help="skip the peer of ours with autograd in place of the written-out backward pass")
    parser.add_argument("--no-sb3-ftz", action="store_true",
                        help="skip the third peer: SB3 with denormals flushed to zero (as our update)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs: dict[str, list[dict[str, Any]]] = {"robot_rl": [], "sb3": []}
    if not args.no_autograd:
        runs["robot_rl_autograd"] = []
    if not args.no_sb3_ftz:
        runs["sb3_flush_denormal"] = []
    for seed in args.seeds:
        runs["robot_rl"].append({"seed": seed, **ours(seed, args)})
        if not args.no_autograd:
            runs["robot_rl_autograd"].append({"seed": seed, **ours(seed, args, autograd=True)})
        runs["sb3"].append({"seed": seed, **sb3(seed, args)})
        if not args.no_sb3_ftz:
            runs["sb3_flush_denormal"].append({"seed": seed, **sb3(seed, args, flush_denormal=True)})
    summary: dict[str, Any] = {}
    for name, results in runs.items():
        reached = [r for r in results if r["steps"] is not None]
        summary[name] = {
            "reached": f"{len(reached)}/{len(results)}",
            "median_steps": statistics.median([r["steps"] for r in reached]) if reached else None,
            "median_wall_s": statistics.median([r["wall_s"] for r in reached]) if reached else None,
            "median_train_s_per_10k_steps": statistics.median(
                [10_000 * r["total_train_s"] / (r["steps"] or args.max_steps) for r in results]),
        }
    for peer in runs:
        ours_s, theirs_s = summary["robot_rl"]["median_wall_s"], summary[peer]["median_wall_s"]
        if peer != "robot_rl" and ours_s and theirs_s:
            summary[f"wall_ratio_vs_{peer}"] = round(ours_s / theirs_s, 3)
    print(json.dumps({"bench": "dqn_cartpole", "task": TASK, "settings": "rl-zoo dqn CartPole-v1",
                      "max_steps": args.max_steps, "eval_every": args.eval_every, "episodes": args.episodes,
                      "torch": torch.__version__, "python": platform.python_version(),
                      "summary": summary, "runs": runs}))


if __name__ == "__main__":
    main()
