"""The spec's observation terms over all worlds at once: `(N, size)` state arrays -> `(N, obs_dim)`.

The same term semantics as `robot_rl.spec.ObservationBuilder` (select, goal-relative, offset, frame,
transform, clip, scale, history newest first; `express_in_frame` is the one definition of the middle),
written over a leading world axis; the conformance tests hold the two equal world by world. History
frames are kept per world; `reset(mask)` refills the masked worlds.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from robot_rl.spec import TaskSpec, express_in_frame, relative_to_goal


class BatchObservationBuilder:
    """Observations of `num_envs` worlds for one spec."""

    def __init__(self, spec: TaskSpec, num_envs: int) -> None:
        self.spec = spec
        self._buffer = np.zeros((num_envs, spec.obs_dim), dtype=np.float64)
        self._primed = np.zeros(num_envs, dtype=bool)
        self._terms = []
        start = 0
        for t in spec.observation:
            width = t.width(spec.state_fields[t.source])
            select = None if t.indices is None else _selector(t.indices)
            goal = None
            if t.relative != "none":
                assert t.goal is not None  # ObsTerm checks: a relative term names its goal field
                goal = (t.relative, t.goal, None if t.goal_indices is None else _selector(t.goal_indices))
            func = {"none": None, "sin": np.sin, "cos": np.cos, "gravity": None}[t.transform]
            express = None  # (offset, frame field, its quaternion's selection, gravity)
            if t.offset is not None or t.frame is not None or t.transform == "gravity":
                express = (None if t.offset is None else np.array(t.offset), t.frame,
                           None if t.frame_indices is None else np.array(t.frame_indices, dtype=np.intp),
                           t.transform == "gravity")
            self._terms.append((t.source, select, goal, express, func, t.clip, t.scale, start, width,
                                t.history))
            start += width * t.history

    def reset(self, mask: np.ndarray) -> None:
        """The next `build` fills every history slot of the masked worlds with their current frame."""
        self._primed[mask] = False

    def build(self, state: Mapping[str, np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
        """`(N, obs_dim)` float64 (a fresh array) from field -> `(N, size)` arrays; with `rows` (world
        indices), only those worlds' observations `(len(rows), obs_dim)`, the others' history untouched."""
        if rows is not None:
            state = {k: v[rows] for k, v in state.items()}
            buf, primed = self._buffer[rows], self._primed[rows]
        else:
            buf, primed = self._buffer, self._primed
        fresh = ~primed
        for source, select, goal, express, func, clip, scale, start, width, history in self._terms:
            values = state[source] if select is None else state[source][:, select]
            if goal is not None:
                kind, gname, gsel = goal
                target = state[gname] if gsel is None else state[gname][:, gsel]
                values = relative_to_goal(kind, values, target)
            if express is not None:
                offset, fname, fsel, gravity = express
                values = express_in_frame(values, offset, None if fname is None else state[fname][:, fsel],
                                          gravity)
            frame = func(values) if func is not None else np.array(values, dtype=np.float64)
            if clip is not None:
                np.maximum(frame, clip[0], out=frame)
                np.minimum(frame, clip[1], out=frame)
            if scale != 1.0:
                frame *= scale
            if history > 1:  # frames newest first: move each one slot older, then write the newest
                stop = start + width * history
                buf[:, start + width:stop] = buf[:, start:stop - width].copy()
                if fresh.any():
                    buf[fresh, start:stop] = np.tile(frame[fresh], history)
            buf[:, start:start + width] = frame
        if rows is not None:  # fancy indexing gave copies: write them back
            self._buffer[rows] = buf
            self._primed[rows] = True
            return buf
        primed[:] = True
        return buf.copy()


def _selector(indices: tuple[int, ...]) -> slice | np.ndarray:
    """A slice where the indices are evenly spaced (a view), else an index array."""
    idx = np.array(indices, dtype=np.intp)
    step = int(idx[1] - idx[0]) if len(idx) > 1 else 1
    if step > 0 and np.array_equal(idx, idx[0] + step * np.arange(len(idx))):
        return slice(int(idx[0]), int(idx[-1]) + 1, step)
    return idx
