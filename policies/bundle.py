"""The policy bundle: one self-describing, tamper-evident folder a robot runs with numpy alone.

Layout (format version 1)::

    manifest.json   what the policy is: format version, kind and head, the task spec, the observation
                    normaliser, the network's layer shapes and activation, the control period,
                    provenance, and the sha256 and size of every other file
    weights.npz     the layers as float32 arrays `layers.<i>.weight` (out, in) and `layers.<i>.bias`
                    (out,), read with `allow_pickle=False`
    policy.onnx     optional: the same network with the normaliser folded in (see runtime_onnx)

The manifest is not hashed (it holds the hashes), so provenance can be completed after the weights are
written. Reading is strict and reads every file into memory once, so the bytes that are hashed are the
bytes that are used: a missing or unlisted file, a size or hash mismatch, a damaged npz, an unknown
format version, a manifest that fails its schema, or weights whose shapes disagree with the manifest
or the spec are each refused with a `BundleError` that names the file and field. Nothing unpickles.

A `Policy` runs a loaded bundle. `act(x)` takes the observation vector `(obs_dim,)` or a robot state
mapping (built through the spec's observation terms, with history; `reset()` forgets it) and returns
the deterministic action in robot units `(act_dim,)` float64 (`robot_rl.spec.action_to_robot`); for a
relative ("position_delta") spec, the target change of this step, `scale * action` (a control loop
integrates `act_normalized` with `robot_rl.spec.TargetIntegrator` instead).
An observation of the wrong size, or one holding NaN/Inf, raises `ObservationError`; `act` never
returns NaN: a non-finite network output (possible only from absurd observations, e.g. beyond float32
range without a normaliser) raises `ActionError`. Raising is chosen over a silent "safe" action
because what is safe depends on the robot: the hardware layer's safety filter catches these
`BundleError`s and holds its own safe action.

manifest.json (strict JSON; unknown keys are refused except inside `provenance`)::

    format_version  1
    kind            "gaussian" | "argmax"
    task_spec       TaskSpec.to_dict(): joints in policy order, observation terms, action kind, scale,
                    offset and limits, joint limits, control period, physics dt, state fields, and
                    `state_joints`: every joint a robot driver must publish (those forming qpos/qvel)
    control_period  seconds (equal to task_spec.control_period)
    normalizer      {"mean": [obs_dim], "var": [obs_dim], "clip": c, "eps": e} or null
    network         {"activation": "tanh"|"relu"|"elu", "dtype": "float32", "layers": [[out, in], ...]}
    head            gaussian: {"squash": "none"|"tanh", "log_std": [act_dim] or null}
                    argmax:   {"num_actions": n, "actions": [[act_dim] × n] or null}
    provenance      {"task", "algorithm", "steps", "seed", "evaluation": {"mean_return", "std_return",
                    "episodes", "seed", ...} or null, "versions": {package: version}, "created", ...}
    files           {"weights.npz": {"sha256", "bytes"}, "policy.onnx": {...}}

Kinds: "gaussian" (PPO, TRPO, VPG, REINFORCE): the deterministic action is the Gaussian mean, tanh-
squashed if trained so, in the policy's normalised space [-1, 1]. "argmax" (DQN): the network outputs
one Q-value per discrete action; the action is the argmax index, mapped through the head's optional
`actions` table (one normalised action per index, `(num_actions, act_dim)`) to robot units; without a
table, `act` returns the index as a `(1,)` float64 array.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import RobotRLError
from robot_rl.spec import ObservationBuilder, SpecError, TaskSpec

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
ONNX = "policy.onnx"
#: Files a manifest may list besides itself (weights required, onnx optional).
KNOWN_FILES = (WEIGHTS, ONNX)
KINDS = ("gaussian", "argmax")
SQUASHES = ("none", "tanh")
ACTIVATIONS = ("tanh", "relu", "elu")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Bounds checked before anything is read or decompressed (a bundle is untrusted input).
MAX_MANIFEST_BYTES = 16 << 20
"""Largest manifest.json read (a 348-input normaliser takes ~20 KiB)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of the manifest's objects and lists (the format's own: 5)."""
MAX_PARAMETERS = 50_000_000
"""Most network parameters (weights and biases) a bundle may declare: 200 MB of float32."""
_NPY_HEADER_MAX = 4096
"""Bytes an .npy member may hold besides its data (magic, version and header dict)."""


class BundleError(RobotRLError):
    """A bundle (or what it was given) is refused; the message names the file and the field."""


class ObservationError(BundleError, ValueError):
    """An observation given to `act` has the wrong size or holds NaN/Inf."""


class ActionError(BundleError, ArithmeticError):
    """The network produced a non-finite action; it is never returned."""


# --------------------------------------------------------------------------------------------------
# The manifest, parsed


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """obs ↦ clip((obs − mean) / sqrt(var + eps), ±clip), as training's `ObservationNormalizer`."""

    mean: np.ndarray
    """`(obs_dim,)` float64."""
    var: np.ndarray
    """`(obs_dim,)` float64, ≥ 0."""
    clip: float
    eps: float

    @property
    def std(self) -> np.ndarray:
        """sqrt(var + eps), `(obs_dim,)` float64: the divisor (computed as training computes it)."""
        return np.sqrt(self.var + self.eps)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """`(..., obs_dim)` raw → normalised float32, bit-identical to training's normaliser."""
        scaled = (np.asarray(obs, dtype=np.float64) - self.mean) / self.std
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "clip": self.clip, "eps": self.eps}


