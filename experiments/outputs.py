"""Small helpers shared by the analysis binaries: results JSON and error exits."""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Callable

from gdl_jax.errors import GdlError


def write_results(workdir: str | pathlib.Path, results: dict) -> pathlib.Path:
    path = pathlib.Path(workdir) / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def run_or_exit(fn: Callable[[], None]) -> None:
    """Runs fn; a GdlError (bad input) exits with one line instead of a traceback."""
    try:
        fn()
    except GdlError as e:
        sys.exit(f"error: {e}")
