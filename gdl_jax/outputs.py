"""A run's results.json."""

from __future__ import annotations

import json
import pathlib

from gdl_jax import parallel


def write_results(workdir: str | pathlib.Path, results: dict) -> pathlib.Path:
    """Writes workdir/results.json (on the writing process only in a multi-host run); returns its
    path."""
    path = pathlib.Path(workdir) / "results.json"
    if parallel.is_writer():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
    return path