@dataclasses.dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A validated manifest.json. `data` is the JSON object itself."""

    format_version: int
    kind: str
    spec: TaskSpec
    normalizer: Normalizer | None
    activation: str
    layer_shapes: tuple[tuple[int, int], ...]
    """`(out_dim, in_dim)` of each layer, input first."""
    head: Mapping[str, Any]
    """gaussian: {"squash": "none"|"tanh", "log_std": [...]}; argmax: {"num_actions", "actions"}."""
    provenance: Mapping[str, Any]
    files: Mapping[str, FileEntry]
    data: Mapping[str, Any]

    @property
    def squash(self) -> str:
        return str(self.head.get("squash", "none"))

    @property
    def out_dim(self) -> int:
        return self.layer_shapes[-1][0]

    @property
    def control_period(self) -> float:
        return self.spec.control_period


def layer_keys(index: int) -> tuple[str, str]:
    """Names of layer `index`'s weight and bias arrays in weights.npz."""
    return f"layers.{index}.weight", f"layers.{index}.bias"


def parse_manifest(data: Any, where: str = MANIFEST) -> Manifest:
    """Validate a manifest's JSON object against the format-1 schema; errors name the field."""
    # the version first: another version's manifest may have another schema
    _need(isinstance(data, dict), where, "manifest", f"expected an object, got {type(data).__name__}")
    _need("format_version" in data, where, "format_version", "missing")
    version = data["format_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise BundleError(f"{where}: format_version: expected an integer, got {version!r}")
    if version != FORMAT_VERSION:
        raise BundleError(f"{where}: format_version {version} is not supported: this robot_rl reads "
                          f"format {FORMAT_VERSION} (a newer robot_rl may read this bundle)")
    d = _obj(data, where, "", ("format_version", "kind", "task_spec", "control_period", "normalizer",
                                "network", "head", "provenance", "files"))
    kind = d["kind"]
    _need(kind in KINDS, where, "kind", f"{kind!r} is not valid; choose one of: {', '.join(KINDS)}")
    try:
        spec = TaskSpec.from_dict(d["task_spec"])
    except SpecError as err:
        raise BundleError(f"{where}: task_spec.{err}") from None
    period = _num(d["control_period"], where, "control_period")
    _need(period == spec.control_period, where, "control_period",
          f"{period} s disagrees with task_spec.control_period {spec.control_period} s")

    normalizer = None
    if d["normalizer"] is not None:
        n = _obj(d["normalizer"], where, "normalizer.", ("mean", "var", "clip", "eps"))
        mean = _vector(n["mean"], where, "normalizer.mean", spec.obs_dim)
        var = _vector(n["var"], where, "normalizer.var", spec.obs_dim)
        _need(bool((var >= 0).all()), where, "normalizer.var", "must be >= 0")
        clip, eps = _num(n["clip"], where, "normalizer.clip"), _num(n["eps"], where, "normalizer.eps")
        _need(clip > 0, where, "normalizer.clip", f"must be > 0, got {clip}")
        _need(eps >= 0, where, "normalizer.eps", f"must be >= 0, got {eps}")
        _need(bool((var + eps > 0).all()), where, "normalizer.var", "var + eps must be > 0 everywhere")
        normalizer = Normalizer(mean, var, clip, eps)

    net = _obj(d["network"], where, "network.", ("activation", "layers", "dtype"))
    _need(net["activation"] in ACTIVATIONS, where, "network.activation",
          f"{net['activation']!r} is not valid; choose one of: {', '.join(ACTIVATIONS)}")
    _need(net["dtype"] == "float32", where, "network.dtype", f"{net['dtype']!r}: only float32 is read")
    _need(isinstance(net["layers"], list) and len(net["layers"]) > 0, where, "network.layers",
          "must be a non-empty list of [out_dim, in_dim]")
    shapes: list[tuple[int, int]] = []
    for i, s in enumerate(net["layers"]):
        key = f"network.layers[{i}]"
        _need(isinstance(s, list) and len(s) == 2 and all(_is_int(v) and v >= 1 for v in s), where, key,
              f"must be [out_dim, in_dim] of positive integers, got {s!r}")
        if i:
            _need(s[1] == shapes[-1][0], where, key,
                  f"input size {s[1]} != network.layers[{i - 1}]'s output size {shapes[-1][0]}")
        shapes.append((int(s[0]), int(s[1])))
    _need(shapes[0][1] == spec.obs_dim, where, "network.layers[0]",
          f"input size {shapes[0][1]} != task_spec obs_dim {spec.obs_dim}")
    _need(parameter_count(shapes) <= MAX_PARAMETERS, where, "network.layers",
          f"{parameter_count(shapes)} parameters; a bundle holds at most {MAX_PARAMETERS}")

    head = _parse_head(kind, d["head"], where, spec, shapes[-1][0])
    provenance = _obj(d["provenance"], where, "provenance.", ("task", "algorithm", "steps", "seed",
                                                              "evaluation", "versions", "created"),
                      open_ended=True)
    _need(provenance["task"] == spec.name, where, "provenance.task",
          f"{provenance['task']!r} != task_spec.name {spec.name!r}")
    for key in ("steps", "seed"):
        _need(provenance[key] is None or _is_int(provenance[key]), where, f"provenance.{key}",
              f"must be an integer or null, got {provenance[key]!r}")
    if provenance["evaluation"] is not None:
        ev = _obj(provenance["evaluation"], where, "provenance.evaluation.",
                  ("mean_return", "std_return", "episodes", "seed"), open_ended=True)
        for key in ("mean_return", "std_return"):
            _num(ev[key], where, f"provenance.evaluation.{key}")
        for key in ("episodes", "seed"):
            _need(_is_int(ev[key]), where, f"provenance.evaluation.{key}", "must be an integer")

    files_raw = d["files"]
    _need(isinstance(files_raw, dict), where, "files", "must be an object: file name -> {sha256, bytes}")
    files = {}
    for name, entry in files_raw.items():
        _need(name in KNOWN_FILES, where, f"files.{name}",
              f"is not a bundle file; a manifest lists: {', '.join(KNOWN_FILES)}")
        e = _obj(entry, where, f"files.{name}.", ("sha256", "bytes"))
        _need(isinstance(e["sha256"], str) and bool(_SHA256.match(e["sha256"])), where,
              f"files.{name}.sha256", "must be 64 lower-case hex digits")
        _need(_is_int(e["bytes"]) and e["bytes"] >= 0, where, f"files.{name}.bytes",
              "must be a non-negative integer")
        files[name] = FileEntry(e["sha256"], int(e["bytes"]))
    _need(WEIGHTS in files, where, "files", f"must list {WEIGHTS}")
    return Manifest(format_version=version, kind=kind, spec=spec, normalizer=normalizer,
                    activation=net["activation"], layer_shapes=tuple(shapes), head=head,
                    provenance=provenance, files=files, data=d)


def _parse_head(kind: str, data: Any, where: str, spec: TaskSpec, out_dim: int) -> dict[str, Any]:
    if kind == "gaussian":
        h = _obj(data, where, "head.", ("squash", "log_std"))
        _need(h["squash"] in SQUASHES, where, "head.squash",
              f"{h['squash']!r} is not valid; choose one of: {', '.join(SQUASHES)}")
        if h["log_std"] is not None:
            _vector(h["log_std"], where, "head.log_std", spec.act_dim)
        _need(out_dim == spec.act_dim, where, "network.layers[-1]",
              f"output size {out_dim} != task_spec act_dim {spec.act_dim}")
        return h
    h = _obj(data, where, "head.", ("num_actions", "actions"))
    n = h["num_actions"]
    _need(_is_int(n) and n >= 2, where, "head.num_actions", f"must be an integer >= 2, got {n!r}")
    _need(out_dim == n, where, "network.layers[-1]", f"output size {out_dim} != head.num_actions {n}")
    if h["actions"] is not None:
        rows = h["actions"]
        _need(isinstance(rows, list) and len(rows) == n, where, "head.actions",
              f"must hold one row per action ({n})")
        for i, row in enumerate(rows):
            _vector(row, where, f"head.actions[{i}]", spec.act_dim)
    return h


# --------------------------------------------------------------------------------------------------
# Reading


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A bundle read and verified: the manifest, the layers and the verified bytes of every file."""

    path: Path
    manifest: Manifest
    layers: list[tuple[np.ndarray, np.ndarray]]
    """`(W (out, in), b (out,))` float32, input layer first."""
    files: Mapping[str, bytes]

    @property
    def spec(self) -> TaskSpec:
        return self.manifest.spec


def read_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle folder: schema, file set, sizes, hashes, arrays and shapes."""
    root = Path(path)
    if not root.is_dir():
        what = "a file" if root.exists() else "no such directory"
        raise BundleError(f"{root}: not a bundle folder ({what}; a bundle is the folder holding {MANIFEST})")
    manifest_file = root / MANIFEST
    if not manifest_file.is_file() and not manifest_file.is_symlink():
        raise BundleError(f"{root}: {MANIFEST} is missing: not a policy bundle")
    where = str(manifest_file)
    _check_plain_file(manifest_file, MAX_MANIFEST_BYTES)
    raw = manifest_file.read_bytes()[: MAX_MANIFEST_BYTES + 1]
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise BundleError(f"{where}: nested {depth} levels deep; a manifest nests at most {MAX_JSON_DEPTH}")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as err:
        raise BundleError(f"{where}: not strict JSON: {err}") from None
    manifest = parse_manifest(data, where)

    present = {p.name for p in root.iterdir()}
    missing = sorted(set(manifest.files) - present)
    if missing:
        raise BundleError(f"{root / missing[0]}: missing (listed in {MANIFEST})")
    extra = sorted(present - set(manifest.files) - {MANIFEST})
    if extra:
        raise BundleError(f"{root / extra[0]}: extra file not listed in {MANIFEST}; a bundle holds only "
                          f"the files its manifest hashes")
    blobs = {}
    for name, entry in manifest.files.items():
        file = root / name
        limit = file_size_bound(manifest, name)
        if entry.bytes > limit:
            raise BundleError(f"{where}: files.{name}.bytes = {entry.bytes}; the network it declares "
                              f"({parameter_count(manifest.layer_shapes)} parameters) fits in {limit}")
        _check_plain_file(file, limit)
        with open(file, "rb") as f:
            blob = f.read(limit + 1)
        if len(blob) != entry.bytes:
            raise BundleError(f"{file}: {len(blob)} bytes, but {MANIFEST} files.{name}.bytes says "
                              f"{entry.bytes} (truncated or changed)")
        digest = hashlib.sha256(blob).hexdigest()
        if digest != entry.sha256:
            raise BundleError(f"{file}: sha256 {digest} does not match {MANIFEST} files.{name}.sha256 "
                              f"{entry.sha256} (the file was changed)")
        blobs[name] = blob
    layers = _read_weights(blobs[WEIGHTS], manifest, str(root / WEIGHTS))
    return Bundle(path=root, manifest=manifest, layers=layers, files=blobs)


def _read_weights(blob: bytes, manifest: Manifest, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The layers of weights.npz. Names, sizes, dtypes and shapes are checked from the zip directory
    and each .npy header first; only then is an array's data read, exactly as many bytes as its
    manifest shape needs (a forged member can cost no more memory than the manifest declares)."""
    shapes: dict[str, tuple[tuple[int, ...], int]] = {}  # array name -> (shape, layer index)
    for i, (out_dim, in_dim) in enumerate(manifest.layer_shapes):
        wk, bk = layer_keys(i)
        shapes[wk], shapes[bk] = ((out_dim, in_dim), i), ((out_dim,), i)
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            members = {name.removesuffix(".npy"): info for name, info in infos.items()}
            extra = sorted(n for n in infos if not n.endswith(".npy") or n[:-4] not in shapes)
            if extra or len(members) != len(infos):
                raise BundleError(f"{where}: unexpected array {(extra or sorted(infos))[0]!r}")
            missing = [k for k in shapes if k not in members]
            if missing:
                raise BundleError(f"{where}: array {missing[0]!r} is missing (network.layers lists "
                                  f"{len(manifest.layer_shapes)} layers)")
            arrays = {key: _read_member(archive, members[key], key, *shapes[key], where) for key in shapes}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError, NotImplementedError) as err:
        raise BundleError(f"{where}: cannot be read as an npz archive (truncated or damaged): "
                          f"{type(err).__name__}: {err}") from None
    return [(arrays[layer_keys(i)[0]], arrays[layer_keys(i)[1]]) for i in range(len(manifest.layer_shapes))]


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, shape: tuple[int, ...],
                 layer: int, where: str) -> np.ndarray:
    """One float32 array of `shape`; its header is checked before its data is read."""
    need = 4 * math.prod(shape)
    if info.file_size > need + _NPY_HEADER_MAX:
        raise BundleError(f"{where}: {key} holds {info.file_size} bytes; network.layers[{layer}] needs "
                          f"{shape}, {need} bytes of float32")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise BundleError(f"{where}: {key} is .npy format {version}; the format stores 1.0 or 2.0")
        got_shape, fortran, dtype = readers[version](f, max_header_size=_NPY_HEADER_MAX)
        if dtype != np.dtype("<f4") or fortran:
            raise BundleError(f"{where}: {key} has dtype {dtype}{' (Fortran order)' if fortran else ''}; "
                              f"the format stores float32")
        if tuple(got_shape) != shape:
            raise BundleError(f"{where}: {key} has shape {tuple(got_shape)}, but {MANIFEST} "
                              f"network.layers[{layer}] needs {shape}")
        data = f.read(need)
        if len(data) != need or f.read(1):  # reading to the end also checks the member's CRC
            raise BundleError(f"{where}: {key}: {len(data)} bytes of data; its shape {shape} needs {need}")
    arr = np.frombuffer(data, dtype=np.float32).reshape(shape).copy()  # writable, as np.load's
    if not np.isfinite(arr).all():
        raise BundleError(f"{where}: {key} holds NaN or Inf")
    return arr


def parameter_count(shapes: Sequence[tuple[int, int]] | Sequence[Sequence[int]]) -> int:
    """Weights and biases of layers `(out, in)`."""
    return sum(int(o) * int(i) + int(o) for o, i in shapes)


def file_size_bound(manifest: Manifest, name: str) -> int:
    """The most bytes file `name` of this manifest's network may take (checked before reading)."""
    data = 4 * parameter_count(manifest.layer_shapes)
    arrays = 2 * len(manifest.layer_shapes)
    if name == WEIGHTS:  # each .npy: header + data; each zip entry: two headers with its name
        return data + arrays * (_NPY_HEADER_MAX + 512) + 1024
    return 2 * data + 16 * manifest.spec.obs_dim + (1 << 20)  # onnx: weights (maybe twice), graph


def json_depth(raw: bytes) -> int:
    """The deepest nesting of objects and lists in JSON text (strings skipped), without parsing it:
    a manifest nested 100 000 deep is refused before `json.loads` can recurse."""
    text = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", raw)
    codes = np.frombuffer(text, dtype=np.uint8)
    steps = np.zeros(len(codes), dtype=np.int64)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


def _check_plain_file(file: Path, limit: int) -> None:
    """A bundle file must be a regular file, not a link (which could point anywhere: its target is
    neither read nor described), and at most `limit` bytes, checked before it is read."""
    if file.is_symlink():
        raise BundleError(f"{file}: a symbolic link; a bundle holds plain files only")
    if not file.is_file():
        raise BundleError(f"{file}: not a regular file")
    size = file.stat().st_size
    if size > limit:
        raise BundleError(f"{file}: {size} bytes; at most {limit} are read for this file")


# --------------------------------------------------------------------------------------------------
# Writing


def build_manifest(*, spec: TaskSpec, kind: str, layers: Sequence[tuple[np.ndarray, np.ndarray]],
                   activation: str, head: Mapping[str, Any], normalizer: Normalizer | None,
                   provenance: Mapping[str, Any], files: Mapping[str, bytes]) -> dict[str, Any]:
    """The manifest's JSON object for these parts (validated by `parse_manifest`)."""
    data = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "task_spec": spec.to_dict(),
        "control_period": spec.control_period,
        "normalizer": None if normalizer is None else normalizer.to_dict(),
        "network": {"activation": activation, "dtype": "float32",
                    "layers": [list(np.shape(w)) for w, _ in layers]},
        "head": dict(head),
        "provenance": dict(provenance),
        "files": {name: {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
                  for name, blob in files.items()},
    }
    data = json.loads(dumps(data))  # plain JSON types only (tuples become lists, numpy scalars refused)
    parse_manifest(data, "manifest (being written)")
    return data


def weights_npz(layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """The weights.npz bytes: float32 arrays, no pickled objects."""
    arrays: dict[str, Any] = {}
    for i, (w, b) in enumerate(layers):
        wk, bk = layer_keys(i)
        arrays[wk] = np.ascontiguousarray(w, dtype=np.float32)
        arrays[bk] = np.ascontiguousarray(b, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_bundle(out: str | Path, *, spec: TaskSpec, kind: str,
                 layers: Sequence[tuple[np.ndarray, np.ndarray]], activation: str,
                 head: Mapping[str, Any], normalizer: Normalizer | None, provenance: Mapping[str, Any],
                 onnx: bool | None = None, force: bool = False) -> Bundle:
    """Write a bundle folder and read it back (so a writer can never ship what a reader refuses).

    `onnx`: True writes policy.onnx (needs the `onnx` package), False never, None when `onnx` is
    installed. The folder is assembled beside `out` and renamed into place; an existing `out` is
    replaced only with `force`.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not force:
            raise BundleError(f"{out} already exists; choose another --out or pass --force to replace it")
        _check_replaceable(out)
    blobs = {WEIGHTS: weights_npz(layers)}
    if onnx is None or onnx:
        from robot_rl.policies.runtime_onnx import onnx_available, onnx_model_bytes

        if onnx_available():
            blobs[ONNX] = onnx_model_bytes(kind=kind, layers=layers, activation=activation, head=head,
                                           normalizer=normalizer)
        elif onnx:
            raise BundleError("policy.onnx needs the `onnx` package (pip install robot-rl[onnx])")
    manifest = build_manifest(spec=spec, kind=kind, layers=layers, activation=activation, head=head,
                              normalizer=normalizer, provenance=provenance, files=blobs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:
        raise BundleError(f"{out}: cannot write the bundle in {out.parent}: {err.strerror}") from None
    try:
        for name, blob in blobs.items():
            (tmp / name).write_bytes(blob)
        (tmp / MANIFEST).write_text(dumps(manifest, indent=1) + "\n")
        read_bundle(tmp)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be read by others
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_bundle(out)


def _check_replaceable(out: Path) -> None:
    """`--force` replaces a bundle and nothing else: a folder holding anything but a manifest and the
    files a bundle may hold (a run directory, a user's documents) or a file is refused, not deleted."""
    if out.is_symlink() or not out.is_dir():
        raise BundleError(f"{out} is a {'link' if out.is_symlink() else 'file'}, not a policy bundle; "
                          f"--force replaces only a bundle folder: choose another --out")
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return  # an empty folder holds nothing to lose
    others = [n for n in names if n not in (MANIFEST, *KNOWN_FILES)]
    if MANIFEST not in names or others or any((out / n).is_symlink() or not (out / n).is_file()
                                              for n in names):
        what = f"holds {others[0]!r}" if others else "is not a policy bundle (no manifest.json)" \
            if MANIFEST not in names else "holds something that is not a plain file"
        raise BundleError(f"{out} {what}; --force replaces only a policy bundle, never a folder with "
                          f"anything else: choose another --out")


def update_provenance(path: str | Path, **fields: Any) -> Bundle:
    """Set provenance fields (e.g. `evaluation`) of an existing bundle; hashes are unaffected."""
    bundle = read_bundle(path)
    data = dict(bundle.manifest.data)
    data["provenance"] = {**data["provenance"], **fields}
    data = json.loads(dumps(data))
    parse_manifest(data, str(bundle.path / MANIFEST))
    # the temporary file lives beside the bundle, not in it: a crash must not leave an unlisted file
    fd, tmp = tempfile.mkstemp(prefix=f".{bundle.path.name}.{MANIFEST}.", dir=bundle.path.parent)
    try:
        with open(fd, "w") as f:
            f.write(dumps(data, indent=1) + "\n")
        Path(tmp).chmod(0o644)
        Path(tmp).replace(bundle.path / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return read_bundle(path)


def dumps(data: Any, indent: int | None = None) -> str:
    """Strict JSON (NaN/Infinity refused), keys in insertion order; with `indent`, objects one key
    per line and lists of scalars on one line (a normaliser's 300 numbers stay readable)."""
    try:
        if indent is None:
            return json.dumps(data, allow_nan=False)
        return _pretty(data, indent, 0)
    except ValueError as err:
        where = _non_finite_path(data, "")
        raise BundleError(f"manifest: {where or 'a value'}: {err} (a manifest is strict JSON: no NaN or "
                          f"Infinity)") from None


def _non_finite_path(value: Any, path: str) -> str | None:
    """The dotted path of the first NaN/Inf in a JSON-like value, e.g. "normalizer.mean[1]"."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        sub = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
        found = _non_finite_path(item, sub)
        if found:
            return found
    return None


def _pretty(value: Any, indent: int, level: int) -> str:
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {_pretty(v, indent, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        items = [f"{inner}{_pretty(v, indent, level + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False)


# --------------------------------------------------------------------------------------------------
# Running

# Below this bound on every pre-activation, float32 arithmetic cannot overflow (max ≈ 3.4e38), so the
# network's output is finite whenever its input is: the per-step output check can be skipped.
_SAFE_BOUND = 1e30


def output_bound(bundle: Bundle) -> float:
    """An upper bound on |every pre-activation| for any finite observation (inf without normaliser).

    Interval arithmetic: |W x + b| ≤ max_row ‖W_row‖₁ · ‖x‖∞ + max |b|; tanh bounds by 1, relu keeps
    the bound, elu's negative side is bounded by 1. With a normaliser the input is clipped to ±clip.
    """
    m = bundle.manifest
    bound = m.normalizer.clip if m.normalizer is not None else math.inf
    peak = 0.0
    for i, (w, b) in enumerate(bundle.layers):
        w64, b64 = w.astype(np.float64), b.astype(np.float64)
        bound = float(np.abs(w64).sum(axis=1).max() * bound + np.abs(b64).max())
        peak = max(peak, bound)
        if i != len(bundle.layers) - 1:
            bound = min(bound, 1.0) if m.activation == "tanh" else max(bound, 1.0)
    return peak


class Policy:
    """A loaded bundle on one runtime. Not thread-safe (history and scratch buffers are per policy).

    `forward` is the runtime's network on raw, validated observations `(obs_dim,)` or `(n, obs_dim)`
    float64: the deterministic normalised action (gaussian: the mean, tanh'd if squashed) or the
    Q-values (argmax), with the same leading shape. `robot`, if a runtime has one, is a fused path
    to robot units for gaussian bundles; it is used only where `output_bound` proves the output
    finite (otherwise the output is checked before the clip to [low, high] could hide an Inf).
    """

    def __init__(self, bundle: Bundle, runtime: str, forward: Callable[[np.ndarray], np.ndarray],
                 robot: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.spec = bundle.manifest.spec
        self.runtime = runtime
        self.kind = bundle.manifest.kind
        self.obs_dim = self.spec.obs_dim
        self.act_dim = self.spec.act_dim
        self.control_period = self.spec.control_period
        self._obs_shape = (self.obs_dim,)
        self._forward = forward
        self._builder = ObservationBuilder(self.spec)
        self._scale, self._offset, self._low, self._high = self.spec.action.arrays
        if self.spec.action.is_relative:  # act: the target change this step (rad or m), not a target
            self._offset, self._low, self._high = np.zeros_like(self._scale), -self._scale, self._scale
            robot = None  # the runtimes' fused path clips to the target bounds
        self.output_bound = output_bound(bundle)
        self._check_output = not self.output_bound < _SAFE_BOUND
        self._robot = robot if robot is not None and not self._check_output else None
        table = bundle.manifest.head.get("actions") if self.kind == "argmax" else None
        self._table = None if table is None else np.array(table, dtype=np.float64)

    # ---- observations
    def reset(self) -> None:
        """Start a new episode: forget the observation history built from states."""
        self._builder.reset()

    def observation(self, x: Any) -> np.ndarray:
        """The validated observation `(obs_dim,)` float64 for a vector or a state mapping."""
        if type(x) is np.ndarray and x.dtype == np.float64 and x.shape == self._obs_shape:  # fast path
            obs = x
        elif isinstance(x, Mapping):
            try:
                obs = self._builder.build(x)
            except SpecError as err:
                raise ObservationError(f"state: {err}") from None
        else:
            try:
                obs = np.asarray(x, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ObservationError(f"observation is not a numeric vector: {err}") from None
            if obs.shape != self._obs_shape:
                raise ObservationError(f"observation has shape {obs.shape}; this policy "
                                       f"({self.spec.name}) takes ({self.obs_dim},)")
        # a dot product is NaN/Inf if any entry is (or on overflow: then check exactly)
        if not math.isfinite(obs.dot(obs)) and not np.isfinite(obs).all():
            raise ObservationError(self._non_finite_message(obs))
        return obs

    def _non_finite_message(self, obs: np.ndarray) -> str:
        bad = np.flatnonzero(~np.isfinite(obs))
        terms = [name for name, s in self.spec.observation_slices().items()
                 if ((bad >= s.start) & (bad < s.stop)).any()]
        return (f"observation holds NaN/Inf at index {bad.tolist()[:8]} (term {', '.join(terms)}); "
                f"refused, no action computed")

    def _batch(self, observations: Any) -> np.ndarray:
        obs = np.asarray(observations, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ObservationError(f"observations have shape {obs.shape}; expected (n, {self.obs_dim})")
        if not np.isfinite(obs).all():
            rows = np.flatnonzero(~np.isfinite(obs).all(axis=1))
            raise ObservationError(f"observations hold NaN/Inf in rows {rows.tolist()[:8]}; refused")
        return obs

    # ---- actions
    def act(self, x: Any) -> np.ndarray:
        """Deterministic action in robot units, `(act_dim,)` float64 (argmax without table: `(1,)`)."""
        if type(x) is np.ndarray and x.dtype == np.float64 and x.shape == self._obs_shape \
                and math.isfinite(x.dot(x)):  # the per-step fast path of `observation`
            obs = x
        else:
            obs = self.observation(x)
        if self._robot is not None:
            return self._robot(obs)
        return self._to_robot(self._forward(obs))

    def act_normalized(self, x: Any) -> np.ndarray:
        """The deterministic action before robot-unit mapping, `(act_dim,)` float64 (what an env takes).

        gaussian: the mean (tanh'd if squashed); argmax: the table row (or the index, `(1,)`).
        """
        return self._normalized(self._forward(self.observation(x)))

    def act_batch(self, observations: Any, normalized: bool = False) -> np.ndarray:
        """Actions `(n, act_dim)` float64 for observation vectors `(n, obs_dim)` (no history)."""
        obs = self._batch(observations)
        if normalized:
            return self._normalized(self._forward(obs))
        if self._robot is not None:
            return self._robot(obs)
        return self._to_robot(self._forward(obs))

    def q_values(self, observations: Any) -> np.ndarray:
        """argmax bundles: Q-values `(n, num_actions)` for observations `(n, obs_dim)`."""
        if self.kind != "argmax":
            raise BundleError(f"q_values: a {self.kind} bundle has no Q-values")
        return np.asarray(self._forward(self._batch(observations)), dtype=np.float64)

    def _normalized(self, y: np.ndarray) -> np.ndarray:
        if self._check_output and not np.isfinite(y).all():
            raise ActionError("the network's output is not finite for a finite observation; refused")
        if self.kind == "argmax":
            index = np.argmax(y, axis=-1)
            return index[..., None].astype(np.float64) if self._table is None else self._table[index]
        return np.asarray(y, dtype=np.float64)

    def _to_robot(self, y: np.ndarray) -> np.ndarray:
        a = self._normalized(y)
        if self.kind == "argmax" and self._table is None:
            return a
        out = a * self._scale
        out += self._offset
        np.maximum(out, self._low, out=out)
        return np.minimum(out, self._high, out=out)

    def __call__(self, x: Any) -> np.ndarray:
        return self.act(x)

    def __repr__(self) -> str:
        p = self.manifest.provenance
        return (f"Policy({self.spec.name}, {p.get('algorithm')}, {self.kind}, runtime={self.runtime}, "
                f"obs_dim={self.obs_dim}, act_dim={self.act_dim})")


# --------------------------------------------------------------------------------------------------
# Schema helpers


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def _need(condition: bool, where: str, key: str, message: str) -> None:
    if not condition:
        raise BundleError(f"{where}: {key}: {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any, where: str, key: str) -> float:
    _need(isinstance(v, (int, float)) and not isinstance(v, bool), where, key,
          f"expected a number, got {v!r}")
    _need(math.isfinite(v), where, key, f"must be finite, got {v}")
    return float(v)


def _vector(v: Any, where: str, key: str, size: int) -> np.ndarray:
    _need(isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
          where, key, "must be a list of numbers")
    _need(len(v) == size, where, key, f"has {len(v)} entries; the task spec needs {size}")
    arr = np.array(v, dtype=np.float64)
    _need(bool(np.isfinite(arr).all()), where, key, "must be finite")
    arr.flags.writeable = False
    return arr


def _obj(data: Any, where: str, prefix: str, keys: Sequence[str], open_ended: bool = False) -> dict[str, Any]:
    """A JSON object with exactly `keys` (or at least them, if `open_ended`)."""
    label = prefix.rstrip(".") or "manifest"
    _need(isinstance(data, dict), where, label, f"expected an object, got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    _need(not missing, where, f"{prefix}{missing[0] if missing else ''}", "missing")
    unknown = [k for k in data if k not in keys]
    _need(open_ended or not unknown, where, f"{prefix}{unknown[0] if unknown else ''}",
          f"unknown key; valid keys: {', '.join(keys)}")
    return dict(data)
