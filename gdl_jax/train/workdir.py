"""Guards a workdir against being resumed by a different run, or written by two runs at once."""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import socket
from typing import IO

import ml_collections

from gdl_jax.errors import CheckpointError
from gdl_jax.outputs import atomic_write_text

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"   # flock'ed by the run writing the workdir; the OS drops it when that process ends
_held: dict[pathlib.Path, IO] = {}


def _get(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def claim(workdir: pathlib.Path, config: ml_collections.ConfigDict,
          identity_keys: tuple[str, ...]) -> None:
    """Writes workdir/config.json on a new run; on a resume, checks the run is the same one. Takes
    the workdir's lock (held until `release`): a second run on it while this one writes is refused.

    identity_keys: the dotted config keys that define the run (model, data, optimizer, seed...).
    Other keys (e.g. the number of epochs) may change between a run and its resume. Raises before
    anything in the workdir is written or overwritten.
    """
    _check(workdir, config, identity_keys)   # before the lock, so a refused workdir gets no lock file
    workdir.mkdir(parents=True, exist_ok=True)
    _lock(workdir)
    try:
        current = _check(workdir, config, identity_keys)   # again: another run may have written it meanwhile
    except BaseException:
        release(workdir)
        raise
    atomic_write_text(workdir / CONFIG_FILE, json.dumps(current, indent=2, sort_keys=True))


def _check(workdir: pathlib.Path, config: ml_collections.ConfigDict, identity_keys: tuple[str, ...]) -> dict:
    """The config as JSON; a CheckpointError if the workdir holds another run."""
    path = workdir / CONFIG_FILE
    current = json.loads(config.to_json())
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path} is unreadable ({e}); use a new --workdir") from None
        diff = [k for k in identity_keys if _get(saved, k) != _get(current, k)]
        if diff:
            detail = ", ".join(f"{k}: {_get(saved, k)!r} there, {_get(current, k)!r} now" for k in diff)
            raise CheckpointError(f"workdir {workdir} holds a different run ({detail}); "
                                  "use a new --workdir")
    elif (workdir / "checkpoints").is_dir() and any((workdir / "checkpoints").iterdir()):
        raise CheckpointError(f"workdir {workdir} has checkpoints but no {CONFIG_FILE}; "
                              "use a new --workdir")
    return current


def _lock(workdir: pathlib.Path) -> None:
    """Takes the workdir's lock for this process (kept until `release`, or until the process
    ends); a CheckpointError naming the holder if another run has it."""
    key = workdir.resolve()
    if key in _held:
        return
    f = open(workdir / LOCK_FILE, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "a process"
        f.close()
        raise CheckpointError(f"workdir {workdir} is in use by another run ({holder}); wait for it to end "
                              "or use a new --workdir") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    _held[key] = f


def release(workdir: str | os.PathLike) -> None:
    """Drops this process's lock on the workdir (claim takes it); nothing if it holds none."""
    f = _held.pop(pathlib.Path(workdir).resolve(), None)
    if f is not None:
        f.close()
