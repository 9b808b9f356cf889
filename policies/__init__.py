"""Deployable policy bundles: format, validation, runtimes (numpy, onnxruntime, torch) and a zoo.

    from robot_rl.policies import load
    policy = load("zoo:Hopper-v5_ppo")          # or a bundle folder; runtime="numpy" by default
    action = policy.act(observation_or_state)   # robot units, (act_dim,) float64

Importing this package needs numpy only: torch and onnxruntime are imported by their runtimes, on use.
The format and its refusals are described in `robot_rl.policies.bundle`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from robot_rl.policies.bundle import (
    FORMAT_VERSION,
    ActionError,
    Bundle,
    BundleError,
    ObservationError,
    Policy,
    read_bundle,
)

RUNTIMES = ("numpy", "onnx", "torch")
ZOO = Path(__file__).resolve().parent / "zoo"
ZOO_PREFIX = "zoo:"

__all__ = ["FORMAT_VERSION", "RUNTIMES", "ActionError", "Bundle", "BundleError", "ObservationError",
           "Policy", "load", "read_bundle", "resolve", "zoo_names"]


def zoo_names() -> list[str]:
    """Names of the bundles shipped in the zoo (`<task>_<algo>`), for `load("zoo:<name>")`."""
    if not ZOO.is_dir():
        return []
    return sorted(p.name for p in ZOO.iterdir() if (p / "manifest.json").is_file())


def resolve(path: str | Path) -> Path:
    """A bundle folder, or `zoo:<name>` for a shipped bundle (an unknown name lists the valid ones)."""
    text = str(path)
    if text.startswith(ZOO_PREFIX):
        name = text[len(ZOO_PREFIX):]
        if name not in zoo_names():
            raise BundleError(f"{text}: no such zoo bundle; the zoo has: {', '.join(zoo_names()) or 'none'}")
        return ZOO / name
    return Path(path)


def load(path: str | Path, runtime: str = "numpy") -> Policy:
    """Read and verify a bundle (schema, hashes, shapes) and return its `Policy` on `runtime`."""
    if runtime not in RUNTIMES:
        raise BundleError(f"runtime: {runtime!r} is not valid; choose one of: {', '.join(RUNTIMES)}")
    bundle = read_bundle(resolve(path))
    try:
        module = importlib.import_module(f"robot_rl.policies.runtime_{runtime}")
    except ImportError as err:
        raise BundleError(f"runtime {runtime!r} is not available here: {err}") from None
    return module.policy_from_bundle(bundle)
