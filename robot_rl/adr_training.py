"""ADR in a training run: attach it to the batched engine, feed each boundary episode's performance
back, log the ranges and the entropy (progress.csv and TensorBoard through the progress row), and
plot them (adr.png in the run directory).

Performance of a boundary episode, in [0, 1]: with `adr.return_scale` null, 1 if the episode reached a
goal (`final_info["successes"] >= 1`, the cube tasks), else 0; otherwise its return divided by
`return_scale`, clipped to [0, 1].
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.sim.adr import ADR, ADRConfig


def attach_adr(envs: Any, config: Any) -> ADR | None:
    """The run's ADR, installed as the batched engine's randomizer (None without `adr.enabled`).

    Called before the first reset, so that every episode, the first ones included, is drawn by ADR.
    """
    if not config.adr.enabled:
        return None
    from robot_rl.sim.adr_randomizer import ADRRandomizer, adr_parameters

    adr = ADR(adr_parameters(config.randomize, config.adr), config.adr)
    engine = envs.engine  # BatchedVectorEnv's engine (launch validation guarantees vectorization: batched)
    engine.randomizer = ADRRandomizer(adr, config.randomize, engine.nominal, engine.physics_dt,
                                      engine.task.frame_skip, config.task, task_state=engine.task_state)
    return adr


def adr_feedback(adr: ADR, config: ADRConfig, info: dict[str, Any], returns: np.ndarray) -> int:
    """Record the performance of the boundary episodes that ended in this vector step; `returns` `(N,)`
    are the episodes' returns including this step. Returns how many bounds moved."""
    from robot_rl.sim.adr_randomizer import boundary_episodes

    moved = 0
    final = info.get("final_info") or {}
    for i, boundary in boundary_episodes(info):
        if config.return_scale is None:
            performance = float(final["successes"][i] >= 1)
        else:
            performance = float(np.clip(returns[i] / config.return_scale, 0.0, 1.0))
        moved += int(adr.record(boundary, performance))
    return moved


def adr_columns(adr: ADR) -> dict[str, float]:
    """The progress row's ADR columns: entropy (nats per dimension), bound moves, each range."""
    row: dict[str, float] = {"adr_entropy": adr.entropy(), "adr_updates": float(adr.updates)}
    for name, (low, high) in adr.ranges().items():
        row[f"adr_{name}_low"] = low
        row[f"adr_{name}_high"] = high
    return row


def plot_adr(run_dir: str | Path) -> Path | None:
    """adr.png from progress.csv: each ADR range (its low and high bound) and the entropy, against steps."""
    run_dir = Path(run_dir)
    path = run_dir / "progress.csv"
    if not path.exists():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "adr_entropy" not in rows[0]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [float(r["step"]) for r in rows]
    names = sorted(k.removeprefix("adr_").removesuffix("_low") for k in rows[0] if k.endswith("_low")
                   and k.startswith("adr_"))
    fig, (ranges, entropy) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    for name in names:
        low = [float(r[f"adr_{name}_low"]) for r in rows]
        high = [float(r[f"adr_{name}_high"]) for r in rows]
        line, = ranges.plot(steps, high, label=name)
        ranges.plot(steps, low, color=line.get_color())
        ranges.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
    ranges.set_ylabel("range [low, high]")
    ranges.legend(fontsize=8)
    ranges.grid(alpha=0.3)
    entropy.plot(steps, [float(r["adr_entropy"]) for r in rows])
    entropy.set_ylabel("ADR entropy (nats/dim)")
    entropy.set_xlabel("environment steps")
    entropy.grid(alpha=0.3)
    out = run_dir / "adr.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
