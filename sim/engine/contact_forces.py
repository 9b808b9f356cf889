"""`ContactForces`: every world's `cfrc_ext` after a step of MuJoCo's batch, as Gymnasium computes it.

Why this shape: Gymnasium calls `mj_rnePostConstraint` after `mj_step`, and Ant and Humanoid read the
`cfrc_ext` it fills (per body, the 6-D torque:force of the contacts, of `xfrc_applied` and of connect
and weld constraints, about the subtree CoM of the body's root). That call reads the contacts and
`efc_force` of the step's last force evaluation, which the batch keeps only inside each world's MjData:
contacts and `efc_*` live in the arena and cannot be bound. A sensor that needs `mj_rnePostConstraint`
does not help either: the v5 models integrate with RK4, whose last force evaluation skips the sensors,
so a sensor's `cfrc_ext` is the one of the first RK stage, not Gymnasium's.

So each world whose `cfrc_ext` can be non-zero is copied (`Batch.get_data`) into one scratch MjData,
kept hot in the cache, and MuJoCo's own `mj_rnePostConstraint` runs there: bit for bit Gymnasium's
values. A world without contacts, constraint rows of equalities and applied forces (its bound `ncon`,
`ne` and `xfrc_applied`) has `cfrc_ext` exactly zero (the function starts from zero and adds only
those), and costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np


class ContactForces:
    """`cfrc_ext` `(N, nbody, 6)` of the worlds of a persistent `mujoco.batch.Batch`, after each call.

    `models`: each world's model (the batch's caller models, `set_models`), read by
    `mj_rnePostConstraint` (body tree and gravity; the forces themselves come from the world's data).
    """

    def __init__(self, batch: Any, models: Sequence[mujoco.MjModel]) -> None:
        if not batch.persistent:
            raise ValueError("ContactForces needs a persistent batch: only it keeps each world's contacts")
        self._batch = batch
        self._models = models
        self._ncon = batch.bind("ncon")
        self._ne = batch.bind("ne") if batch.model.neq else None  # equality rows: only with equalities
        xfrc = batch.bind("xfrc_applied")  # a live view of the state rows
        self._xfrc = xfrc.reshape(batch.nsim, -1)
        assert np.shares_memory(self._xfrc, xfrc), "xfrc_applied rows must stay a live view"
        self._scratch = mujoco.MjData(batch.model)
        self._scratch_cfrc = self._scratch.cfrc_ext  # a view of the scratch data's array

    def active(self) -> np.ndarray:
        """`(N,)` True for the worlds whose `cfrc_ext` may be non-zero after the last call."""
        active = self._ncon > 0
        if self._ne is not None:
            active |= self._ne > 0
        active |= self._xfrc.any(axis=1)
        return active

    def update(self, out: np.ndarray) -> None:
        """Write every world's `cfrc_ext` into `out` `(N, nbody, 6)`: zero where nothing acts, else
        MuJoCo's `mj_rnePostConstraint` on a copy of the world's data."""
        active = self.active()
        out.fill(0.0)
        scratch, cfrc, models = self._scratch, self._scratch_cfrc, self._models
        get_data, rne_post = self._batch.get_data, mujoco.mj_rnePostConstraint
        for i in np.flatnonzero(active).tolist():
            get_data(i, scratch)
            rne_post(models[i], scratch)
            out[i] = cfrc
