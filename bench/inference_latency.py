"""Single-observation inference latency of a policy bundle on each runtime, against its peers.

For each network size (64×64 and 256×256 tanh, Hopper-v5's spec: 11 observations, 3 actions), one
bundle with random weights and a normaliser is written and timed, in the same run, as:

  numpy        robot_rl.policies runtime "numpy": `policy.act(obs)`, with the shape and NaN/Inf checks,
               the normaliser, the network and the mapping to robot units (the full deployment call)
  onnx         the same `act` on onnxruntime (policy.onnx, one thread)
  torch        the same `act` on the torch runtime (nn.Module built from weights.npz)
  sb3_predict  Stable-Baselines3 PPO with the same actor sizes: `model.predict(obs, deterministic=True)`
  torch_forward  a bare `nn.Sequential` forward under `torch.inference_mode()` (no checks, no mapping)
  bare         the limit: the same float32 layers as a plain chain of numpy matmuls, no validation,
               no normaliser, no mapping: tanh(tanh(x W1 + b1) W2 + b2) W3 + b3

Each call is timed alone (perf_counter_ns) on a fresh observation from a pool; the methods are
interleaved round by round so that drifting load on a shared machine hits them alike; the garbage
collector is off while timing. torch uses one thread (as on a robot's small CPU and in training here).
Prints one JSON line: median and p99 in microseconds per method and size, and the goal ratios.

    python bench/inference_latency.py [--calls 2000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from machine import cpu_model  # bench/machine.py (the script's folder is on sys.path)

TASK = "Hopper-v5"
SIZES = ((64, 64), (256, 256))


def make_bundle(folder: Path, hidden: tuple[int, ...], seed: int):
    """A bundle with random (orthogonal-like scaled) weights, a normaliser, and policy.onnx."""
    from robot_rl.policies.bundle import Normalizer, write_bundle
    from robot_rl.sim import get_spec

    spec = get_spec(TASK)
    rng = np.random.default_rng(seed)
    sizes = [spec.obs_dim, *hidden, spec.act_dim]
    layers = [((rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32),
               (0.1 * rng.standard_normal(o)).astype(np.float32)) for i, o in itertools.pairwise(sizes)]
    normalizer = Normalizer(mean=rng.standard_normal(spec.obs_dim),
                            var=rng.uniform(0.1, 4.0, spec.obs_dim), clip=10.0, eps=1e-8)
    provenance = {"task": TASK, "algorithm": "ppo", "steps": None, "seed": seed, "evaluation": None,
                  "versions": {}, "created": "bench"}
    return write_bundle(folder / f"h{'x'.join(map(str, hidden))}", spec=spec, kind="gaussian", layers=layers,
                        activation="tanh", head={"squash": "none", "log_std": [0.0] * spec.act_dim},
                        normalizer=normalizer, provenance=provenance, onnx=True)


def sb3_model(hidden: tuple[int, ...], seed: int):
    import gymnasium
    import torch
    from stable_baselines3 import PPO

    env = gymnasium.make(TASK)
    return PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
               policy_kwargs={"net_arch": {"pi": list(hidden), "vf": list(hidden)},
                              "activation_fn": torch.nn.Tanh})


def methods(bundle, hidden: tuple[int, ...], seed: int) -> dict:
    import torch

    from robot_rl.policies import load

    numpy_policy = load(bundle.path, runtime="numpy")
    onnx_policy = load(bundle.path, runtime="onnx")
    torch_policy = load(bundle.path, runtime="torch")
    model = sb3_model(hidden, seed)
    ws = [np.ascontiguousarray(w.T) for w, _ in bundle.layers]
    bs = [b for _, b in bundle.layers]
    w1, w2, w3 = ws
    b1, b2, b3 = bs

    def bare(x: np.ndarray) -> np.ndarray:
        h = np.tanh(x @ w1 + b1)
        h = np.tanh(h @ w2 + b2)
        return h @ w3 + b3

    net = torch_policy.module.net  # nn.Sequential of the same layers, float32

    def torch_forward(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(x)

    return {
        "numpy": (numpy_policy.act, "f64"),
        "onnx": (onnx_policy.act, "f64"),
        "torch": (torch_policy.act, "f64"),
        "sb3_predict": (lambda x: model.predict(x, deterministic=True)[0], "f32"),
        "torch_forward": (torch_forward, "torch"),
        "bare": (bare, "f32"),
    }


def time_methods(table: dict, obs_dim: int, calls: int, rounds: int, seed: int) -> dict:
    import torch

    rng = np.random.default_rng(seed)
    pool64 = rng.standard_normal((1024, obs_dim))
    pools = {"f64": list(pool64), "f32": list(pool64.astype(np.float32)),
             "torch": [torch.from_numpy(x)[None] for x in pool64.astype(np.float32)]}
    samples: dict[str, list[int]] = {name: [] for name in table}
    for fn, kind in table.values():  # warm up
        for x in pools[kind][:200]:
            fn(x)
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for _ in range(rounds):
            for name, (fn, kind) in table.items():
                pool, out = pools[kind], samples[name]
                for i in range(calls):
                    x = pool[i & 1023]
                    t0 = clock()
                    fn(x)
                    out.append(clock() - t0)
    finally:
        gc.enable()
    return {name: {"median_us": round(float(np.median(v)) / 1e3, 2),
                   "p99_us": round(float(np.percentile(v, 99)) / 1e3, 2)} for name, v in samples.items()}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per method per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    packages = ("numpy", "torch", "onnxruntime", "stable_baselines3")
    result: dict = {"bench": "inference_latency", "task": TASK, "calls": args.calls * args.rounds,
                    "cpu": cpu_model(), "python": platform.python_version(),
                    "versions": {k: _version(k) for k in packages}, "sizes": {}, "ratios": {}}
    with tempfile.TemporaryDirectory(prefix="bench_latency_") as tmp:
        for hidden in SIZES:
            bundle = make_bundle(Path(tmp), hidden, args.seed)
            table = methods(bundle, hidden, args.seed)
            timings = time_methods(table, bundle.spec.obs_dim, args.calls, args.rounds, args.seed)
            key = "x".join(map(str, hidden))
            result["sizes"][key] = timings
            med = {k: v["median_us"] for k, v in timings.items()}
            result["ratios"][key] = {
                "numpy_over_sb3": round(med["numpy"] / med["sb3_predict"], 3),
                "numpy_over_bare": round(med["numpy"] / med["bare"], 3),
                "goal_numpy_le_0.1_sb3": med["numpy"] <= 0.1 * med["sb3_predict"],
                "goal_numpy_le_2_bare": med["numpy"] <= 2.0 * med["bare"],
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
