"""A JSON-lines metrics log: one record per train step, plus eval and summary records."""

from __future__ import annotations

import json
import os
import pathlib


class JsonlWriter:
    """Appends records {'step': int, 'kind': str, ...} to `path` and keeps the run's records
    in `records`.

    On resume, `truncate_after(step)` drops records newer than the restored checkpoint, so a
    killed-and-resumed run leaves the same log as an uninterrupted one. With write_file=False
    (the other processes of a multi-host run) the file is only read, never written.
    """

    def __init__(self, path: str | pathlib.Path, write_file: bool = True):
        self.path = pathlib.Path(path)
        self.records: list[dict] = []
        self._file = None
        if write_file:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a")

    def truncate_after(self, step: int) -> list[dict]:
        """Keeps the records with step <= `step` (the file rewritten atomically); returns them."""
        if self._file is not None:
            self._file.flush()
        self.records = [r for r in read_jsonl(self.path) if r["step"] <= step] if self.path.exists() else []
        if self._file is not None:
            self._file.close()
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in self.records)
            os.replace(tmp, self.path)
            self._file = open(self.path, "a")
        return list(self.records)

    def write(self, records: list[dict]) -> None:
        self.records.extend(records)
        if self._file is not None:
            self._file.writelines(json.dumps(r) + "\n" for r in records)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl(path: str | pathlib.Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
