"""A JSON-lines metrics log: one record per train step, plus eval and summary records, mirrored
as TensorBoard scalars (tensorboardX event files) for the usual viewer."""

from __future__ import annotations

import json
import numbers
import os
import pathlib
import time
from typing import TYPE_CHECKING

from gdl_jax.errors import CheckpointError
from gdl_jax.outputs import atomic_write_text

if TYPE_CHECKING:
    import tensorboardX


class JsonlWriter:
    """Appends records {'step': int, 'kind': str, ...} to `path` and keeps the run's records
    in `records`.

    On resume, `truncate_after(step)` drops records newer than the restored checkpoint, so a
    killed-and-resumed run leaves the same log as an uninterrupted one. With write_file=False
    (the other processes of a multi-host run) the file is only read, never written.

    With `tensorboard_dir`, every numeric field of a record is also a scalar '<kind>/<field>'
    at its step there; after a resume, TensorBoard hides the events a killed run logged past
    the restored step (the writer's purge_step).
    """

    def __init__(self, path: str | pathlib.Path, write_file: bool = True,
                 tensorboard_dir: str | pathlib.Path | None = None):
        self.path = pathlib.Path(path)
        self.records: list[dict] = []
        self._file = None
        self._tensorboard_dir = tensorboard_dir if write_file else None
        self._tensorboard: tensorboardX.SummaryWriter | None = None
        if write_file:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a")

    def truncate_after(self, step: int) -> list[dict]:
        """Keeps the records with step <= `step` (the file rewritten atomically); returns them."""
        if self._file is not None:
            self._file.flush()
        kept = read_jsonl(self.path, partial_last_line=True) if self.path.exists() else []
        self.records = [r for r in kept if r["step"] <= step]
        if self._file is not None:
            self._file.close()
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))
            self._file = open(self.path, "a")
        # a run that logged before (resumed, or restarted from scratch after a kill before its first
        # checkpoint) hides its earlier events past `step` in TensorBoard; a new run has none to hide
        self._open_tensorboard(purge_step=step + 1 if step or kept else None)
        return list(self.records)

    def _open_tensorboard(self, purge_step: int | None = None) -> None:
        if self._tensorboard_dir is not None and self._tensorboard is None:
            # imported here, not at the top: tensorboardX's writer imports torch when torch is
            # installed (1.8 s), which processes that write no events need not pay
            import tensorboardX

            # a file of its own per writer, in start order (a resume within the same second would
            # otherwise reopen, and empty, the killed run's file)
            self._tensorboard = tensorboardX.SummaryWriter(str(self._tensorboard_dir), purge_step=purge_step,
                                                          flush_secs=30, filename_suffix=f".{time.time_ns()}")

    def write(self, records: list[dict]) -> None:
        self.records.extend(records)
        if self._file is not None:
            self._file.writelines(json.dumps(r) + "\n" for r in records)
        self._open_tensorboard()
        if self._tensorboard is not None:
            for r in records:
                for key, value in r.items():
                    if key not in ("step", "kind") and isinstance(value, numbers.Real):
                        self._tensorboard.add_scalar(f"{r['kind']}/{key}", value, r["step"])

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        if self._tensorboard is not None:
            self._tensorboard.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl(path: str | pathlib.Path, partial_last_line: bool = False) -> list[dict]:
    """The records of a JSON-lines file. partial_last_line: a last line cut short (a run killed
    mid-write) is dropped; any other line that is not JSON is a CheckpointError naming the file."""
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except ValueError:
            if partial_last_line and i == len(lines) - 1 and not line.endswith("\n"):
                break
            raise CheckpointError(f"{path} line {i + 1} is not JSON; the metrics log is damaged") from None
    return records
