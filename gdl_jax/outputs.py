"""What a run writes for its user: files replaced atomically, and results.json."""

from __future__ import annotations

import json
import os
import pathlib


def atomic_write_text(path: str | pathlib.Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename, so that a reader (or a run
    killed mid-write) sees the old file or the new one, never part of one."""
    path = pathlib.Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(workdir: str | pathlib.Path, results: dict) -> pathlib.Path:
    """Writes workdir/results.json (on the writing process only in a multi-host run); returns its
    path."""
    from gdl_jax import parallel  # jax: not for the light users of atomic_write_text (the report)

    path = pathlib.Path(workdir) / "results.json"
    if parallel.is_writer():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    return path
