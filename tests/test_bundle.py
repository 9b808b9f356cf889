"""Policy bundles: the format, every refusal, and acting worked by hand.

Bundles here are written from small hand-made networks on a hand-made spec (no training, no
simulator); tests/test_runtimes.py compares runtimes and runs, tests/test_zoo.py the shipped bundles.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.errors import RobotRLError
from robot_rl.policies import ActionError, BundleError, ObservationError, load, read_bundle
from robot_rl.policies.bundle import (
    FORMAT_VERSION,
    MANIFEST,
    ONNX,
    WEIGHTS,
    Normalizer,
    layer_keys,
    weights_npz,
    write_bundle,
)
from robot_rl.spec import ActionSpec, ObsTerm, TaskSpec, action_to_robot

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------ helpers


def toy_spec(history: int = 1, act_dim: int = 2) -> TaskSpec:
    """obs = [q (2) × history, v (2)]; joints map [-1, 1] onto [-2, 2] N·m and [0, 4] N·m."""
    low, high = [-2.0, 0.0][:act_dim], [2.0, 4.0][:act_dim]
    return TaskSpec(name="toy-v0", joint_names=("hip", "knee")[:act_dim],
                    observation=(ObsTerm("q", "q", history=history), ObsTerm("v", "v", scale=0.5)),
                    action=ActionSpec.from_bounds("torque", low, high),
                    joint_limits=((-1.0, 1.0), (-math.inf, math.inf))[:act_dim],
                    control_period=0.02, physics_dt=0.005, state_fields={"q": 2, "v": 2})


def random_layers(sizes: list[int], seed: int = 0, gain: float = 1.0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [((gain * rng.standard_normal((o, i)) / math.sqrt(i)).astype(np.float32),
             (0.1 * rng.standard_normal(o)).astype(np.float32)) for i, o in itertools.pairwise(sizes)]


def provenance(spec: TaskSpec) -> dict:
    return {"task": spec.name, "algorithm": "ppo", "steps": 1000, "seed": 1, "evaluation": None,
            "versions": {"numpy": np.__version__}, "created": "2026-01-01T00:00:00+00:00"}


def write_toy(out: Path, *, spec: TaskSpec | None = None, hidden=(8, 8), activation="tanh", squash="none",
              normalizer: Normalizer | str | None = "default", onnx: bool | None = False, layers=None,
              kind="gaussian", head=None):
    spec = spec or toy_spec()
    if normalizer == "default":
        normalizer = Normalizer(mean=np.linspace(-0.5, 0.5, spec.obs_dim),
                                var=np.linspace(0.5, 2.0, spec.obs_dim), clip=5.0, eps=1e-8)
    out_dim = spec.act_dim if kind == "gaussian" else head["num_actions"]
    layers = layers or random_layers([spec.obs_dim, *hidden, out_dim])
    head = head or {"squash": squash, "log_std": [0.0] * spec.act_dim}
    return write_bundle(out, spec=spec, kind=kind, layers=layers, activation=activation, head=head,
                        normalizer=normalizer, provenance=provenance(spec), onnx=onnx)


def manifest_of(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text())


def save_manifest(path: Path, data: dict) -> None:
    (path / MANIFEST).write_text(json.dumps(data))


def rehash(path: Path) -> None:
    """Make the manifest's sizes and hashes match the files again (a consistent but altered bundle)."""
    data = manifest_of(path)
    for name in data["files"]:
        blob = (path / name).read_bytes()
        data["files"][name] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    save_manifest(path, data)


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    write_toy(tmp_path / "b", onnx=True)
    return tmp_path / "b"


# ------------------------------------------------------------------------------------------- format


