"""What a run writes for its user: files replaced atomically, results.json, and the lock that
keeps two runs from writing one directory at once."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import socket
from typing import IO, Iterator

from absl import logging

from gdl_jax.errors import CheckpointError

LOCK_FILE = ".lock"   # flock'ed by the run writing the directory; the OS drops it when that process ends
_held: dict[pathlib.Path, IO] = {}


@contextlib.contextmanager
def _replacing(path: str | pathlib.Path, suffix: str) -> Iterator[pathlib.Path]:
    """A temporary path beside `path` to write; renamed over `path` when the block ends, removed
    when it fails."""
    path = pathlib.Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | pathlib.Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename, so that a reader (or a run
    killed mid-write) sees the old file or the new one, never part of one."""
    with _replacing(path, ".tmp") as tmp:
        tmp.write_text(text)


def atomic_savez(path: str | pathlib.Path, **arrays) -> None:
    """`np.savez` to `path` through a temporary file and a rename, as atomic_write_text."""
    import numpy as np

    with _replacing(path, ".tmp.npz") as tmp:   # savez adds .npz to a name without it
        np.savez(tmp, **arrays)


def write_results(workdir: str | pathlib.Path, results: dict) -> pathlib.Path:
    """Writes workdir/results.json (on the writing process only in a multi-host run); returns its
    path."""
    from gdl_jax import parallel  # jax: not for the light users of atomic_write_text (the report)

    path = pathlib.Path(workdir) / "results.json"
    if parallel.is_writer():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    return path


def lock(directory: str | pathlib.Path, flag: str = "workdir") -> None:
    """Takes `directory`'s lock for this process (kept until `release`, or until the process ends;
    taken again, nothing happens); a CheckpointError naming the holder if another process has it.
    flag: the command-line flag that names the directory, for the error. On a filesystem without
    locks, a warning and no lock."""
    directory = pathlib.Path(directory)
    key = directory.resolve()
    if key in _held:
        return
    f = open(directory / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "a process"
            raise CheckpointError(f"{flag} {directory} is in use by another run ({holder}); wait for it to "
                                  f"end or use a new --{flag}") from None
        except OSError as e:   # e.g. a network filesystem mounted without lock support
            logging.warning("cannot lock %s (%s): nothing stops a second run from writing there", directory, e)
            f.close()
            return
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
    except BaseException:
        f.close()
        raise
    _held[key] = f


def release(directory: str | pathlib.Path) -> None:
    """Drops this process's lock on `directory`; nothing if it holds none."""
    f = _held.pop(pathlib.Path(directory).resolve(), None)
    if f is not None:
        f.close()


@contextlib.contextmanager
def locked(directory: str | pathlib.Path, flag: str) -> Iterator[None]:
    """`directory`'s lock (see `lock`) held for the block (released even if the block changes the
    working directory that a relative `directory` is relative to)."""
    directory = pathlib.Path(directory).resolve()
    lock(directory, flag)
    try:
        yield
    finally:
        release(directory)
