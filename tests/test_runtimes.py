"""The three runtimes agree, the numpy one runs without torch, nothing unpickles, and a bundle
evaluates like the run it was exported from."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_rl.policies import RUNTIMES, load, zoo_names
from robot_rl.policies.bundle import ONNX, Normalizer, write_bundle
from robot_rl.spec import ActionSpec, ObsTerm, TaskSpec

ROOT = Path(__file__).resolve().parents[1]
PARITY_TOLERANCE = 1e-5
N_OBS = 10_000

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")


def _spec() -> TaskSpec:
    return TaskSpec(name="toy-v0", joint_names=("a", "b", "c"),
                    observation=(ObsTerm("q", "q"), ObsTerm("v", "v", clip=(-5.0, 5.0))),
                    action=ActionSpec.from_bounds("torque", [-1.0, -2.0, 0.0], [1.0, 2.0, 3.0]),
                    joint_limits=((-1.0, 1.0),) * 3, control_period=0.01, physics_dt=0.01,
                    state_fields={"q": 5, "v": 6})


def _synthetic(out: Path, *, activation: str, squash: str = "none", normalized: bool = True,
               kind: str = "gaussian", hidden=(64, 64), onnx: bool = True):
    spec = _spec()
    rng = np.random.default_rng(len(str(out)))
    out_dim = spec.act_dim if kind == "gaussian" else 5
    sizes = [spec.obs_dim, *hidden, out_dim]
    layers = [((rng.standard_normal((o, i)) / math.sqrt(i)).astype(np.float32),
               (0.2 * rng.standard_normal(o)).astype(np.float32)) for i, o in itertools.pairwise(sizes)]
    normalizer = None
    if normalized:
        normalizer = Normalizer(mean=rng.standard_normal(spec.obs_dim) * 3,
                                var=rng.uniform(1e-4, 9, spec.obs_dim), clip=10.0, eps=1e-8)
    head = {"squash": squash, "log_std": [0.0] * 3} if kind == "gaussian" else \
        {"num_actions": 5, "actions": rng.uniform(-1, 1, (5, 3)).tolist()}
    return write_bundle(out, spec=spec, kind=kind, layers=layers, activation=activation, head=head,
                        normalizer=normalizer, onnx=onnx,
                        provenance={"task": spec.name, "algorithm": "ppo", "steps": None, "seed": None,
                                    "evaluation": None, "versions": {}, "created": "now"}).path


SYNTHETIC = {
    "tanh": dict(activation="tanh"),
    "relu-squashed": dict(activation="relu", squash="tanh"),
    "elu-256x256": dict(activation="elu", hidden=(256, 256)),
    "no-normalizer": dict(activation="tanh", normalized=False),
    "single-layer": dict(activation="tanh", hidden=()),
    "argmax": dict(activation="relu", kind="argmax"),
    "no-onnx-file": dict(activation="tanh", onnx=False),  # the onnx runtime builds the graph in memory
}


def _observations(policy, n: int, seed: int = 0) -> np.ndarray:
    """Random observations around the training distribution, a fraction far outside it (clipped)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, policy.obs_dim)) * rng.choice([0.5, 1.0, 3.0, 30.0], size=(n, 1))
    norm = policy.manifest.normalizer
    return z if norm is None else norm.mean + np.sqrt(norm.var) * z


def _close(got: np.ndarray, expected: np.ndarray, tolerance: float, relative: bool) -> bool:
    """|got − expected| ≤ tolerance, or ≤ tolerance · max(1, |expected|) where `relative`."""
    bound = tolerance * (np.maximum(1.0, np.abs(expected)) if relative else 1.0)
    return bool((np.abs(got - expected) <= bound).all())


