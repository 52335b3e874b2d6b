"""The streaming CelebA source on a tiny copy in the offline layout."""

import gzip
import zipfile

import numpy as np
import pytest
from PIL import Image

from gdl_jax.data import CelebA
from gdl_jax.errors import DataError

ATTRS = ["Smiling", "Male", "Eyeglasses"]


def _write_celeba(root, n=10):
    folder = root / "celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = [str(n + 2), " ".join(ATTRS)]
    with zipfile.ZipFile(folder / "celeba_small.zip", "w") as z:
        for i in range(1, n + 1):
            img = Image.fromarray(np.full((109, 89, 3), i * 20, np.uint8))
            path = root / f"{i:06d}.jpg"
            img.save(path)
            z.write(path, f"celebA/{i:06d}.jpg")
            lines.append(f"{i:06d}.jpg " + " ".join(str(v) for v in rng.choice([-1, 1], len(ATTRS))))
    lines += ["999998.jpg  1 1 1", "999999.jpg -1 -1 -1"]  # attributes without images are skipped
    with gzip.open(folder / "list_attr_celeba.txt.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    return root


def test_attributes_and_streamed_batches(tmp_path):
    celeba = CelebA(str(_write_celeba(tmp_path)))
    assert len(celeba) == 10 and celeba.attribute_names == tuple(ATTRS)
    assert celeba.attribute("Smiling").dtype == bool
    batches = list(celeba.batches(batch_size=3, size=16, seed=0, prefetch=2))
    assert len(batches) == 3 and batches[0].shape == (3, 16, 16, 3) and batches[0].dtype == np.uint8
    again = list(celeba.batches(batch_size=3, size=16, seed=0, prefetch=1, workers=1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other_epoch = list(celeba.batches(batch_size=3, size=16, seed=0, epoch=1))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other_epoch))
    # every image appears at most once per epoch: the flat grey levels identify them
    levels = np.concatenate([b[:, 0, 0, 0] for b in batches])
    assert len(set(levels.tolist())) == 9


def test_bad_celeba_input(tmp_path):
    root = _write_celeba(tmp_path)
    celeba = CelebA(str(root))
    with pytest.raises(DataError, match="unknown CelebA attribute 'Smile'"):
        celeba.attribute("Smile")
    with pytest.raises(DataError, match="batch_size 11 must be in 1..10"):
        next(celeba.batches(batch_size=11, size=16, seed=0))
    with gzip.open(root / "celeba" / "list_attr_celeba.txt.gz", "wt") as f:
        f.write("3\nSmiling Male Eyeglasses\n000001.jpg 1 -1\n")
    with pytest.raises(DataError, match="line 3: 2 values for 3 attributes"):
        CelebA(str(root))
    with pytest.raises(DataError, match="CelebA needs a local copy"):
        CelebA(None)
