"""The ONNX graph of a bundle, and the onnxruntime runtime.

The graph is built with `onnx.helper` straight from the bundle's numpy weights, not with
`torch.onnx.export`: with torch 2.13 the default (dynamo) exporter needs `onnxscript`, which is not
installed here, and the TorchScript exporter still works but is deprecated. An MLP is a dozen nodes,
and building it from the weights needs no torch and cannot drift from weights.npz.

Graph (opset 17, IR version 8, so older onnxruntime builds load it too):

    input  "observation"  double  (batch, obs_dim)    raw observation, as the robot builds it
    Sub(mean) → Div(sqrt(var + eps)) → Clip(±clip)     the normaliser, folded in, in double
    Cast(float) → [Gemm(W, b, transB=1) → activation]* → Gemm(W, b, transB=1) [→ Tanh if squashed]
    output "action"   float  (batch, act_dim)         gaussian: the deterministic action in the
                                                        policy's normalised space (before robot units)
    output "q_values" float  (batch, num_actions)     argmax: take the argmax, then the head's table

The robot-unit mapping (scale, offset, limits) stays outside the graph, in the manifest's spec, as
for every runtime. onnx and onnxruntime are imported on use only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robot_rl.policies.bundle import ONNX, Bundle, BundleError, Normalizer, Policy, read_bundle

OPSET = 17
IR_VERSION = 8
INPUT = "observation"
#: Parity a shipped policy.onnx must keep with weights.npz on probe observations (float32 round-off).
PROBE_TOLERANCE = 1e-4


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def output_name(kind: str) -> str:
    return "action" if kind == "gaussian" else "q_values"


def onnx_model_bytes(*, kind: str, layers: Sequence[tuple[np.ndarray, np.ndarray]], activation: str,
                     head: Mapping[str, Any], normalizer: Normalizer | None) -> bytes:
    """The serialised ONNX model of a bundle's network with its normaliser folded in."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    obs_dim = int(np.shape(layers[0][0])[1])
    out_dim = int(np.shape(layers[-1][0])[0])
    inits, nodes = [], []
    x = INPUT
    if normalizer is not None:
        inits += [numpy_helper.from_array(normalizer.mean.astype(np.float64), "obs_mean"),
                  numpy_helper.from_array(normalizer.std.astype(np.float64), "obs_std"),
                  numpy_helper.from_array(np.array(-normalizer.clip, dtype=np.float64), "obs_clip_low"),
                  numpy_helper.from_array(np.array(normalizer.clip, dtype=np.float64), "obs_clip_high")]
        nodes += [helper.make_node("Sub", [x, "obs_mean"], ["obs_centered"]),
                  helper.make_node("Div", ["obs_centered", "obs_std"], ["obs_scaled"]),
                  helper.make_node("Clip", ["obs_scaled", "obs_clip_low", "obs_clip_high"], ["obs_norm"])]
        x = "obs_norm"
    nodes.append(helper.make_node("Cast", [x], ["h0"], to=TensorProto.FLOAT))
    x = "h0"
    squash = kind == "gaussian" and head.get("squash") == "tanh"
    out = output_name(kind)
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        inits += [numpy_helper.from_array(np.asarray(w, dtype=np.float32), f"layers.{i}.weight"),
                  numpy_helper.from_array(np.asarray(b, dtype=np.float32), f"layers.{i}.bias")]
        y = out if last and not squash else f"z{i}"
        nodes.append(helper.make_node("Gemm", [x, f"layers.{i}.weight", f"layers.{i}.bias"], [y], transB=1))
        if not last:
            act: tuple[str, dict[str, Any]] = {"tanh": ("Tanh", {}), "relu": ("Relu", {}),
                                               "elu": ("Elu", {"alpha": 1.0})}[activation]
            nodes.append(helper.make_node(act[0], [y], [f"h{i + 1}"], **act[1]))
            x = f"h{i + 1}"
        elif squash:
            nodes.append(helper.make_node("Tanh", [y], [out]))
    graph = helper.make_graph(
        nodes, "robot_rl_policy",
        [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, ["batch", obs_dim])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", out_dim])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="robot_rl")
    model.ir_version = IR_VERSION
    model.doc_string = (f"robot_rl {kind} policy: raw observation (double) -> {out} (float); "
                        "normaliser folded in; robot-unit mapping in manifest.json")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def policy_from_bundle(bundle: Bundle) -> Policy:
    """The bundle on onnxruntime: its policy.onnx, or a graph built from weights.npz if it has none."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BundleError("the onnx runtime needs onnxruntime (pip install robot-rl[onnx])") from None
    m = bundle.manifest
    model = bundle.files.get(ONNX)
    if model is None:
        if not onnx_available():
            raise BundleError(f"{bundle.path}: has no {ONNX}, and building one needs the onnx package")
        model = onnx_model_bytes(kind=m.kind, layers=bundle.layers, activation=m.activation,
                                 head=m.head, normalizer=m.normalizer)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one small observation: threads cost more than they give
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise BundleError(f"{bundle.path / ONNX}: onnxruntime cannot load it: {err}") from None
    out = output_name(m.kind)
    inputs, outputs = session.get_inputs(), [o.name for o in session.get_outputs()]
    if len(inputs) != 1 or inputs[0].name != INPUT or out not in outputs:
        raise BundleError(f"{bundle.path / ONNX}: expected input {INPUT!r} and output {out!r}, got "
                          f"{[i.name for i in inputs]} -> {outputs}")

    def forward(obs: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(obs, dtype=np.float64)
        return session.run([out], {INPUT: x[None] if obs.ndim == 1 else x})[0][0 if obs.ndim == 1 else ...]

    _check_against_weights(bundle, forward)
    return Policy(bundle, "onnx", forward)


def _check_against_weights(bundle: Bundle, forward: Any) -> None:
    """A policy.onnx must compute what weights.npz computes (it is hashed, but made separately)."""
    from robot_rl.policies.runtime_numpy import NumpyForward

    m = bundle.manifest
    rng = np.random.default_rng(0)
    probe = rng.standard_normal((16, m.spec.obs_dim))
    if m.normalizer is not None:
        probe = m.normalizer.mean + np.sqrt(m.normalizer.var) * probe
    expected = NumpyForward(bundle).normalized(probe)
    got = forward(probe)
    if got.shape != expected.shape:
        raise BundleError(f"{bundle.path / ONNX}: outputs shape {got.shape}; weights.npz gives "
                          f"{expected.shape}")
    error = float(np.max(np.abs(got - expected)))
    if not error <= PROBE_TOLERANCE:
        raise BundleError(f"{bundle.path / ONNX}: disagrees with weights.npz on probe observations "
                          f"(max difference {error:.3g} > {PROBE_TOLERANCE})")


def load(path: str) -> Policy:
    """Read, verify and load a bundle on onnxruntime."""
    return policy_from_bundle(read_bundle(path))
