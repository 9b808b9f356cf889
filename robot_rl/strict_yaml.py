"""Strict YAML for launch files and run configs: bounded, unambiguous, one error line per mistake.

A launch file is a small hand-written mapping, so whatever YAML allows beyond that is refused before
it can cost anything:
  - a file larger than `MAX_BYTES` (checked with `stat`, before reading: a sparse 1 TiB file costs nothing);
  - bytes that are not UTF-8 (the error names the offset);
  - aliases (`*name`): nested aliases expand exponentially (an 861-byte file grew past 4 GB);
  - nesting deeper than `MAX_DEPTH`;
  - a key given twice in one mapping (YAML keeps the last one silently; which one was meant?).
Every refusal is a `ConfigError` naming the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from robot_rl.errors import ConfigError

MAX_BYTES = 1 << 20
"""Largest launch file or config.yaml read: 1 MiB (ours are under 2 KiB)."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists (ours: 3)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases, duplicate keys or unbounded nesting."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                              f"accepted; write the value out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                continue
            if duplicate:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice in one "
                                  f"mapping; keep one")
        return super().construct_mapping(node, deep=deep)


def loads(text: str) -> Any:
    """Parse YAML text strictly (see the module docstring); errors are `ConfigError` without a path."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{where}not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {str(err).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"nested deeper than {MAX_DEPTH} levels") from None


def read(path: str | Path) -> Any:
    """Read and parse a YAML file strictly; every error is one `ConfigError` naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{path}: {size} bytes; a launch file is at most {MAX_BYTES} bytes")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: byte 0x{raw[err.start]:02x} at offset {err.start} is not "
                          f"UTF-8; save the file as UTF-8") from None
    try:
        return loads(text)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
