"""Nothing unbounded (issue 15): a small hostile file or a typo in a size is one error line, checked
before anything is allocated or decompressed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.errors import ConfigError
from robot_rl.launch import load_train_config
from robot_rl.policies import read_bundle
from robot_rl.policies.bundle import MANIFEST, WEIGHTS, BundleError, write_bundle

ROOT = Path(__file__).resolve().parents[1]
PENDULUM_PPO = ROOT / "launch" / "invertedpendulum_ppo.yaml"
ZOO_BUNDLE = ROOT / "policies" / "zoo" / "InvertedPendulum-v5_ppo"


def _one_error_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------------- launch files


def test_yaml_aliases_are_refused_before_they_expand(tmp_path: Path, capsys) -> None:
    # nested mappings of aliases: 10^6 mappings once copied (config.apply_overrides copied them all)
    lines = ["a0: &a0 {" + ", ".join(f"k{j}: x" for j in range(10)) + "}"]
    lines += [f"a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(10)) + "}" for i in range(1, 7)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("task: InvertedPendulum-v5\nalgo: ppo\n" + "\n".join(lines) + "\n")
    assert bomb.stat().st_size < 2000
    tracemalloc.start()
    err = _one_error_line(capsys, "train", str(bomb), "--set", "seed=2")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "aliases" in err and "line 4" in err
    assert peak < 50 << 20


def test_a_huge_sparse_launch_file_is_refused_by_its_size(tmp_path: Path, capsys) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(1 << 40)  # 1 TiB, sparse: no disk used
    assert "at most" in _one_error_line(capsys, "train", str(big))


@pytest.mark.parametrize(("override", "key"), [
    ("policy.hidden=[1000000000]", "policy.hidden"),
    ("policy.critic_hidden=[64, 0]", "policy.critic_hidden"),
    ("torch_threads=100000", "torch_threads"),
    ("num_envs=10000000", "num_envs"),
    ("seed=36893488147419103232", "seed"),
])
def test_sizes_have_documented_upper_bounds(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: .*(must be|at most)"):
        load_train_config(PENDULUM_PPO, [override])


def test_a_replay_buffer_larger_than_the_machine_is_refused_before_allocation(tmp_path: Path,
                                                                             capsys) -> None:
    err = _one_error_line(capsys, "train", str(ROOT / "launch" / "cartpole_dqn.yaml"), "--out",
                          str(tmp_path / "run"), "--set", "dqn.buffer_size=1000000000000",
                          "--set", "dqn.batch_size=64")
    assert "dqn.buffer_size" in err and "GiB" in err


def test_tabular_episodes_and_grid_sizes_are_bounded(capsys) -> None:
    assert "episodes" in _one_error_line(capsys, "tabular", "q-learning", "--episodes", str(10**12))
    assert "at most" in _one_error_line(capsys, "tabular", "vi", "--grid", "open:1000000")


# ------------------------------------------------------------------------------------------- bundles


def _copy_zoo(tmp_path: Path) -> Path:
    b = read_bundle(ZOO_BUNDLE)
    m = b.manifest
    return write_bundle(tmp_path / "b", spec=m.spec, kind=m.kind, layers=b.layers, activation=m.activation,
                        head=dict(m.head), normalizer=m.normalizer, provenance=dict(m.provenance),
                        onnx=False).path


def _replace_weights(bundle: Path, blob: bytes, declared: int | None = None) -> None:
    """Write weights.npz and make the manifest agree (hashes recomputed, as anyone can)."""
    (bundle / WEIGHTS).write_bytes(blob)
    data = json.loads((bundle / MANIFEST).read_text())
    data["files"][WEIGHTS] = {"sha256": hashlib.sha256(blob).hexdigest(),
                              "bytes": len(blob) if declared is None else declared}
    (bundle / MANIFEST).write_text(json.dumps(data))


def test_an_extra_array_in_weights_is_refused_before_it_is_decompressed(tmp_path: Path) -> None:
    bundle = _copy_zoo(tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO((bundle / WEIGHTS).read_bytes())) as src, \
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        extra = io.BytesIO()
        np.lib.format.write_array(extra, np.zeros(16 << 18, dtype=np.float32))  # 16 MiB of zeros
        dst.writestr("extra.npy", extra.getvalue())
    blob = buffer.getvalue()
    assert len(blob) < 46_000  # within the size the manifest's network allows: the zip directory refuses it
    _replace_weights(bundle, blob)
    tracemalloc.start()
    with pytest.raises(BundleError, match=r"unexpected array 'extra\.npy'"):
        read_bundle(bundle)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 << 20  # the 16 MiB array was never decompressed


def test_an_npy_header_declaring_a_huge_shape_is_refused(tmp_path: Path) -> None:
    bundle = _copy_zoo(tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO((bundle / WEIGHTS).read_bytes())) as src, \
            zipfile.ZipFile(buffer, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "layers.0.bias.npy":
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                             "shape": (10**15,)})
                data = header.getvalue() + data[128:]
            dst.writestr(info.filename, data)
    _replace_weights(bundle, buffer.getvalue())
    with pytest.raises(BundleError, match=r"layers\.0\.bias has shape \(1000000000000000,\)"):
        read_bundle(bundle)


def test_a_huge_sparse_weights_file_is_refused_by_its_size(tmp_path: Path) -> None:
    bundle = _copy_zoo(tmp_path)
    with open(bundle / WEIGHTS, "r+b") as f:
        f.truncate(1 << 40)
    _replace_weights(bundle, b"", declared=1 << 40)
    with open(bundle / WEIGHTS, "r+b") as f:  # _replace_weights wrote the file: make it 1 TiB again
        f.truncate(1 << 40)
    with pytest.raises(BundleError, match="fits in"):
        read_bundle(bundle)


def test_a_deeply_nested_or_huge_manifest_is_refused(tmp_path: Path) -> None:
    bundle = _copy_zoo(tmp_path)
    (bundle / MANIFEST).write_text('{"format_version": 1, "kind": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BundleError, match="nested 100001 levels deep"):
        read_bundle(bundle)
    with open(bundle / MANIFEST, "r+b") as f:
        f.truncate(1 << 40)
    with pytest.raises(BundleError, match="at most"):
        read_bundle(bundle)


def test_a_symlink_inside_a_bundle_is_refused_without_reading_its_target(tmp_path: Path) -> None:
    bundle = _copy_zoo(tmp_path)
    outside = tmp_path / "outside.npz"
    os.replace(bundle / WEIGHTS, outside)
    (bundle / WEIGHTS).symlink_to(outside)  # the same bytes, hashes match: still refused
    with pytest.raises(BundleError, match="symbolic link"):
        read_bundle(bundle)
    (bundle / WEIGHTS).unlink()
    (bundle / WEIGHTS).symlink_to("/etc/passwd")
    with pytest.raises(BundleError) as err:
        read_bundle(bundle)
    size = str(os.path.getsize("/etc/passwd"))
    assert "symbolic link" in str(err.value) and f" {size} " not in str(err.value)
