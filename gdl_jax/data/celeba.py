"""CelebA: too large for device memory at full size, so it streams from disk with prefetch.

Local layout (shared/data/README.md): <root>/celeba/ holding a zip of celebA/<id>.jpg (or a
folder of jpgs) and list_attr_celeba*.txt[.gz] in the official format: a count line, a header of
40 attribute names, then `<id>.jpg v1 ... v40` with values 1 / -1.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import io
import pathlib
import threading
import zipfile
from typing import Iterator

import numpy as np

from gdl_jax.data.sources import resolve_data_dir
from gdl_jax.errors import DataError


def read_attributes(path: pathlib.Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """(attribute names, {image file name: int8 vector of +1/-1}) from a list_attr_celeba file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            lines = f.read().splitlines()
        names = tuple(lines[1].split())
        rows = {}
        for n, line in enumerate(lines[2:], start=3):
            parts = line.split()
            if len(parts) != len(names) + 1:
                raise DataError(f"{path} line {n}: {len(parts) - 1} values for {len(names)} attributes")
            rows[parts[0]] = np.array(parts[1:], np.int8)
    except (OSError, EOFError, IndexError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path} is not a list_attr_celeba file: {e}") from None
    return names, rows


class CelebA:
    """The CelebA images of a local folder with their attributes; `batches` streams them."""

    def __init__(self, data_dir: str | None = None):
        root = resolve_data_dir(data_dir)
        if root is None:
            raise DataError("CelebA needs a local copy: set --config.data.data_dir or $GDL_DATA_DIR "
                            "(tfds celeb_a needs a manual download too)")
        folder = root / "celeba"
        attr_files = sorted(folder.glob("list_attr_celeba*.txt*"))
        if not attr_files:
            raise DataError(f"no list_attr_celeba*.txt[.gz] in {folder}")
        self.attribute_names, attrs = read_attributes(attr_files[0])
        zips = sorted(folder.glob("*.zip"))
        self._zip_path = zips[0] if zips else None
        self._local = threading.local()
        if self._zip_path:
            try:
                with zipfile.ZipFile(self._zip_path) as z:
                    members = {pathlib.PurePosixPath(n).name: n for n in z.namelist() if n.endswith(".jpg")}
            except zipfile.BadZipFile as e:
                raise DataError(f"{self._zip_path} is not a readable zip file: {e}") from None
        else:
            members = {p.name: str(p) for p in folder.rglob("*.jpg")}
        self.files = tuple(sorted(n for n in members if n in attrs))
        if not self.files:
            raise DataError(f"no CelebA images with attributes found in {folder}")
        self._members = members
        self.attributes = np.stack([attrs[n] for n in self.files])

    def __len__(self) -> int:
        return len(self.files)

    def attribute(self, name: str) -> np.ndarray:
        """Boolean per image: has attribute `name` (e.g. 'Smiling')."""
        if name not in self.attribute_names:
            raise DataError(f"unknown CelebA attribute {name!r}; known: {', '.join(self.attribute_names)}")
        return self.attributes[:, self.attribute_names.index(name)] > 0

    def _read(self, name: str) -> bytes:
        if self._zip_path is None:
            return pathlib.Path(self._members[name]).read_bytes()
        if not hasattr(self._local, "zip"):  # one open handle per thread: ZipFile is not thread-safe
            self._local.zip = zipfile.ZipFile(self._zip_path)
        return self._local.zip.read(self._members[name])

    def load_images(self, indices, size: int) -> np.ndarray:
        """uint8 (len(indices), size, size, 3), each face resized as Keras' flow_from_directory does."""
        from PIL import Image

        out = np.empty((len(indices), size, size, 3), np.uint8)
        for i, idx in enumerate(indices):
            img = Image.open(io.BytesIO(self._read(self.files[idx]))).convert("RGB")
            out[i] = np.asarray(img.resize((size, size), Image.BILINEAR))
        return out

    def batches(self, batch_size: int, size: int, seed: int, epoch: int = 0,
                prefetch: int = 4, workers: int = 2) -> Iterator[np.ndarray]:
        """The full batches of one shuffled epoch (order a pure function of seed and epoch),
        decoded by `workers` threads up to `prefetch` batches ahead of the consumer."""
        if not 0 < batch_size <= len(self):
            raise DataError(f"batch_size {batch_size} must be in 1..{len(self)} (the CelebA images found)")
        order = np.random.default_rng([seed, epoch]).permutation(len(self))
        chunks = [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            pending = [pool.submit(self.load_images, c, size) for c in chunks[:prefetch]]
            for nxt in chunks[prefetch:] + [None] * min(prefetch, len(chunks)):
                batch = pending.pop(0).result()
                if nxt is not None:
                    pending.append(pool.submit(self.load_images, nxt, size))
                yield batch
