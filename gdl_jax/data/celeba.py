"""CelebA faces: too large for device memory (202,599 faces, ~10 GB as float32 at 128x128x3), so
they are sources for the streamed feeder: `load(indices)` decodes and resizes on the host.

Sources, all with the same interface (`attribute_names`, `attributes_of`, `load`, `len`):
- a local folder `<data dir>/celeba/` holding either a zip of `<any>/<id>.jpg` (the offline
  subset's layout) or the official `img_align_celeba/<id>.jpg` folder, beside
  `list_attr_celeba*.txt[.gz]` (official format: a count line, a header of 40 attribute names,
  then `<id>.jpg v1 ... v40` with values 1 / -1). With `list_eval_partition.txt` there, its
  official test partition is the test split; without, the last `test_size` faces (by file name).
- tfds `celeb_a` (`source='tfds'`; its images need a manual download, as tfds documents).

Every face is resized to `size` x `size` with Pillow's bilinear filter (antialiased when it
shrinks). crop='none' resizes the whole aligned frame, changing its aspect ratio as the book's
Keras `flow_from_directory(target_size=(128, 128))` did; crop='square' first cuts the central
square (178x178 of the 178x218 frame), keeping the face's proportions.
"""

from __future__ import annotations

import gzip
import io
import pathlib
import threading
import zipfile
from typing import TYPE_CHECKING, Sequence

import numpy as np

from gdl_jax.data.sources import DATA_DIR_ENV, resolve_data_dir
from gdl_jax.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

CROPS = ("none", "square")
SPLITS = ("train", "test", "all")


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
            if not parts:
                continue
            if len(parts) != len(names) + 1:
                raise DataError(f"{path} line {n}: {len(parts) - 1} values for {len(names)} attributes")
            values = np.array(parts[1:], np.int8)
            if not np.isin(values, (-1, 1)).all():
                raise DataError(f"{path} line {n}: attribute values must be 1 or -1, got {' '.join(parts[1:])}")
            rows[parts[0]] = values
    except (OSError, EOFError, IndexError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path} is not a list_attr_celeba file: {e}") from None
    if not names:
        raise DataError(f"{path} has no attribute names on its second line")
    return names, rows


def _check(size: int, crop: str) -> None:
    if size <= 0:
        raise DataError(f"CelebA image size must be positive, got {size}")
    if crop not in CROPS:
        raise DataError(f"unknown CelebA crop {crop!r}; expected one of {CROPS}")


def resize_face(image: Image.Image, size: int, crop: str) -> Image.Image:
    """A PIL image cropped (crop='square': the central square) and resized to size x size."""
    from PIL import Image

    if crop == "square":
        w, h = image.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        image = image.crop((left, top, left + s, top + s))
    return image.resize((size, size), Image.BILINEAR)


