"""PPO training throughput on Hopper-v5: robot_rl against Stable-Baselines3, in the same run.

Both train with the same number of envs, rollout length, epochs, minibatch size, network (64×64
tanh, separate actor and critic), observation and reward normalisation, and torch threads. Also
measured: pure environment stepping with random actions through the same vector env, so that the
overhead of training over stepping is a ratio. Prints one JSON line.

    python bench/ppo_throughput.py                       # the paper's settings: 1 env × 2048, mb 64
    python bench/ppo_throughput.py --num-envs 8 --num-steps 256 --minibatch-size 512
    python bench/ppo_throughput.py --vectorization batched --num-envs 64 --num-steps 32 \
        --minibatch-size 512 --sb3-num-envs 8 --sb3-num-steps 256   # the engine against SB3 x 8

`--vectorization batched` steps ours on the MuJoCo engine (`--env-threads`, default the cores); SB3
keeps its DummyVecEnv of Gymnasium envs (`--sb3-num-envs`, `--sb3-num-steps`: its own rollout shape,
default ours). Where our time goes is split into stepping (the vector env's `step`), the update
(`agent.update`) and the rest (acting: policy inference and the buffer; normalisation; bookkeeping).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch
from machine import Timed

TASK = "Hopper-v5"


def pure_stepping_sps(num_envs: int, steps: int, seed: int, vectorization: str = "sync",
                      env_threads: int | None = None) -> float:
    from robot_rl.sim import make

    envs = make(TASK, num_envs=num_envs, seed=seed, vectorization=vectorization, threads=env_threads)
    envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n = steps // num_envs
    actions = rng.uniform(-1, 1, size=(n, num_envs, envs.single_action_space.shape[0])).astype(np.float32)
    start = time.perf_counter()
    for t in range(n):
        envs.step(actions[t])
    elapsed = time.perf_counter() - start
    envs.close()
    return n * num_envs / elapsed


def robot_rl_sps(args: argparse.Namespace) -> tuple[float, dict[str, float]]:
    """Our training steps/s, and the share of the loop's time in stepping, the update and the rest."""
    from robot_rl.config import apply_overrides
    from robot_rl.launch import parse_train_config
    from robot_rl.trainer import Trainer

    data = apply_overrides({"task": TASK, "algo": "ppo"}, [
        f"seed={args.seed}", f"total_steps={args.steps}", f"num_envs={args.num_envs}",
        f"torch_threads={args.threads}", f"ppo.num_steps={args.num_steps}", f"ppo.epochs={args.epochs}",
        f"ppo.minibatch_size={args.minibatch_size}", "eval.episodes=1", "log.progress_bar=false",
        "log.tensorboard=false", "log.plot=false", "log.checkpoint_every_steps=0",
        f"vectorization={args.vectorization}"]
        + ([f"env_threads={args.env_threads}"] if args.env_threads else []))
    run_dir = tempfile.mkdtemp(prefix="bench_ppo_")
    trainer = Trainer(parse_train_config(data), run_dir)
    step, update = Timed(trainer.envs.step), Timed(trainer.agent.update)
    trainer.envs.step, trainer.agent.update = step, update  # this instance only
    trainer.train()
    with open(f"{run_dir}/progress.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]  # time_s: the training loop alone, without the final evaluation
    total = float(last["time_s"])
    split = {"stepping": step.seconds / total, "update": update.seconds / total,
             "acting_and_rest": 1.0 - (step.seconds + update.seconds) / total}
    return float(last["step"]) / total, {k: round(v, 3) for k, v in split.items()}


def sb3_sps(args: argparse.Namespace) -> float:
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(args.threads)
    env = VecNormalize(DummyVecEnv([lambda: gym.make(TASK) for _ in range(args.sb3_num_envs)]))
    model = PPO("MlpPolicy", env, n_steps=args.sb3_num_steps, batch_size=args.minibatch_size,
                n_epochs=args.epochs, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95, clip_range=0.2,
                max_grad_norm=0.5, policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                                                  "activation_fn": torch.nn.Tanh},
                seed=args.seed, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    elapsed = time.perf_counter() - start
    return model.num_timesteps / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--num-steps", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--minibatch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20480, help="environment steps per measurement")
    p.add_argument("--threads", type=int, default=1, help="torch threads, the same for both")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip-sb3", action="store_true")
    p.add_argument("--vectorization", choices=("sync", "batched"), default="sync", help="ours (default sync)")
    p.add_argument("--env-threads", type=int, default=None, help="batched: physics threads (default cores)")
    p.add_argument("--sb3-num-envs", type=int, default=None, help="SB3's envs (default --num-envs)")
    p.add_argument("--sb3-num-steps", type=int, default=None, help="SB3's rollout (default --num-steps)")
    args = p.parse_args()
    args.sb3_num_envs = args.sb3_num_envs or args.num_envs
    args.sb3_num_steps = args.sb3_num_steps or args.num_steps

    stepping = pure_stepping_sps(args.num_envs, args.steps, args.seed, args.vectorization, args.env_threads)
    ours, split = robot_rl_sps(args)
    peer = None if args.skip_sb3 else sb3_sps(args)
    print(json.dumps({
        "benchmark": "ppo_throughput", "task": TASK, "vectorization": args.vectorization,
        "env_threads": args.env_threads, "sb3_num_envs": args.sb3_num_envs,
        "sb3_num_steps": args.sb3_num_steps,
        "time_split": split, "loadavg": [round(x, 2) for x in os.getloadavg()],
        "num_envs": args.num_envs, "num_steps": args.num_steps,
        "epochs": args.epochs, "minibatch_size": args.minibatch_size, "network": "64x64 tanh",
        "env_steps": args.steps, "torch_threads": args.threads,
        "pure_stepping_sps": round(stepping, 1), "robot_rl_sps": round(ours, 1),
        "sb3_sps": None if peer is None else round(peer, 1),
        "speedup_vs_sb3": None if peer is None else round(ours / peer, 2),
        "training_overhead_vs_stepping": round(stepping / ours - 1.0, 3),
        "goals": {"speedup_vs_sb3": ">= 2", "training_overhead_vs_stepping": "<= 0.40"},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
