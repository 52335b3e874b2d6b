"""Readers for the book's data sets: local folders (the layouts in README "Running experiments") and tfds.

Every reader returns an `ArrayData` on the host: images uint8 NHWC, labels int32. Conversion to
float happens on device, in `gdl_jax.data.pipeline`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pathlib
import re
import struct
import zipfile

import numpy as np

from gdl_jax import runtime
from gdl_jax.errors import DataError
from gdl_jax.outputs import atomic_savez

DATA_DIR_ENV = "GDL_DATA_DIR"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
MNIST_CLASSES = tuple(str(d) for d in range(10))
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class ArrayData:
    """A whole data set in host memory."""
    images: np.ndarray          # uint8, (N, H, W, C)
    labels: np.ndarray          # int32, (N,) class indices, or (N, A) 0 / 1 for A binary attributes
    class_names: tuple[str, ...]  # the classes', or the attributes' names

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(f"images must be uint8 NHWC, got {self.images.dtype} {self.images.shape}")
        if self.labels.ndim not in (1, 2) or len(self.labels) != len(self.images):
            raise DataError(f"{len(self.images)} images but labels of shape {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.images)


def resolve_data_dir(data_dir: str | None) -> pathlib.Path | None:
    """The local data root: the flag if given, else $GDL_DATA_DIR, else None (use tfds)."""
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        return None
    path = pathlib.Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(f"data dir {path} does not exist (set --config.data.data_dir or ${DATA_DIR_ENV})")
    return path


def load(name: str, split: str = "train", data_dir: str | None = None,
         source: str = "auto") -> ArrayData:
    """Loads data set `name` ('mnist', 'cifar10', 'quickdraw/<category>') whole, on the host.
    'cifar10/<class>' or 'mnist/<digit>' keeps one class (e.g. 'cifar10/horse' for the WGAN),
    relabelled 0 as Quick Draw's single category is.

    source: 'local' reads `data_dir` (or $GDL_DATA_DIR) in the layouts of README "Running experiments",
    'tfds' uses tensorflow-datasets, 'auto' is local when a data dir is set and tfds otherwise.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    base, _, category = name.partition("/")
    if base not in _LOCAL_READERS:
        raise DataError(f"unknown data set {name!r}; expected one of "
                        "'mnist', 'cifar10', 'quickdraw/<category>'")
    if base == "quickdraw" and not category:
        raise DataError(f"data set {name!r}: give a Quick Draw category, as 'quickdraw/cat'")
    if source not in ("auto", "local", "tfds"):
        raise DataError(f"unknown data source {source!r}; expected 'auto', 'local' or 'tfds'")
    root = resolve_data_dir(data_dir)
    if source == "local" and root is None:
        raise DataError(f"source 'local' needs a data dir: set --config.data.data_dir or ${DATA_DIR_ENV}")
    if source == "tfds" or (source == "auto" and root is None):
        data = _load_tfds(base, split, category, data_dir)
    else:
        folder = root / base
        if not folder.is_dir():
            raise DataError(f"no folder {folder} for data set {name!r} "
                            "(README 'Running experiments' gives the layouts)")
        data = _LOCAL_READERS[base](folder, split, category)
    return one_class(data, category) if category and base != "quickdraw" else data


def one_class(data: ArrayData, class_name: str) -> ArrayData:
    """The examples of one class, by name, relabelled 0."""
    if class_name not in data.class_names:
        raise DataError(f"no class {class_name!r}; expected one of {', '.join(data.class_names)}")
    keep = data.labels == data.class_names.index(class_name)
    return ArrayData(data.images[keep], np.zeros(int(keep.sum()), np.int32), (class_name,))


# ---------------------------------------------------------------------------- MNIST (IDX)

