"""A run's own copy of its declared task: the `task:` mapping, the model file and every file the model
reads (MJCF includes, meshes, textures, height fields, skins), under `<run>/task/`. The run's config
names the copy (`declared:<run>/task/task.yaml`), so resuming or exporting the run rebuilds the task it
was trained on even after the launch file or the model was edited or moved.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import yaml

from robot_rl import strict_yaml
from robot_rl.errors import ConfigError

from .config import parse_task
from .source import PREFIX, declared_id

SNAPSHOT_DIR = "task"
SNAPSHOT_FILE = "task.yaml"


def _includes(path: str) -> list[str]:
    """Files an MJCF `<include file=...>` pulls in, recursively, relative to `path`'s folder."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return []
    found = []
    for node in root.iter("include"):
        rel = node.get("file")
        if rel:
            found.append(rel)
            found += [os.path.join(os.path.dirname(rel), r)
                      for r in _includes(os.path.join(os.path.dirname(path), rel))]
    return found


def model_files(model: str) -> list[str]:
    """The files besides `model` that compiling it reads, relative to its folder (that MuJoCo resolves)."""
    spec = mujoco.MjSpec.from_file(model)
    files = _includes(model) if not model.endswith(".urdf") else []
    groups = ((spec.meshdir, [m.file for m in spec.meshes]),
              (spec.texturedir, [t.file for t in spec.textures]),
              ("", [h.file for h in spec.hfields]), ("", [s.file for s in spec.skins]))
    for folder, names in groups:
        files += [os.path.join(folder or "", n) for n in names if n]
    return [os.path.normpath(f) for f in files]


def snapshot(task_id: str, run_dir: str | Path) -> str:
    """Copy the declared task `task_id` into `run_dir`/task/; return the declared id of the copy.

    A file the model reads from outside its own folder (a `../` path, an absolute one) cannot be placed
    beside the copy: a ConfigError names it, before the run starts.
    """
    source = task_id.removeprefix(PREFIX)
    folder = Path(run_dir) / SNAPSHOT_DIR
    target = folder / SNAPSHOT_FILE
    if Path(source).resolve() == target.resolve():  # the run's own copy already
        return task_id
    data = strict_yaml.read(source)
    mapping = data["task"] if isinstance(data, dict) and isinstance(data.get("task"), dict) else data
    declared = parse_task(mapping, os.path.dirname(source))  # validated: the model file exists
    model_dir = os.path.dirname(declared.model)
    extra = model_files(declared.model)
    for rel in extra:
        if os.path.isabs(rel) or rel.startswith(".."):
            raise ConfigError(f"task.model: {declared.model!r} reads {rel!r}, outside its folder; the run "
                              f"cannot keep its own copy of the task (move the file beside the model)")
    folder.mkdir(parents=True, exist_ok=True)
    name = os.path.basename(declared.model)
    shutil.copyfile(declared.model, folder / name)
    for rel in extra:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(os.path.join(model_dir, rel), folder / rel)
    copied = {**mapping, "model": name}
    header = f"# The task of this run, copied from {source} (model: {declared.model}).\n"
    target.write_text(header + yaml.safe_dump({"task": copied}, sort_keys=False))
    return declared_id(str(target))
