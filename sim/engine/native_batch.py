"""`NativeBatch`: MuJoCo's batch (`mjbatch.h`) through its C API, for the one call Python lacks.

Why not `mujoco.batch.Batch`: Gymnasium calls `mj_rnePostConstraint` after every step, and Ant and
Humanoid observe the `cfrc_ext` it fills. That call must read the contacts and `efc_force` of the
step's last force evaluation, which live only inside each world's MjData (the v5 models integrate with
RK4, whose later stages skip the sensors, so no sensor can stand in). The Python binding can reach them
only by copying each world out (`get_data`, ~11 us a world, on the caller's thread while the batch's
threads wait): 6-10 % of Ant's step. MuJoCo's C API has `mjb_apply`, which runs a function on every
simulation's own MjData on the batch's threads; the binding does not expose it. So this module binds
the few `mjb_*` functions the engine uses with ctypes (the same `libmujoco` the `mujoco` package
loads: no code of ours is compiled) and runs `mj_rnePostConstraint` itself through `mjb_apply`.

`mj_rnePostConstraint(const mjModel*, mjData*)` is passed where `mjb_apply` expects
`void f(const mjModel*, mjData*, int sim, void* arg)`: the two leading arguments are the same, and on
every calling convention MuJoCo ships for (x86-64 System V and Windows, AArch64, 32-bit cdecl) the
caller places and removes the arguments, so a callee that declares fewer simply ignores the rest.

Semantics are `mujoco.batch.Batch`'s (the engine's conformance tests hold it bit for bit to Gymnasium):
state fields bind as views of the state rows, derived fields as read-only arrays the batch refreshes
after every call, and a simulation that raised makes the call raise `mujoco.batch.SimulationError`.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Sequence

import mujoco
import numpy as np
from mujoco.batch import SimulationError

_STATE = {  # MjData fields held in a simulation's state row -> their mjtState component
    "time": "TIME", "qpos": "QPOS", "qvel": "QVEL", "act": "ACT", "qacc_warmstart": "WARMSTART",
    "ctrl": "CTRL", "qfrc_applied": "QFRC_APPLIED", "xfrc_applied": "XFRC_APPLIED",
    "eq_active": "EQ_ACTIVE", "mocap_pos": "MOCAP_POS", "mocap_quat": "MOCAP_QUAT",
    "userdata": "USERDATA", "plugin_state": "PLUGIN",
}
_NONE = int(mujoco.mjtStage.mjSTAGE_NONE)
_P, _I, _D = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_double)


class _Config(ctypes.Structure):
    _fields_ = [("nthread", ctypes.c_int), ("persistent", ctypes.c_ubyte)]  # mjBatchConfig


def _library() -> ctypes.CDLL:
    """The `libmujoco` that the `mujoco` package itself loaded, with the `mjb_*` signatures declared."""
    folder = os.path.dirname(mujoco.__file__)
    found = sorted(glob.glob(os.path.join(folder, "libmujoco.so*")) + glob.glob(
        os.path.join(folder, "libmujoco*.dylib")) + glob.glob(os.path.join(folder, "mujoco.dll")))
    if not found:
        raise ImportError(f"no MuJoCo shared library next to the mujoco package in {folder}")
    lib = ctypes.CDLL(found[0])
    signatures = {
        "mjb_makeBatch": (_P, [_P, _I, ctypes.POINTER(_Config), ctypes.c_char_p, _I]),
        "mjb_deleteBatch": (None, [_P]),
        "mjb_nstate": (_I, [_P]),
        "mjb_state": (_D, [_P]),
        "mjb_stateComponent": (_D, [_P, _I, ctypes.POINTER(_I)]),
        "mjb_warning": (ctypes.POINTER(_I), [_P]),
        "mjb_status": (ctypes.POINTER(_I), [_P]),
        "mjb_error": (ctypes.c_char_p, [_P, _I]),
        "mjb_output": (_P, [_P, ctypes.c_char_p, ctypes.POINTER(_I), ctypes.POINTER(_I)]),
        "mjb_step": (_I, [_P, _P, _I, _I, _I]),
        "mjb_forward": (_I, [_P, _P, _I, _I]),
        "mjb_apply": (_I, [_P, _P, _I, _P, _P, _I]),
        "mjb_setModels": (None, [_P, _P]),
        "mjb_getData": (None, [_P, _I, _P]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


_LIB: ctypes.CDLL | None = None


def load_library() -> ctypes.CDLL:
    """`libmujoco` with the batch API declared, loaded once."""
    global _LIB
    if _LIB is None:
        _LIB = _library()
    return _LIB


class NativeBatch:
    """`nsim` simulations of `model` on `nthread` threads (the caller's included), one MjData each."""

    def __init__(self, model: mujoco.MjModel, nsim: int, nthread: int) -> None:
        lib = load_library()
        error = ctypes.create_string_buffer(1000)
        self._b = lib.mjb_makeBatch(model._address, nsim, ctypes.byref(_Config(nthread, 1)), error, 1000)
        if not self._b:
            raise ValueError(f"MuJoCo could not make a batch of {nsim} simulations: "
                             f"{error.value.decode(errors='replace')}")
        self._lib, self.model, self.nsim = lib, model, nsim
        self._template = mujoco.MjData(model)
        self._nstate = lib.mjb_nstate(self._b)
        self.state = np.ctypeslib.as_array(lib.mjb_state(self._b), shape=(nsim, self._nstate))
        """The state rows `(nsim, nstate)`, in `mj_getState(..., mjSTATE_INTEGRATION)` order."""
        nwarning = len(self._template.warning)
        self.warning = np.ctypeslib.as_array(lib.mjb_warning(self._b), shape=(nsim, nwarning, 2))
        """MuJoCo's warning counters `(nsim, mjNWARNING, 2)`: `[..., 1]` is each one's count."""
        self._status = np.ctypeslib.as_array(lib.mjb_status(self._b), shape=(nsim,))
        self._bound: dict[str, np.ndarray] = {}
        self._models: list[mujoco.MjModel] = []  # kept alive while the batch runs on them
        self._model_ptrs: ctypes.Array[ctypes.c_void_p] | None = None
        self._post = ctypes.cast(lib.mj_rnePostConstraint, ctypes.c_void_p)

    def bind(self, name: str) -> np.ndarray:
        """A live `(nsim, ...)` array over MjData field `name`: a view of the state rows for a state
        field (a write is the state of the next call), else read-only, refreshed after every call."""
        if name in self._bound:
            return self._bound[name]
        if not hasattr(self._template, name) or name.startswith("_"):
            raise ValueError(f"{name!r} is not an mjData field")
        template = np.asarray(getattr(self._template, name))
        if name in _STATE:
            size = ctypes.c_int()
            component = int(getattr(mujoco.mjtState, "mjSTATE_" + _STATE[name]))
            address = ctypes.cast(self._lib.mjb_stateComponent(self._b, component, ctypes.byref(size)),
                                  ctypes.c_void_p).value or 0
            start = (address - self.state.ctypes.data) // self.state.itemsize
            view = self.state[:, start:start + size.value]
            out = view[:, 0] if name == "time" else view.reshape(self.nsim, *template.shape)
        else:
            size, elem = ctypes.c_int(), ctypes.c_int()
            address = self._lib.mjb_output(self._b, name.encode(), ctypes.byref(size), ctypes.byref(elem))
            if not address:
                raise ValueError(f"MuJoCo's batch cannot copy out mjData field {name!r}")
            dtype = np.float64 if template.dtype.kind == "f" else np.dtype(f"int{8 * elem.value}")
            raw = (ctypes.c_char * (self.nsim * size.value * elem.value)).from_address(address)
            out = np.frombuffer(memoryview(raw), dtype=dtype).reshape(self.nsim, *template.shape)
            out.flags.writeable = False
        self._bound[name] = out
        return out

    def set_models(self, models: Sequence[mujoco.MjModel]) -> None:
        """Run simulation i on `models[i]` (same sizes as the batch's model); call again after an edit."""
        self._models = list(models)
        self._model_ptrs = (ctypes.c_void_p * self.nsim)(*[m._address for m in self._models])
        self._lib.mjb_setModels(self._b, self._model_ptrs)

    def get_data(self, sim: int, data: mujoco.MjData) -> mujoco.MjData:
        """Copy simulation `sim`'s whole MjData (its state and the fields of its last call) into `data`."""
        self._lib.mjb_getData(self._b, sim, data._address)
        return data

    def step(self, ids: np.ndarray | None = None, nstep: int = 1) -> None:
        """Advance the simulations `ids` (None: all) by `nstep` calls to `mj_step`."""
        ids32 = None if ids is None else np.ascontiguousarray(ids, dtype=np.int32)
        pointer = None if ids32 is None else ids32.ctypes.data
        nid = self.nsim if ids32 is None else len(ids32)
        self._check(ids32, self._lib.mjb_step(self._b, pointer, nid, nstep, _NONE))

    def post_constraint(self) -> None:
        """`mj_rnePostConstraint` on every simulation's own MjData, on the batch's threads (`cfrc_ext`,
        `cfrc_int`, `cacc` as Gymnasium's data holds them after a step), then refresh the bound outputs."""
        lib = self._lib
        self._check(None, lib.mjb_apply(self._b, None, self.nsim, self._post, None, 0))
        self._check(None, lib.mjb_forward(self._b, None, self.nsim, _NONE))  # computes nothing; copies out

    def close(self) -> None:
        """Free the batch (its threads and MjData); the bound arrays must not be read afterwards."""
        if self._b:
            self._bound.clear()
            self._lib.mjb_deleteBatch(self._b)
            self._b = None

    def __del__(self) -> None:
        if getattr(self, "_b", None):
            self.close()

    def _check(self, ids: np.ndarray | None, nfail: int) -> None:
        if nfail:
            sel = np.arange(self.nsim) if ids is None else ids
            failed = sel[self._status[sel] != 0]
            message = (self._lib.mjb_error(self._b, int(failed[0])) or b"").decode(errors="replace")
            raise SimulationError(failed, message, len(sel))