def _assert_parity(path: Path, relative: bool = False) -> None:
    """numpy, onnx and torch within 1e-5 (zoo: absolute, on actions of order 1; synthetic networks with
    large outputs: relative to max(1, |output|), as float32 round-off grows with the magnitude)."""
    policies = {rt: load(path, runtime=rt) for rt in RUNTIMES}
    obs = _observations(policies["numpy"], N_OBS)
    reference = policies["torch"]
    if reference.kind == "argmax":
        q = {rt: p.q_values(obs) for rt, p in policies.items()}
        for rt in RUNTIMES:
            assert _close(q[rt], q["torch"], PARITY_TOLERANCE, relative), rt
        return
    normalized = {rt: p.act_batch(obs, normalized=True) for rt, p in policies.items()}
    robot = {rt: p.act_batch(obs) for rt, p in policies.items()}
    robot_tolerance = PARITY_TOLERANCE * np.max(reference._scale)  # robot units = offset + scale · action
    for rt in RUNTIMES:
        assert _close(normalized[rt], normalized["torch"], PARITY_TOLERANCE, relative), rt
        assert _close(robot[rt], robot["torch"], robot_tolerance, relative), rt
    # the per-step path (one observation at a time) agrees with the batch path
    for rt, p in policies.items():
        one = np.stack([p.act(o) for o in obs[:200]])
        assert _close(one, robot[rt][:200], robot_tolerance, relative), rt


@pytest.mark.parametrize("name", zoo_names())
def test_runtimes_agree_on_every_zoo_bundle(name: str) -> None:
    # outputs beyond 1 (the quadruped's means reach ~5) are held relative to their size, as the synthetic
    # large-output bundles are: float32 round-off grows with the magnitude; within 1 nothing changes
    _assert_parity(ROOT / "policies" / "zoo" / name, relative=True)


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_runtimes_agree_on_every_head_and_activation(tmp_path: Path, name: str) -> None:
    _assert_parity(_synthetic(tmp_path / name, **SYNTHETIC[name]), relative=True)


def test_zoo_is_not_empty() -> None:
    assert len(zoo_names()) >= 3


