"""Reads a serialized `sensor_msgs/JointState` (the CDR bytes a raw subscription hands over) without
building the Python message: the state callback's share of deserializing a message is then two
`np.frombuffer` views instead of a header, a list of strings and three arrays made as Python objects.

CDR (XCDR1, as Fast DDS and Cyclone DDS write it): a 4-byte encapsulation header (byte 1: 0x01
little-endian, 0x00 big-endian), then the fields in order, each aligned to its own size counted from
the end of that header; a string is a uint32 length (its NUL included) and the bytes; a sequence is
a uint32 count and the elements. JointState is `header` (stamp: int32 sec, uint32 nanosec;
frame_id: string), `name` (sequence<string>), `position`, `velocity`, `effort` (sequence<float64>).

`JointStateReader.read(raw)` returns `(names, position, velocity, stamp_seconds)`; the byte layout of
the header's frame_id and the names is cached, so that a stream whose names do not change is read by
one bytes comparison and two views. Anything it does not read itself (big-endian data, a message
too short for the fields read; `effort` is not read) returns None: the caller then deserializes the
message the ordinary way, and so a malformed JointState is rejected with the same reasons as before.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

_LE = b"\x00\x01"  # CDR little-endian encapsulation
_ORIGIN = 4  # alignment counts from the end of the encapsulation header
_STAMP = struct.Struct("<iI")
_U32 = struct.Struct("<I")


class JointStateReader:
    """Reads JointState CDR bytes; caches the layout of the last name list (see module docstring)."""

    def __init__(self) -> None:
        self._prefix: bytes | None = None  # frame_id and names, as bytes: the cache key
        self._names: list[str] = []
        self._position_at = 0  # offset of the position count

    def read(self, raw: bytes) -> tuple[list[str], np.ndarray, np.ndarray, float] | None:
        """(names, position, velocity, stamp in seconds) of the message, or None (see the module)."""
        if len(raw) < 16 or raw[:2] != _LE:
            return None
        sec, nanosec = _STAMP.unpack_from(raw, _ORIGIN)
        prefix = self._prefix
        if prefix is None or raw[12:self._position_at] != prefix:
            if not self._learn(raw):
                return None
        arrays = self._arrays(raw, self._position_at)
        if arrays is None:
            return None
        position, velocity = arrays
        return self._names, position, velocity, sec + nanosec * 1e-9

    def _learn(self, raw: bytes) -> bool:
        """Parse frame_id and names; remember where the positions start. False if malformed."""
        try:
            at = _string_end(raw, 12)
            at = _align(at, 4)
            (count,) = _U32.unpack_from(raw, at)
            at += 4
            if count > len(raw):
                return False
            names = []
            for _ in range(count):
                at = _align(at, 4)
                (length,) = _U32.unpack_from(raw, at)
                if length == 0 or at + 4 + length > len(raw):
                    return False
                names.append(raw[at + 4:at + 3 + length].decode("utf-8"))
                at += 4 + length
            at = _align(at, 4)
        except (struct.error, UnicodeDecodeError):
            return False
        self._prefix, self._names, self._position_at = raw[12:at], names, at
        return True

    @staticmethod
    def _arrays(raw: bytes, at: int) -> tuple[np.ndarray, np.ndarray] | None:
        out = []
        for _ in range(2):  # position, velocity (effort is not read)
            if at + 4 > len(raw):
                return None
            (count,) = _U32.unpack_from(raw, at)
            at += 4
            if count:
                at = _align(at, 8)
            end = at + 8 * count
            if end > len(raw):
                return None
            out.append(np.frombuffer(raw, dtype="<f8", count=count, offset=at))
            at = _align(end, 4)
        return out[0], out[1]


def _align(offset: int, size: int) -> int:
    return offset + (-(offset - _ORIGIN) % size)


def _string_end(raw: Any, at: int) -> int:
    (length,) = _U32.unpack_from(raw, at)
    end = at + 4 + length
    if end > len(raw):
        raise struct.error("string runs past the end")
    return end