def test_written_bundle_reads_back_with_every_file_hashed(bundle_dir: Path) -> None:
    names = sorted(p.name for p in bundle_dir.iterdir())
    assert names == sorted([MANIFEST, WEIGHTS, ONNX])
    data = manifest_of(bundle_dir)
    assert data["format_version"] == FORMAT_VERSION == 1
    assert data["kind"] == "gaussian"
    assert set(data["files"]) == {WEIGHTS, ONNX}
    for name, entry in data["files"].items():
        blob = (bundle_dir / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    assert data["network"] == {"activation": "tanh", "dtype": "float32", "layers": [[8, 4], [8, 8], [2, 8]]}
    assert TaskSpec.from_dict(data["task_spec"]) == toy_spec()
    assert data["control_period"] == 0.02
    bundle = read_bundle(bundle_dir)
    written = random_layers([4, 8, 8, 2])
    for (w, b), (w0, b0) in zip(bundle.layers, written, strict=True):
        assert w.dtype == np.float32 and np.array_equal(w, w0) and np.array_equal(b, b0)


def test_manifest_is_strict_json_and_weights_are_plain_float32_arrays(bundle_dir: Path) -> None:
    text = (bundle_dir / MANIFEST).read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))
    with np.load(bundle_dir / WEIGHTS, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(k for i in range(3) for k in layer_keys(i))
        assert {npz[k].dtype for k in npz.files} == {np.dtype(np.float32)}


def test_writing_refuses_nan_in_the_manifest_and_an_existing_folder(tmp_path: Path) -> None:
    spec = toy_spec()
    bad = Normalizer(mean=np.array([0.0, math.nan, 0.0, 0.0]), var=np.ones(4), clip=5.0, eps=1e-8)
    with pytest.raises(BundleError, match=r"normalizer\.mean\[1\]"):
        write_toy(tmp_path / "nan", spec=spec, normalizer=bad)
    assert not (tmp_path / "nan").exists()
    write_toy(tmp_path / "b")
    with pytest.raises(BundleError, match="already exists"):
        write_toy(tmp_path / "b")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_normalizer_reproduces_the_training_normalizer_bit_for_bit() -> None:
    from robot_rl.normalization import ObservationNormalizer

    rng = np.random.default_rng(0)
    training = ObservationNormalizer((5,), clip=3.0)
    training.update(rng.standard_normal((100, 5)) * [1, 10, 0.1, 5, 1e-3] + [0, 3, -1, 2, 7])
    ours = Normalizer(mean=training.rms.mean, var=training.rms.var, clip=training.clip, eps=training.eps)
    obs = rng.standard_normal((1000, 5)) * 20
    assert np.array_equal(ours.normalize(obs), training.normalize(obs))


# ----------------------------------------------------------------------------------------- refusals


def _refusal(path: Path) -> str:
    with pytest.raises(BundleError) as info:
        read_bundle(path)
    assert isinstance(info.value, RobotRLError)
    return str(info.value)


def test_missing_file_is_refused_naming_it(bundle_dir: Path) -> None:
    (bundle_dir / ONNX).unlink()
    assert "policy.onnx: missing" in _refusal(bundle_dir)


def test_missing_manifest_is_refused(bundle_dir: Path) -> None:
    (bundle_dir / MANIFEST).unlink()
    assert "manifest.json is missing" in _refusal(bundle_dir)


def test_extra_file_is_refused_naming_it(bundle_dir: Path) -> None:
    (bundle_dir / "notes.txt").write_text("hello")
    assert "notes.txt: extra file not listed" in _refusal(bundle_dir)


@pytest.mark.parametrize("name", [WEIGHTS, ONNX])
def test_one_changed_byte_is_refused_naming_the_file(bundle_dir: Path, name: str) -> None:
    blob = bytearray((bundle_dir / name).read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (bundle_dir / name).write_bytes(bytes(blob))
    message = _refusal(bundle_dir)
    assert f"{name}: sha256" in message and f"files.{name}.sha256" in message


def test_truncated_weights_are_refused_by_size(bundle_dir: Path) -> None:
    blob = (bundle_dir / WEIGHTS).read_bytes()
    (bundle_dir / WEIGHTS).write_bytes(blob[:-100])
    assert f"{WEIGHTS}: {len(blob) - 100} bytes" in _refusal(bundle_dir)


def test_truncated_weights_with_matching_hashes_are_refused_as_damaged_npz(bundle_dir: Path) -> None:
    blob = (bundle_dir / WEIGHTS).read_bytes()
    (bundle_dir / WEIGHTS).write_bytes(blob[: len(blob) // 2])
    rehash(bundle_dir)
    assert "weights.npz: cannot be read as an npz archive" in _refusal(bundle_dir)


def test_pickled_arrays_are_never_unpickled(bundle_dir: Path) -> None:
    """An object array in weights.npz would need pickle: np.load(allow_pickle=False) refuses it."""
    arrays = dict(np.load(bundle_dir / WEIGHTS, allow_pickle=False))
    arrays["layers.0.weight"] = np.array([{"evil": 1}] * 4, dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (bundle_dir / WEIGHTS).write_bytes(buffer.getvalue())
    rehash(bundle_dir)
    assert "weights.npz" in _refusal(bundle_dir)


def test_unknown_format_version_is_refused_naming_it(bundle_dir: Path) -> None:
    data = manifest_of(bundle_dir)
    data["format_version"] = 2
    data["something_new"] = {}
    save_manifest(bundle_dir, data)
    message = _refusal(bundle_dir)
    assert "format_version 2 is not supported" in message and "reads format 1" in message


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d.pop("network"), "network: missing"),
    (lambda d: d.update(extra=1), "extra: unknown key"),
    (lambda d: d.update(kind="beta"), "kind: 'beta' is not valid"),
    (lambda d: d["network"].update(activation="gelu"), "network.activation"),
    (lambda d: d["network"].update(dtype="float16"), "network.dtype"),
    (lambda d: d["head"].update(squash="sigmoid"), "head.squash"),
    (lambda d: d["normalizer"].update(var=[1.0, 1.0]), "normalizer.var: has 2 entries"),
    (lambda d: d["normalizer"].update(var=[1.0, -1.0, 1.0, 1.0]), "normalizer.var: must be >= 0"),
    (lambda d: d.update(control_period=0.05), "control_period: 0.05 s disagrees"),
    (lambda d: d["task_spec"].update(obs_dim=9), "task_spec.obs_dim"),
    (lambda d: d["provenance"].update(task="other"), "provenance.task"),
    (lambda d: d["provenance"].pop("versions"), "provenance.versions: missing"),
    (lambda d: d["files"].update({"../x": d["files"]["weights.npz"]}), "files.../x: is not a bundle file"),
    (lambda d: d["files"]["weights.npz"].update(sha256="xyz"), "files.weights.npz.sha256"),
    (lambda d: d["network"].update(layers=[[8, 5], [8, 8], [2, 8]]), "input size 5 != task_spec obs_dim 4"),
    (lambda d: d["network"].update(layers=[[8, 4], [8, 7], [2, 8]]), "network.layers[1]: input size 7"),
    (lambda d: d["network"].update(layers=[[8, 4], [8, 8], [3, 8]]), "output size 3 != task_spec act_dim 2"),
])
def test_manifest_failing_its_schema_is_refused_naming_the_field(bundle_dir: Path, edit, field: str) -> None:
    data = manifest_of(bundle_dir)
    edit(data)
    save_manifest(bundle_dir, data)
    assert field in _refusal(bundle_dir)


def test_nan_in_manifest_is_not_strict_json(bundle_dir: Path) -> None:
    text = (bundle_dir / MANIFEST).read_text().replace('"clip": 5.0', '"clip": NaN')
    (bundle_dir / MANIFEST).write_text(text)
    assert "not strict JSON" in _refusal(bundle_dir)


def test_weight_shapes_disagreeing_with_the_manifest_are_refused(tmp_path: Path) -> None:
    write_toy(tmp_path / "b")
    other = random_layers([4, 8, 9, 2])  # the second layer has 9 units, the manifest says 8
    (tmp_path / "b" / WEIGHTS).write_bytes(weights_npz(other))
    rehash(tmp_path / "b")
    message = _refusal(tmp_path / "b")
    assert "layers.1.weight has shape (9, 8)" in message and "network.layers[1]" in message


def test_weights_of_another_dtype_or_with_nan_are_refused(tmp_path: Path) -> None:
    write_toy(tmp_path / "b")
    arrays = dict(np.load(tmp_path / "b" / WEIGHTS, allow_pickle=False))
    arrays["layers.2.bias"] = arrays["layers.2.bias"].astype(np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (tmp_path / "b" / WEIGHTS).write_bytes(buffer.getvalue())
    rehash(tmp_path / "b")
    assert "layers.2.bias has dtype float64" in _refusal(tmp_path / "b")
    arrays["layers.2.bias"] = np.array([0.0, np.nan], dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (tmp_path / "b" / WEIGHTS).write_bytes(buffer.getvalue())
    rehash(tmp_path / "b")
    assert "layers.2.bias holds NaN" in _refusal(tmp_path / "b")


def test_onnx_that_disagrees_with_the_weights_is_refused_by_the_onnx_runtime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    write_toy(tmp_path / "a", onnx=True)
    write_toy(tmp_path / "b", onnx=True, layers=random_layers([4, 8, 8, 2], seed=7))
    shutil.copy(tmp_path / "b" / ONNX, tmp_path / "a" / ONNX)
    rehash(tmp_path / "a")
    read_bundle(tmp_path / "a")  # consistent hashes: the file set is fine...
    with pytest.raises(BundleError, match=r"policy\.onnx: disagrees with weights\.npz"):
        load(tmp_path / "a", runtime="onnx")  # ...but the graph is not this policy


def test_cli_refusal_is_one_line_and_exit_code_2(bundle_dir: Path) -> None:
    (bundle_dir / "extra.bin").write_bytes(b"x")
    proc = subprocess.run([sys.executable, "-m", "robot_rl.cli", "eval", str(bundle_dir), "--episodes", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robot-rl: error:") and "extra.bin" in lines[0]


def test_unknown_runtime_and_zoo_name_are_refused_listing_the_choices(bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match="numpy, onnx, torch"):
        load(bundle_dir, runtime="tflite")
    with pytest.raises(BundleError, match="no such zoo bundle"):
        load("zoo:nope")


# --------------------------------------------------------------------------------- acting, by hand


def test_linear_policy_with_normaliser_and_robot_units_worked_by_hand(tmp_path: Path) -> None:
    """obs_dim 4, act_dim 2, one linear layer: every number below is worked from the formulas."""
    spec = toy_spec()
    w = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, -1.0]], dtype=np.float32)
    b = np.array([0.25, 0.0], dtype=np.float32)
    norm = Normalizer(mean=np.array([1.0, 0.0, 0.0, 0.0]), var=np.array([4.0, 1.0, 1.0, 1.0]),
                      clip=2.0, eps=0.0)
    policy = load(write_toy(tmp_path / "b", spec=spec, layers=[(w, b)], normalizer=norm).path)
    # z = clip((x - mean) / std, ±2) = [(3 - 1)/2, ., 0.25, -0.5] = [1, ., 0.25, -0.5]
    # a = W z + b = [1 + 0.25, 2·0.25 + 0.5] = [1.25, 1.0]
    # robot = offset + scale·a, clipped: hip [-2, 2] → 0 + 2·1.25 = 2.5 → 2.0; knee [0, 4] → 2 + 2·1 = 4.0
    obs = np.array([3.0, 7.0, 0.25, -0.5])
    assert policy.act_normalized(obs) == pytest.approx([1.25, 1.0], abs=1e-7)
    assert policy.act(obs) == pytest.approx([2.0, 4.0], abs=1e-7)
    # clipping of the input: x0 = 101 → z0 = 50 → 2 → a0 = 2.25; x2 = -9 → z2 = -9 → -2, a1 = -4 + 0.5 = -3.5
    obs = np.array([101.0, 0.0, -9.0, -0.5])
    assert policy.act_normalized(obs) == pytest.approx([2.25, -3.5], abs=1e-7)
    assert policy.act(obs) == pytest.approx([2.0, 0.0], abs=1e-7)
    obs = np.array([0.0, 0.0, 0.1, 0.2])  # z = [-0.5, 0, 0.1, 0.2] → a = [-0.25, 0.2 - 0.2 + 0] = [-0.25, 0]
    assert policy.act(obs) == pytest.approx([-0.5, 2.0], abs=1e-6)


def test_tanh_squash_and_relu_hidden_layer_worked_by_hand(tmp_path: Path) -> None:
    spec = toy_spec()
    w1 = np.array([[1, 0, 0, 0], [-1, 0, 0, 0]], dtype=np.float32)   # relu(x0), relu(-x0)
    w2 = np.array([[1, -1], [0, 2]], dtype=np.float32)
    zero = np.zeros(2, dtype=np.float32)
    policy = load(write_toy(tmp_path / "b", spec=spec, layers=[(w1, zero), (w2, zero)], activation="relu",
                            squash="tanh", normalizer=None).path)
    # x0 = -0.5: h = [0, 0.5]; pre = [-0.5, 1.0]; a = tanh(pre)
    a = np.tanh([-0.5, 1.0])
    assert policy.act_normalized(np.array([-0.5, 9.0, 9.0, 9.0])) == pytest.approx(a, abs=1e-7)
    assert policy.act(np.array([-0.5, 9.0, 9.0, 9.0])) == pytest.approx([2 * a[0], 2 + 2 * a[1]], abs=1e-6)


def test_elu_hidden_layer_matches_its_formula(tmp_path: Path) -> None:
    spec = toy_spec()
    w1 = np.eye(4, dtype=np.float32)
    w2 = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.float32)
    zero4, zero2 = np.zeros(4, dtype=np.float32), np.zeros(2, dtype=np.float32)
    policy = load(write_toy(tmp_path / "b", spec=spec, layers=[(w1, zero4), (w2, zero2)], activation="elu",
                            normalizer=None).path)
    x = np.array([-1.0, 2.0, -0.5, 0.0])
    elu = np.where(x > 0, x, np.expm1(x))
    assert policy.act_normalized(x) == pytest.approx([elu[0] + elu[1], elu[2] + elu[3]], abs=1e-6)


def test_argmax_head_maps_the_best_action_through_its_table(tmp_path: Path) -> None:
    spec = toy_spec()
    w = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32)  # Q = first 3 inputs
    table = [[-1.0, -1.0], [0.0, 0.5], [1.0, 1.0]]
    b = write_toy(tmp_path / "t", spec=spec, kind="argmax", layers=[(w, np.zeros(3, np.float32))],
                  normalizer=None, head={"num_actions": 3, "actions": table}, onnx=None)
    policy = load(b.path)
    assert policy.act_normalized(np.array([0.1, 0.9, 0.3, 0.0])).tolist() == [0.0, 0.5]
    assert policy.act(np.array([0.1, 0.9, 0.3, 0.0])) == pytest.approx([0.0, 3.0])  # knee: 2 + 2·0.5
    assert policy.act(np.array([5.0, 0.9, 0.3, 0.0])) == pytest.approx([-2.0, 0.0])
    q = policy.q_values(np.array([[0.1, 0.9, 0.3, 0.0]]))
    assert q == pytest.approx(np.array([[0.1, 0.9, 0.3]]))
    untabled = write_toy(tmp_path / "u", spec=spec, kind="argmax", layers=[(w, np.zeros(3, np.float32))],
                         normalizer=None, head={"num_actions": 3, "actions": None})
    assert load(untabled.path).act(np.array([0.1, 0.2, 0.3, 0.0])).tolist() == [2.0]


def test_state_mapping_builds_the_observation_through_the_spec_with_history(tmp_path: Path) -> None:
    spec = toy_spec(history=2)  # obs = [q_t, q_{t-1}, 0.5·v]
    policy = load(write_toy(tmp_path / "b", spec=spec).path)
    s1 = {"q": np.array([0.1, 0.2]), "v": np.array([1.0, -1.0])}
    s2 = {"q": np.array([0.3, 0.4]), "v": np.array([2.0, 0.0])}
    first = policy.act(s1)  # after reset, the first frame fills both history slots
    assert np.array_equal(first, policy.act(np.array([0.1, 0.2, 0.1, 0.2, 0.5, -0.5])))
    second = policy.act(s2)
    assert np.array_equal(second, policy.act(np.array([0.3, 0.4, 0.1, 0.2, 1.0, 0.0])))
    policy.reset()
    assert np.array_equal(policy.act(s2), policy.act(np.array([0.3, 0.4, 0.3, 0.4, 1.0, 0.0])))
    with pytest.raises(ObservationError, match="no field 'v'"):
        policy.act({"q": np.zeros(2)})


def test_act_returns_float64_robot_units_equal_to_the_spec_mapping(tmp_path: Path) -> None:
    spec = toy_spec()
    policy = load(write_toy(tmp_path / "b", spec=spec, hidden=(16, 16), squash="tanh").path)
    rng = np.random.default_rng(3)
    for obs in rng.standard_normal((50, 4)) * 3:
        a = policy.act(obs)
        assert a.dtype == np.float64 and a.shape == (2,)
        assert a == pytest.approx(action_to_robot(spec, policy.act_normalized(obs)), abs=1e-9)
    batch = rng.standard_normal((20, 4))
    assert policy.act_batch(batch) == pytest.approx(np.stack([policy.act(o) for o in batch]), abs=1e-6)


# --------------------------------------------------------------------------------- bad observations


@pytest.mark.parametrize("obs", [np.zeros(3), np.zeros(5), np.zeros((1, 4)), [[1, 2], [3, 4]]])
def test_observation_of_the_wrong_size_is_refused(tmp_path: Path, obs) -> None:
    policy = load(write_toy(tmp_path / "b").path)
    with pytest.raises(ObservationError, match=r"takes \(4,\)"):
        policy.act(obs)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_observation_raises_naming_index_and_term(tmp_path: Path, bad: float) -> None:
    policy = load(write_toy(tmp_path / "b").path)
    obs = np.array([0.0, 0.0, bad, 0.0])
    with pytest.raises(ObservationError, match=r"index \[2\] \(term v\)"):
        policy.act(obs)
    with pytest.raises(ObservationError, match="rows"):
        policy.act_batch(np.stack([np.zeros(4), obs]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy reports the overflow it is tested with
def test_act_never_returns_nan_even_for_absurd_observations(tmp_path: Path) -> None:
    """No normaliser, huge weights: an output overflow raises ActionError instead of returning Inf/NaN."""
    layers = random_layers([4, 8, 8, 2], gain=1e30)
    policy = load(write_toy(tmp_path / "b", layers=layers, activation="relu", normalizer=None).path)
    rng = np.random.default_rng(0)
    refused = 0
    for scale in (1.0, 1e10, 1e30, 1e200, 1e300):
        for obs in rng.standard_normal((20, 4)) * scale:
            try:
                a = policy.act(obs)
            except ActionError:
                refused += 1
                continue
            assert np.isfinite(a).all()
    assert refused > 0  # the overflow case was reached and refused


def test_with_a_normaliser_the_output_bound_proves_finiteness(tmp_path: Path) -> None:
    policy = load(write_toy(tmp_path / "b").path)
    assert policy.output_bound < 1e3  # |pre-activation| ≤ bound for any finite observation
    rng = np.random.default_rng(1)
    big = rng.standard_normal((200, 4)) * 1e300
    assert np.isfinite(policy.act_batch(big)).all()


# ------------------------------------------------------------------------------------------ the CLI


def test_export_and_eval_from_the_command_line(tmp_path: Path, capsys) -> None:
    """A 2048-step InvertedPendulum run → robot-rl export → robot-rl eval prints the run's JSON."""
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "launch" / "invertedpendulum_ppo.yaml"), "--set", "total_steps=2048",
                 "--set", "log.progress_bar=false", "--set", "log.plot=false",
                 "--set", "log.tensorboard=false", "--set", "eval.episodes=2",
                 "--out", str(run), "--json"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "b"), "--episodes", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["task"] == "InvertedPendulum-v5" and summary["steps"] == 2048
    assert summary["files"] == sorted([MANIFEST, WEIGHTS, ONNX])
    assert summary["bytes"] < 100_000
    for path in (run, tmp_path / "b"):
        assert main(["eval", str(path), "--episodes", "2", "--json"]) == 0
    run_json, bundle_json = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert set(run_json) == set(bundle_json) == {"mean_return", "std_return", "episodes"}
    assert bundle_json == pytest.approx(run_json)
    assert main(["export", str(run), "--out", str(tmp_path / "b"), "--episodes", "0"]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(run), "--out", str(tmp_path / "b"), "--episodes", "0", "--no-onnx",
                 "--force"]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [MANIFEST, WEIGHTS]
    assert manifest_of(tmp_path / "b")["provenance"]["evaluation"] is None
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