def test_onnx_graph_takes_raw_observations_and_folds_the_normaliser(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    path = _synthetic(tmp_path / "b", activation="tanh", squash="tanh")
    model = onnx.load_from_string((path / ONNX).read_bytes())
    assert [i.name for i in model.graph.input] == ["observation"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert [o.name for o in model.graph.output] == ["action"]
    assert {"Sub", "Div", "Clip", "Gemm", "Tanh"} <= {n.op_type for n in model.graph.node}
    session = ort.InferenceSession(str(path / ONNX), providers=["CPUExecutionProvider"])
    policy = load(path)
    obs = _observations(policy, 64)
    direct = session.run(None, {"observation": obs})[0]
    assert np.max(np.abs(direct - policy.act_batch(obs, normalized=True))) <= PARITY_TOLERANCE


def test_loading_never_unpickles(tmp_path: Path, monkeypatch) -> None:
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("a bundle was unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    path = _synthetic(tmp_path / "b", activation="tanh")
    for rt in RUNTIMES:
        assert np.isfinite(load(path, runtime=rt).act(np.zeros(11))).all()


_NO_TORCH = """
import importlib.abc, sys
BLOCKED = ("torch", "onnx", "onnxruntime", "mujoco", "gymnasium", "dm_control", "yaml")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit("torch was importable")
import json
import numpy as np
from robot_rl.policies import load, zoo_names
out = {}
for name in zoo_names():
    policy = load("zoo:" + name)
    zero = np.zeros(policy.obs_dim)
    a = policy.act(zero)
    assert a.shape == (policy.act_dim,) and np.isfinite(a).all()
    if not policy.spec.goal_fields and not any(t.offset or t.frame for t in policy.spec.observation):
        # a zero state observes as zeros only without goals (a zero quaternion is no orientation) or offsets
        state = {field: np.zeros(size) for field, size in policy.spec.state_fields.items()}
        assert np.array_equal(a, policy.act(state))
    out[name] = a.tolist()
try:
    load("zoo:" + zoo_names()[0], runtime="torch")
except Exception as err:
    out["torch_runtime_error"] = type(err).__name__ + ": " + str(err)
out["heavy"] = sorted(m for m in BLOCKED if m in sys.modules)
print(json.dumps(out))
"""


def test_numpy_runtime_runs_with_torch_absent() -> None:
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH], capture_output=True, text=True, cwd="/",
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(zoo_names()) <= set(out)
    assert out["heavy"] == []
    assert out["torch_runtime_error"].startswith("BundleError: runtime 'torch' is not available")
    for name in zoo_names():  # the same actions as with torch present
        policy = load(f"zoo:{name}")
        assert out[name] == policy.act(np.zeros(policy.obs_dim)).tolist()


# ------------------------------------------------------------------------- the run and its bundle


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """A 2048-step PPO run on InvertedPendulum-v5, exported with the run's eval seed and episodes."""
    from robot_rl.export import export_run
    from robot_rl.launch import load_train_config
    from robot_rl.trainer import Trainer

    folder = tmp_path_factory.mktemp("tiny")
    config = load_train_config(ROOT / "launch" / "invertedpendulum_ppo.yaml",
                               ["total_steps=2048", "log.progress_bar=false", "log.plot=false",
                                "log.tensorboard=false", "eval.episodes=5"])
    Trainer(config, folder / "run").train()
    export_run(folder / "run", folder / "bundle")
    return folder / "run", folder / "bundle"


def test_bundle_evaluates_like_its_run_for_the_same_seed(tiny_run) -> None:
    from robot_rl.evaluation import evaluate
    from robot_rl.trainer import load_run_policy

    run, bundle = tiny_run
    config, run_policy, _ = load_run_policy(run)
    seed, episodes = config.eval.seed, config.eval.episodes
    expected = evaluate(config.task, run_policy, episodes, seed)
    run_json = json.loads((run / "eval.json").read_text())
    assert run_json["returns"] == expected["returns"]  # the run's own evaluation is reproducible
    # the torch runtime does the training actor's float32 arithmetic: the same returns, bit for bit
    torch_policy = load(bundle, runtime="torch")
    got = evaluate(config.task, torch_policy.act_normalized, episodes, seed)
    assert got["returns"] == expected["returns"]
    # numpy and onnx differ from torch's float32 by round-off (~1e-7): returns agree to 1e-6 relative
    for rt in ("numpy", "onnx"):
        got = evaluate(config.task, load(bundle, runtime=rt).act_normalized, episodes, seed)
        assert got["returns"] == pytest.approx(expected["returns"], rel=1e-6), rt
        assert got["lengths"] == expected["lengths"], rt
    recorded = json.loads((bundle / "manifest.json").read_text())["provenance"]
    assert recorded["evaluation"]["seed"] == seed and recorded["evaluation"]["episodes"] == episodes
    assert recorded["evaluation"]["mean_return"] == pytest.approx(expected["mean_return"], rel=1e-6)
    assert recorded["run_evaluation"]["mean_return"] == run_json["mean_return"]
    assert recorded["steps"] == 2048 and recorded["algorithm"] == "ppo"


def test_exported_weights_are_the_checkpoints_actor(tiny_run) -> None:
    import torch

    from robot_rl.checkpoint import load_latest_checkpoint

    run, bundle = tiny_run
    state, _ = load_latest_checkpoint(run)
    actor = state["agent"]["actor"]
    layers = load(bundle).bundle.layers
    linear = sorted(k for k in actor if k.endswith(".weight"))
    assert len(linear) == len(layers)
    for key, (w, b) in zip(linear, layers, strict=True):
        assert torch.equal(actor[key], torch.from_numpy(w))
        assert torch.equal(actor[key.replace("weight", "bias")], torch.from_numpy(b))
    norm = load(bundle).manifest.normalizer
    assert np.array_equal(norm.mean, state["obs_normalizer"]["mean"].numpy())
    assert np.array_equal(norm.var, state["obs_normalizer"]["var"].numpy())