def _read_idx(path: pathlib.Path) -> np.ndarray:
    """Reads one IDX file (optionally gzipped): magic, dims, then uint8 payload."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    except (OSError, EOFError, struct.error) as e:
        raise DataError(f"{path} is not a readable IDX file: {e}") from None
    payload = raw[4 + 4 * ndim:]
    if zero != 0 or dtype != 0x08 or len(payload) != int(np.prod(dims)):
        raise DataError(f"{path} is not a uint8 IDX file of shape {dims}")
    return np.frombuffer(payload, np.uint8).reshape(dims)


def _find(folder: pathlib.Path, stem: str) -> pathlib.Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"missing {folder / stem}[.gz]")


def _load_mnist(folder: pathlib.Path, split: str, _: str) -> ArrayData:
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_find(folder, f"{prefix}-images.idx3-ubyte"))
    labels = _read_idx(_find(folder, f"{prefix}-labels.idx1-ubyte"))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"MNIST {split} files in {folder} are not 28x28 images with one label each: "
                        f"{images.shape} images, {labels.shape} labels")
    return ArrayData(images[..., None], labels.astype(np.int32), MNIST_CLASSES)


# ---------------------------------------------------------------------- CIFAR-10 (JPEG folder)

_CIFAR_MEMBER = re.compile(r"(?:^|/)(train|test)/([a-z]+)/(\d+)\.(?:jpg|jpeg|png)$")


def _cache_path(tag: str, *sources: pathlib.Path) -> pathlib.Path:
    """A cache file name keyed on the sources' paths, sizes and mtimes (a folder's: those of
    every file under it, so that replacing one image makes a new cache)."""
    h = hashlib.sha1()
    for s in sources:
        h.update(str(s.resolve()).encode())
        files = sorted(p for p in s.rglob("*") if p.is_file()) if s.is_dir() else [s]
        for f in files:
            st = f.stat()
            h.update(f"|{f.relative_to(s) if f != s else ''}|{st.st_size}|{st.st_mtime_ns}".encode())
    return runtime.cache_dir() / f"{tag}-{h.hexdigest()[:16]}.npz"


def _decode_cifar(entries) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """entries: iterable of (member name, bytes reader) -> {split: (images, labels)}, sorted by
    (class, index) for determinism."""
    from PIL import Image, UnidentifiedImageError

    found = []
    for member, read in entries:
        m = _CIFAR_MEMBER.search(member)
        if m:
            split, cls, idx = m.groups()
            if cls not in CIFAR10_CLASSES:
                raise DataError(f"unknown CIFAR-10 class folder {cls!r} in {member}")
            found.append((split, CIFAR10_CLASSES.index(cls), int(idx), member, read))
    found.sort(key=lambda t: t[:3])
    out = {}
    for split in SPLITS:
        rows = [r for r in found if r[0] == split]
        if not rows:
            raise DataError(f"no CIFAR-10 {split} images (<split>/<class>/<index>.jpg) found")
        images = np.empty((len(rows), 32, 32, 3), np.uint8)
        for i, (_, _, _, member, read) in enumerate(rows):
            try:
                img = Image.open(io.BytesIO(read())).convert("RGB")
            except (OSError, UnidentifiedImageError) as e:
                raise DataError(f"CIFAR-10 image {member} is unreadable ({type(e).__name__}: {e})") from None
            if img.size != (32, 32):
                raise DataError(f"CIFAR-10 image {member} is {img.size}, expected 32x32")
            images[i] = np.asarray(img)
        out[split] = (images, np.array([r[1] for r in rows], np.int32))
    return out


def _load_cifar10(folder: pathlib.Path, split: str, _: str) -> ArrayData:
    zips = sorted(folder.glob("*.zip"))
    tree = folder / "cifar10_jpg"
    if zips:
        source = zips[0]
    elif tree.is_dir():
        source = tree
    else:
        raise DataError(f"no CIFAR-10 zip or cifar10_jpg/ folder in {folder}")
    cache = _cache_path("cifar10", source)
    if not cache.is_file():
        if source.suffix == ".zip":
            try:
                with zipfile.ZipFile(source) as z:
                    decoded = _decode_cifar((n, lambda n=n: z.read(n)) for n in z.namelist())
            except zipfile.BadZipFile as e:
                raise DataError(f"{source} is not a readable zip file: {e}") from None
        else:
            decoded = _decode_cifar((str(p.relative_to(folder)), p.read_bytes)
                                    for p in sorted(tree.rglob("*")) if p.is_file())
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_savez(cache, **{f"{s}_{k}": v for s, (x, y) in decoded.items()
                                for k, v in (("images", x), ("labels", y))})
    with np.load(cache) as z:
        return ArrayData(z[f"{split}_images"], z[f"{split}_labels"], CIFAR10_CLASSES)


def has_test_split(name: str) -> bool:
    """Whether data set `name` comes with a test split (Quick Draw does not)."""
    return name.partition("/")[0] != "quickdraw"


# ------------------------------------------------------------------- Quick Draw (raw bitmaps)

def _load_quickdraw(folder: pathlib.Path, split: str, category: str) -> ArrayData:
    """Quick Draw has no test split: 'train' is every drawing of the category."""
    if split != "train":
        raise DataError("Quick Draw has only a 'train' split")
    npy = folder / f"full_numpy_bitmap_{category}.npy"
    bins = sorted(folder.glob(f"{category}*.bin"))
    if npy.is_file():
        try:
            flat = np.load(npy)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"{npy} is not a readable .npy file: {e}") from None
    elif bins:
        flat = np.fromfile(bins[0], np.uint8)
    else:
        raise DataError(f"no Quick Draw file for {category!r} in {folder} "
                        f"(expected full_numpy_bitmap_{category}.npy or {category}*.bin)")
    if flat.dtype != np.uint8 or flat.size % 784:
        raise DataError(f"Quick Draw {category!r} is not a whole number of 28x28 uint8 bitmaps")
    images = flat.reshape(-1, 28, 28, 1)
    return ArrayData(images, np.zeros(len(images), np.int32), (category,))


_LOCAL_READERS = {"mnist": _load_mnist, "cifar10": _load_cifar10, "quickdraw": _load_quickdraw}


# ----------------------------------------------------------------------------------- tfds

def _load_tfds(base: str, split: str, category: str, data_dir: str | None) -> ArrayData:
    """The full data sets through tensorflow-datasets' NumPy data sources (no TensorFlow needed).

    Downloads and prepares the data set on first use (internet needed). For Quick Draw this means
    all 345 categories (~40 GB), read through once to keep the one category's drawings: a local
    full_numpy_bitmap_<category>.npy is the practical route.
    """
    import tensorflow_datasets as tfds

    tfds_name = "quickdraw_bitmap" if base == "quickdraw" else base
    try:
        ds = tfds.data_source(tfds_name, split=split, data_dir=data_dir)
        names = tuple(ds.dataset_info.features["label"].names)
    except Exception as e:  # tfds raises many kinds; all mean "this data set is not available"
        raise DataError(f"tfds could not load {tfds_name!r} ({type(e).__name__}: {e}); "
                        f"without internet, point ${DATA_DIR_ENV} at a local copy") from None
    if base == "quickdraw" and category not in names:
        raise DataError(f"quickdraw_bitmap has no category {category!r}")
    keep = names.index(category) if base == "quickdraw" else None
    images, labels = [], []
    for i in range(len(ds)):  # one example at a time: only the kept ones stay in memory
        example = ds[i]
        if keep is None or example["label"] == keep:
            images.append(np.asarray(example["image"], np.uint8))
            labels.append(example["label"])
    if not images:
        raise DataError(f"tfds {tfds_name!r} split {split!r} holds no {category or 'examples'}")
    images, labels = np.stack(images), np.array(labels, np.int32)
    if base == "quickdraw":
        return ArrayData(images, np.zeros(len(images), np.int32), (category,))
    return ArrayData(images, labels, CIFAR10_CLASSES if base == "cifar10" else MNIST_CLASSES)
