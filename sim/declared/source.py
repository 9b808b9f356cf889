"""Declared task ids: `declared:<absolute path of a YAML file>` whose `task:` key (a launch file) or whole
mapping declares the task; and the packaged ones (`PACKAGED`), registered by name. The id is what a run's
config.yaml, the registry and subprocesses pass around, so every process rebuilds the same task from the
same file.
"""

from __future__ import annotations

import functools
import os

from robot_rl import strict_yaml
from robot_rl.errors import ConfigError

from ..engine.task import EngineTask
from .builder import build_task
from .config import DeclaredTask, parse_task

PREFIX = "declared:"
PACKAGED = {"quadruped-walk": "quadruped_walk.yaml"}
"""Declared tasks shipped with the package (their files in sim/assets/), registered under these ids: a
bundle trained on one names a task that every install resolves (a `declared:` id is a path)."""


def is_declared(task_id: str) -> bool:
    """Whether `task_id` names a declared task."""
    return isinstance(task_id, str) and task_id.startswith(PREFIX)


def declared_id(path: str) -> str:
    """The task id of the task declared in the file at `path`."""
    return PREFIX + os.path.abspath(path)


def read(task_id: str) -> DeclaredTask:
    """The declaration of a declared id, validated (nothing loaded)."""
    path = task_id.removeprefix(PREFIX)
    if not os.path.isfile(path):
        raise ConfigError(f"task: the file {path!r} of declared task {task_id!r} does not exist")
    data = strict_yaml.read(path)
    if isinstance(data, dict) and isinstance(data.get("task"), dict):
        data = data["task"]
    return parse_task(data, os.path.dirname(path))


@functools.cache
def load(task_id: str) -> EngineTask:
    """The engine task of a declared id (built once per process; the file is read when first asked)."""
    return build_task(read(task_id), name=task_id)


def packaged_file(name: str) -> str:
    """The file declaring the packaged task `name` (sim/assets/)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", PACKAGED[name])


@functools.cache
def packaged(name: str) -> EngineTask:
    """The engine task of the packaged declared task `name`, under that id (built once per process)."""
    return build_task(read(declared_id(packaged_file(name))), name=name)
