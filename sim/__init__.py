"""Tasks and simulators. Knows nothing of algorithms, policies or transports.

Nothing heavy is imported here: each task family lives in its own module and is imported on use.
`make`, `make_env`, `task_names` and `get_spec` are loaded on first access (module `__getattr__`).
"""

from __future__ import annotations

from typing import Any

_LAZY = {"make": "vector", "make_env": "registry", "task_names": "registry", "get_spec": "registry"}
__all__ = ["get_spec", "make", "make_env", "task_names"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