class CelebA:
    """The CelebA faces of a local folder with their attributes: a `StreamSource`."""

    def __init__(self, data_dir: str | None = None, split: str = "all", size: int = 128,
                 crop: str = "none", test_size: int = 500):
        _check(size, crop)
        if split not in SPLITS:
            raise DataError(f"unknown CelebA split {split!r}; expected one of {SPLITS}")
        root = resolve_data_dir(data_dir)
        if root is None:
            raise DataError(f"CelebA from a local folder needs a data dir: set --config.data.data_dir or "
                            f"${DATA_DIR_ENV} (or use --config.data.source=tfds)")
        folder = root / "celeba"
        if not folder.is_dir():
            raise DataError(f"no folder {folder}: CelebA is expected as <data dir>/celeba/")
        attr_files = sorted(folder.glob("list_attr_celeba*.txt*"))
        if not attr_files:
            raise DataError(f"no list_attr_celeba*.txt[.gz] in {folder}")
        self.attribute_names, attrs = read_attributes(attr_files[0])
        self.size, self.crop = size, crop
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
        files = sorted(n for n in members if n in attrs)  # attribute rows without images are skipped
        if not files:
            raise DataError(f"no CelebA images with attributes found in {folder}")
        files = self._split(folder, files, split, test_size)
        self.files = tuple(files)
        self._members = members
        self.attributes = np.stack([attrs[n] for n in self.files])

    @staticmethod
    def _split(folder: pathlib.Path, files: list[str], split: str, test_size: int) -> list[str]:
        if split == "all":
            return files
        partition = folder / "list_eval_partition.txt"
        if partition.is_file():
            test = {line.split()[0] for line in partition.read_text().splitlines()
                    if len(line.split()) == 2 and line.split()[1] == "2"}
            chosen = [f for f in files if (f in test) == (split == "test")]
        else:
            if not 0 < test_size < len(files):
                raise DataError(f"CelebA test_size {test_size} must be in 1..{len(files) - 1} "
                                f"(the {len(files)} faces found)")
            chosen = files[-test_size:] if split == "test" else files[:-test_size]
        if not chosen:
            raise DataError(f"no CelebA {split} faces in {folder}")
        return chosen

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self) -> dict:  # picklable for decode processes: open zip handles stay behind
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _local=threading.local())

    def attributes_of(self, indices: Sequence[int]) -> np.ndarray:
        """int8 (len(indices), 40) of +1 / -1."""
        return self.attributes[np.asarray(indices)]

    def _read(self, name: str) -> bytes:
        if self._zip_path is None:
            return pathlib.Path(self._members[name]).read_bytes()
        if not hasattr(self._local, "zip"):  # one open handle per thread: ZipFile is not thread-safe
            self._local.zip = zipfile.ZipFile(self._zip_path)
        return self._local.zip.read(self._members[name])

    def load(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 (len(indices), size, size, 3): the faces decoded, cropped and resized."""
        from PIL import Image, UnidentifiedImageError

        out = np.empty((len(indices), self.size, self.size, 3), np.uint8)
        for i, idx in enumerate(indices):
            name = self.files[idx]
            try:
                img = Image.open(io.BytesIO(self._read(name))).convert("RGB")
            except (OSError, KeyError, UnidentifiedImageError) as e:
                raise DataError(f"CelebA image {name} is missing or unreadable ({type(e).__name__}: {e})") from None
            out[i] = np.asarray(resize_face(img, self.size, self.crop))
        return out


class TfdsCelebA:
    """tfds `celeb_a` as a `StreamSource` (random access through tfds' NumPy data source)."""

    def __init__(self, split: str = "train", size: int = 128, crop: str = "none", data_dir: str | None = None):
        import tensorflow_datasets as tfds

        _check(size, crop)
        if split not in ("train", "test"):
            raise DataError(f"tfds celeb_a split must be 'train' or 'test', got {split!r}")
        try:
            self._ds = tfds.data_source("celeb_a", split=split, data_dir=data_dir)
            features = self._ds.dataset_info.features["attributes"]
            self.attribute_names = tuple(features.keys())
        except Exception as e:  # tfds raises many kinds; all mean "not available"
            raise DataError(f"tfds could not load 'celeb_a' ({type(e).__name__}: {e}); its images need a "
                            f"manual download, or point ${DATA_DIR_ENV} at a local copy") from None
        self.size, self.crop = size, crop

    def __len__(self) -> int:
        return len(self._ds)

    def attributes_of(self, indices: Sequence[int]) -> np.ndarray:
        rows = [self._ds[int(i)]["attributes"] for i in indices]
        return np.array([[1 if r[n] else -1 for n in self.attribute_names] for r in rows], np.int8)

    def load(self, indices: Sequence[int]) -> np.ndarray:
        from PIL import Image

        out = np.empty((len(indices), self.size, self.size, 3), np.uint8)
        for i, idx in enumerate(indices):
            img = Image.fromarray(np.asarray(self._ds[int(idx)]["image"], np.uint8)).convert("RGB")
            out[i] = np.asarray(resize_face(img, self.size, self.crop))
        return out


def attribute_index(names: Sequence[str], name: str) -> int:
    """The column of attribute `name`; a DataError listing the valid names otherwise."""
    if name not in names:
        raise DataError(f"unknown CelebA attribute {name!r}; valid: {', '.join(names)}")
    return list(names).index(name)


def open_celeba(split: str, data_dir: str | None = None, source: str = "auto", size: int = 128,
                crop: str = "none", test_size: int = 500) -> CelebA | TfdsCelebA:
    """The CelebA source for `split`: local when a data dir is set (or source='local'), else tfds."""
    if source not in ("auto", "local", "tfds"):
        raise DataError(f"unknown data source {source!r}; expected 'auto', 'local' or 'tfds'")
    if source == "tfds" or (source == "auto" and resolve_data_dir(data_dir) is None):
        return TfdsCelebA(split, size, crop, data_dir)
    return CelebA(data_dir, split, size, crop, test_size)
