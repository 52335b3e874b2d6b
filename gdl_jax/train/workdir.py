"""Guards a workdir against being resumed by a different run, or written by two runs at once."""

from __future__ import annotations

import json
import pathlib

import ml_collections

from gdl_jax.errors import CheckpointError
from gdl_jax.outputs import atomic_write_text, lock, release

CONFIG_FILE = "config.json"


def _get(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def claim(workdir: pathlib.Path, config: ml_collections.ConfigDict,
          identity_keys: tuple[str, ...]) -> None:
    """Writes workdir/config.json on a new run; on a resume, checks the run is the same one.

    Takes the workdir's lock (`outputs.lock`) for this process: a second run there is refused
    while this one lives, or until `outputs.release(workdir)` (`tasks.train_and_evaluate` releases
    it once the run's figures are written). identity_keys: the dotted config keys that define
    the run (model, data, optimizer, seed...); others (e.g. the number of epochs) may change
    between a run and its resume. A workdir of another run is refused before anything in it is
    written; one in use, with only its lock file opened.
    """
    _check(workdir, config, identity_keys)   # before the lock, so a refused workdir gets no lock file
    workdir.mkdir(parents=True, exist_ok=True)
    lock(workdir)
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
