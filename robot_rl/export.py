"""Run directory → policy bundle: the newest checkpoint's actor, normaliser and spec, then an evaluation.

A training-side step (it reads checkpoints with torch), so it lives in the core; `robot_rl.policies`
holds only the format it writes and the runtimes that read it. The run's trainer class rebuilds its
network from the config and checkpoint (`torch.load(weights_only=True)` through the trainer's loader)
and gives its layers as float32 arrays (`bundle_network`: the Gaussian mean network, or DQN's
Q-network with an argmax head); the bundle is written by `write_bundle`. The bundle is then evaluated
*as shipped* — read back from disk on the numpy runtime, through `robot_rl.evaluation.evaluate`, in
the task's simulator — and the result goes into its manifest's provenance. With the run's eval seed
and episode count this is the run's own evaluation, so a bundle's return can be compared with
eval.json's.

torch, the trainer and the simulator are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import datetime
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.policies.bundle import Bundle, BundleError, Normalizer, update_provenance, write_bundle


def package_versions() -> dict[str, str]:
    """Versions of the packages a bundle's numbers depend on (those installed)."""
    import robot_rl

    versions = {"robot_rl": robot_rl.__version__, "python": platform.python_version()}
    for name in ("numpy", "torch", "mujoco", "gymnasium", "dm_control", "onnx"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def evaluate_bundle(path: str | Path, episodes: int, seed: int, runtime: str = "numpy") -> dict[str, Any]:
    """`robot_rl.evaluation.evaluate` of a bundle's deterministic policy in its task's simulator."""
    from robot_rl.evaluation import evaluate
    from robot_rl.policies import load

    policy = load(path, runtime=runtime)
    return evaluate(policy.spec.name, policy.act_normalized, episodes, seed)


def export_run(run_dir: str | Path, out: str | Path, *, episodes: int | None = None,
               seed: int | None = None, onnx: bool | None = None, force: bool = False,
               checkpoint: str = "latest") -> Bundle:
    """Export a run's checkpoint (`latest`, `best` or a file) to a bundle at `out`; evaluate it there.

    `episodes`/`seed` default to the run's `eval` settings (0 episodes: no evaluation, provenance
    `evaluation` is null). `onnx`: see `write_bundle`.
    """
    from robot_rl.launch import trainer_class
    from robot_rl.sim import get_spec
    from robot_rl.trainer import load_run_policy

    run_dir = Path(run_dir)
    config, _, state = load_run_policy(run_dir, checkpoint)  # refuses a checkpoint of another network
    spec = get_spec(config.task)
    kind, exported, head = trainer_class(config.algo).bundle_network(config, state)

    normalizer = None
    if state.get("obs_normalizer") is not None:
        n = state["obs_normalizer"]
        normalizer = Normalizer(mean=_array(n["mean"]), var=_array(n["var"]), clip=float(n["clip"]),
                                eps=float(n["eps"]))

    from robot_rl.launch import config_to_yaml_dict

    provenance = {
        "task": config.task,
        "algorithm": config.algo,
        "steps": int(state["step"]),
        "seed": int(config.seed),
        "evaluation": None,
        "versions": package_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": run_dir.resolve().name,
        "run_evaluation": _run_evaluation(run_dir, int(state["step"]), int(config.eval.seed)),
        "training_config": config_to_yaml_dict(config),
    }
    bundle = write_bundle(out, spec=spec, kind=kind, layers=exported.layers,
                          activation=exported.activation, head=head, normalizer=normalizer,
                          provenance=provenance, onnx=onnx, force=force)
    episodes = config.eval.episodes if episodes is None else episodes
    if episodes < 0:
        raise BundleError(f"--episodes must be >= 0, got {episodes}")
    if episodes:
        seed = config.eval.seed if seed is None else seed
        result = evaluate_bundle(bundle.path, episodes, seed)
        bundle = update_provenance(bundle.path, evaluation={
            "mean_return": result["mean_return"], "std_return": result["std_return"],
            "episodes": episodes, "seed": seed, "returns": result["returns"], "runtime": "numpy",
            **{k: result[k] for k in ("success_rate", "consecutive_successes", "successes") if k in result}})
    return bundle


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _run_evaluation(run_dir: Path, step: int, seed: int) -> dict[str, Any] | None:
    """The trainer's own final evaluation (eval.json), if it was made at the exported step."""
    file = run_dir / "eval.json"
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    if data.get("step") != step:
        return None
    return {"mean_return": data.get("mean_return"), "std_return": data.get("std_return"),
            "episodes": data.get("episodes"), "seed": seed}
