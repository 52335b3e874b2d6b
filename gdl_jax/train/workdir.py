"""Guards a workdir against being resumed by a different run."""

from __future__ import annotations

import json
import pathlib

import ml_collections

from gdl_jax.errors import CheckpointError
from gdl_jax.outputs import atomic_write_text

CONFIG_FILE = "config.json"


def _get(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def claim(workdir: pathlib.Path, config: ml_collections.ConfigDict,
          identity_keys: tuple[str, ...]) -> None:
    """Writes workdir/config.json on a new run; on a resume, checks the run is the same one.

    identity_keys: the dotted config keys that define the run (model, data, optimizer, seed...).
    Other keys (e.g. the number of epochs) may change between a run and its resume. Raises before
    anything in the workdir is written or overwritten.
    """
    workdir.mkdir(parents=True, exist_ok=True)
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
    atomic_write_text(path, json.dumps(current, indent=2, sort_keys=True))
