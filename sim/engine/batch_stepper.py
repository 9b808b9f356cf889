"""`BatchStepper`: every world's control period in one call of MuJoCo's own batch (`mjbatch.h`).

Why: the engine's first stepping path calls `mj_step` once per world from a pool of Python threads.
Each call releases and retakes the GIL, and on a virtual machine handing the GIL from one core to the
other costs about as much as a short `mj_step` itself: measured here on Hopper (4 substeps a call),
two threads stepped 1.26x one thread's rate where a call of 400 substeps reached 1.87x. MuJoCo 3.17's
`Batch` steps every simulation in C on its own threads (the caller's included) with no Python per world,
bit-identical to a loop over one MjData per simulation, so the engine uses it wherever it can; through
`native_batch.NativeBatch`, whose `mjb_apply` also runs Gymnasium's `mj_rnePostConstraint` on the
batch's threads where a task observes `cfrc_ext`.

Contract with the engine: each world's `MjData` (the declared interface, `world.data`) stays the truth
at resets: the engine resets a world in its own data, then `push`es the state into the batch. During
an episode the batch holds the state; `world.data` pulls it back lazily (`pull`) when someone reads
it, and a world read that way is pushed again before the next step, so a caller who writes into
`world.data` (a test making a world fall) is obeyed as with the per-world path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np

INTEGRATION = int(mujoco.mjtState.mjSTATE_INTEGRATION)
"""The state a step depends on (time, qpos, qvel, act, warm start, controls, applied forces, mocap...)."""


def batch_available() -> bool:
    """MuJoCo's batch C API (mujoco >= 3.17) loads here."""
    try:
        from .native_batch import load_library
        load_library()
    except (ImportError, OSError, AttributeError):
        return False
    return True


class BatchStepper:
    """The worlds' physics in one MuJoCo batch (persistent: one MjData per world inside it).

    `fields`: the mjData fields the task reads after a step, bound once as live `(N, ...)` arrays.
    `held`: the engine's `(N, nu)` controls applied during each world's actuation delay.
    `post_constraint`: every world gets `mj_rnePostConstraint` after each step (its `cfrc_ext`, bound
    like any field, as Gymnasium's data has it after a step).
    """

    def __init__(self, nominal: mujoco.MjModel, models: Sequence[mujoco.MjModel], threads: int,
                 fields: Sequence[str], held: np.ndarray, post_constraint: bool = False) -> None:
        from .native_batch import NativeBatch

        n = len(models)
        self._batch = NativeBatch(nominal, n, threads)
        self._models = list(models)
        self._batch.set_models(self._models)
        self.bound = {f: self._batch.bind(f) for f in fields}
        self._ctrl = self._batch.bind("ctrl")
        self._qvel = self._batch.bind("qvel")
        self._held = held
        self._stale = np.zeros(n, dtype=bool)
        """Worlds the batch stepped since their `MjData` last pulled its state."""
        self._touched: set[int] = set()
        """Worlds whose `MjData` was handed out since the last step: pushed back before the next."""
        self._models_changed = False
        self._post_constraint = post_constraint

    @property
    def batch(self) -> Any:
        """MuJoCo's batch itself (its worlds' data after the last step: `get_data`)."""
        return self._batch

    @property
    def models(self) -> list[mujoco.MjModel]:
        """Each world's model, as the batch steps it."""
        return self._models

    @property
    def warnings(self) -> np.ndarray:
        """Each world's MuJoCo warning counters `(N, mjNWARNING)` (they only ever rise)."""
        return self._batch.warning[:, :, 1]

    def push(self, i: int, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        """World i's state is its `data`'s (after a reset, or a caller's write)."""
        mujoco.mj_getState(model, data, self._batch.state[i], INTEGRATION)
        self._stale[i] = False
        self._touched.discard(i)

    def pull(self, i: int, data: mujoco.MjData) -> None:
        """Bring world i's state and derived fields from the batch into `data` (if it stepped since)."""
        if self._stale[i]:
            self._batch.get_data(i, data)  # with the step's `cfrc_ext` where post_constraint
            self._stale[i] = False

    def add_qvel(self, i: int, data: mujoco.MjData, dofs: np.ndarray, dv: np.ndarray) -> None:
        """Add `dv` to world i's velocity entries `dofs` (a push between two steps) where its state is now:
        its `data` if handed out (pushed back before the step), else the batch's row."""
        if i in self._touched:
            data.qvel[dofs] += dv
        else:
            self._qvel[i, dofs] += dv
            self._stale[i] = True  # `data` no longer holds the state: a reader pulls it

    def handed_out(self, i: int) -> None:
        """World i's `MjData` was given to a caller, who may write into it."""
        self._touched.add(i)

    def model_changed(self) -> None:
        """A world's model was edited (a randomizer's draw): the batch rereads the models before stepping."""
        self._models_changed = True

    def close(self) -> None:
        """Let MuJoCo's batch (and its threads) go."""
        del self.bound, self._ctrl, self._qvel
        self._batch.close()

    def step(self, ctrl: np.ndarray, delays: np.ndarray, nstep: int,
             worlds: Sequence[Any]) -> None:
        """One control period of every world: `ctrl` `(N, nu)`; a world with `delays[i]` > 0 physics steps
        of actuation delay runs them with its held controls first, then holds the new ones."""
        for i in sorted(self._touched):
            w = worlds[i]
            self.push(i, w.model, w.raw_data)
        if self._models_changed:
            self._batch.set_models(self._models)
            self._models_changed = False
        batch, rows = self._batch, self._ctrl
        if not delays.any():
            rows[...] = ctrl
            batch.step(nstep=nstep)
        else:
            delayed = delays > 0
            for d in np.unique(delays[delayed]):
                ids = np.flatnonzero(delays == d)
                rows[ids] = self._held[ids]
                batch.step(ids, nstep=int(d))
            self._held[delayed] = ctrl[delayed]
            rows[...] = ctrl
            for d in np.unique(delays):
                if nstep > d:
                    batch.step(np.flatnonzero(delays == d), nstep=nstep - int(d))
        if self._post_constraint:
            batch.post_constraint()
        self._stale[...] = True
