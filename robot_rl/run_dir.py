"""The run directory as one process's property: a lock while a process writes it, the leftovers of a
killed run cleared before a new run starts there, and the config a damaged config.yaml can be
recovered from.

Two trainings writing one folder would interleave their progress rows and overwrite each other's
checkpoints, so a writer holds `RUN_LOCK` (an exclusive `flock` on a file holding its pid and host).
The kernel drops a `flock` when its process dies, however it dies, so a lock file left by a killed run
is stale by construction: the next writer takes it over and says so. A second live writer is refused
with the pid that holds the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from robot_rl.checkpoint import BEST_NAME, CHECKPOINT_DIR, list_checkpoints
from robot_rl.errors import RobotRLError

RUN_LOCK = ".lock"
"""The lock file of a run directory: `pid host` of the process writing it."""
#: What a run writes besides checkpoints/: cleared when a new run starts in a folder whose last run
#: was killed before its first checkpoint (so its rows are not mixed with the new run's).
RUN_FILES = ("progress.csv", "eval.json", "learning_curve.png")


class RunDirBusy(RobotRLError):
    """Another live process is writing this run directory."""


class RunDirError(RobotRLError):
    """A run directory cannot be used (not writable, not a folder, already holds a run)."""


class RunLock:
    """An exclusive lock on a run directory for one process (re-entrant within it)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RUN_LOCK
        self._file: IO[str] | None = None
        self.stale_pid: int | None = None
        """The pid a stale lock file named when this lock took it over (None: there was none)."""

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock or raise `RunDirBusy` naming the pid that holds it; creates the folder."""
        import fcntl

        if self._file is not None:
            return
        make_run_dir(self.run_dir)
        try:
            f = open(self.path, "a+")  # held open for the life of the lock
        except OSError as err:
            raise RunDirError(f"{self.run_dir}: cannot write the run directory: {err.strerror}") from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            f.seek(0)
            owner = f.read().strip() or "another process"
            f.close()
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunDirBusy(f"{self.run_dir} is being written by process {owner} (lock file "
                                 f"{self.path}); wait for it, stop it, or choose another --out") from None
            raise RunDirError(f"{self.path}: cannot lock: {err.strerror}") from None
        f.seek(0)
        previous = f.read().split()
        self.stale_pid = int(previous[0]) if previous and previous[0].isdigit() else None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
            f.flush()
        except OSError as err:
            f.close()
            raise RunDirError(f"{self.run_dir}: cannot write the run directory: {err.strerror}") from None
        self._file = f

    def release(self) -> None:
        """Remove the lock file and drop the lock (the file goes first: a waiting writer then starts
        on a fresh file, never on one that is being deleted)."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._file.close()
        self._file = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def make_run_dir(run_dir: str | Path) -> Path:
    """Create `run_dir` (and its parents); one `RunDirError` line if the file system refuses."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a run directory; choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"{run_dir}: cannot create the run directory: {err.strerror}") from None
    try:  # a probe, not os.access: it reports the real reason (read-only file system, quota, ...)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as err:
        raise RunDirError(f"{run_dir}: cannot write the run directory: {err.strerror}") from None
    return run_dir


@contextlib.contextmanager
def locked(run_dir: str | Path) -> Iterator[RunLock]:
    """`with locked(dir): ...` holds the run directory's lock for the block."""
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def has_checkpoints(run_dir: str | Path) -> bool:
    return bool(list_checkpoints(run_dir)) or (Path(run_dir) / CHECKPOINT_DIR / BEST_NAME).is_file()


def clear_unfinished_run(run_dir: str | Path) -> list[str]:
    """Before a new run starts in `run_dir`: refuse a folder holding a run's checkpoints (resume it
    instead), and delete what a run killed before its first checkpoint left (progress rows, events,
    eval.json), so they are not mixed with the new run's. Returns the names deleted."""
    run_dir = Path(run_dir)
    if has_checkpoints(run_dir):
        raise RunDirError(f"--out {run_dir} already holds a run; use --resume {run_dir} to continue it")
    removed = []
    for path in sorted(run_dir.iterdir()):
        if path.name in RUN_FILES or path.name.startswith("events.out.tfevents."):
            try:
                path.unlink()
            except OSError as err:
                raise RunDirError(f"{path}: cannot remove a killed run's file: {err.strerror}") from None
            removed.append(path.name)
    return removed
