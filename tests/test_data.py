"""Data sources in the offline layouts, on-device batching, and clear errors for bad data dirs."""

import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED_DATA, write_idx

from gdl_jax import data as gdata
from gdl_jax import parallel
from gdl_jax.errors import ConfigError, DataError


def test_cifar_folder_loads_sorted_with_labels(cifar_dir):
    train = gdata.load("cifar10", "train", str(cifar_dir))
    test = gdata.load("cifar10", "test", str(cifar_dir))
    assert train.images.shape == (160, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.images.shape == (40, 32, 32, 3)
    assert np.array_equal(np.bincount(train.labels), np.full(10, 16))
    assert train.class_names[0] == "airplane" and train.class_names[9] == "truck"


def test_one_class_by_name(cifar_dir):
    every = gdata.load("cifar10", "train", str(cifar_dir))
    horses = gdata.load("cifar10/horse", "train", str(cifar_dir))
    assert horses.class_names == ("horse",) and len(horses) == 16 and not horses.labels.any()
    np.testing.assert_array_equal(horses.images, every.images[every.labels == 7])


def test_cifar_zip_equals_folder(cifar_dir, tmp_path):
    root = tmp_path / "zipped"
    (root / "cifar10").mkdir(parents=True)
    with zipfile.ZipFile(root / "cifar10" / "cifar10_q.zip", "w") as z:
        for p in sorted((cifar_dir / "cifar10").rglob("*.jpg")):
            z.write(p, p.relative_to(cifar_dir / "cifar10"))
    a = gdata.load("cifar10", "train", str(cifar_dir))
    b = gdata.load("cifar10", "train", str(root))
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)


def test_replacing_one_image_of_a_folder_copy_refreshes_the_decoded_cache(cifar_dir, tmp_path):
    import shutil

    from PIL import Image

    shutil.copytree(cifar_dir / "cifar10", tmp_path / "cifar10")
    before = gdata.load("cifar10", "train", str(tmp_path))
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "cifar10/cifar10_jpg/train/airplane/0000.jpg")
    after = gdata.load("cifar10", "train", str(tmp_path))
    assert after.images[0].max() < 10 < before.images[0].max()
    assert np.array_equal(after.images[1:], before.images[1:])


def test_a_damaged_cifar_image_is_a_data_error_naming_it(cifar_dir, tmp_path):
    import shutil

    shutil.copytree(cifar_dir / "cifar10", tmp_path / "cifar10")
    (tmp_path / "cifar10/cifar10_jpg/train/airplane/0001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"CIFAR-10 image .*train/airplane/0001.jpg is unreadable"):
        gdata.load("cifar10", "train", str(tmp_path))


def test_env_var_selects_local_source(cifar_dir, monkeypatch):
    monkeypatch.setenv("GDL_DATA_DIR", str(cifar_dir))
    assert len(gdata.load("cifar10", "test")) == 40


def test_mnist_idx_and_quickdraw_bin(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "mnist").mkdir()
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "mnist" / "t10k-images.idx3-ubyte.gz", images)
    write_idx(tmp_path / "mnist" / "t10k-labels.idx1-ubyte.gz", np.arange(7))
    mnist = gdata.load("mnist", "test", str(tmp_path))
    assert mnist.images.shape == (7, 28, 28, 1) and np.array_equal(mnist.images[..., 0], images)
    assert list(mnist.labels) == list(range(7))

    (tmp_path / "quickdraw").mkdir()
    images.tofile(tmp_path / "quickdraw" / "cats7.bin")
    cats = gdata.load("quickdraw/cat", "train", str(tmp_path))
    assert np.array_equal(cats.images[..., 0], images)


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(),
                    reason=f"no MNIST copy in {SHARED_DATA} (set $GDL_TEST_DATA_DIR)")
def test_offline_mnist_copy():
    test = gdata.load("mnist", "test", str(SHARED_DATA))
    assert test.images.shape == (10000, 28, 28, 1)
    assert np.array_equal(np.bincount(test.labels)[:3], [980, 1135, 1032])


@pytest.mark.parametrize("name, split, message", [
    ("imagenet", "train", "unknown data set 'imagenet'"),
    ("cifar10", "validation", "unknown split 'validation'"),
    ("quickdraw", "train", "give a Quick Draw category"),
    ("cifar10/unicorn", "train", "no class 'unicorn'; expected one of airplane, automobile"),
    ("mnist", "train", "no folder .*mnist"),
])
def test_bad_names_are_clear_errors(cifar_dir, name, split, message):
    with pytest.raises(DataError, match=message):
        gdata.load(name, split, str(cifar_dir))


def test_missing_and_corrupt_data_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="data dir .*nowhere does not exist"):
        gdata.load("cifar10", "train", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="source 'local' needs a data dir"):
        gdata.load("cifar10", "train", None, source="local")
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        gdata.load("cifar10", "train", str(tmp_path))
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images.idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(DataError, match="IDX"):
        gdata.load("mnist", "train", str(tmp_path))
    write_idx(tmp_path / "mnist" / "train-images.idx3-ubyte.gz", np.zeros((4, 32, 32), np.uint8))
    write_idx(tmp_path / "mnist" / "train-labels.idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match=r"not 28x28 images with one label each: \(4, 32, 32\) images"):
        gdata.load("mnist", "train", str(tmp_path))
    (tmp_path / "quickdraw").mkdir()
    (tmp_path / "quickdraw" / "full_numpy_bitmap_camel.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="full_numpy_bitmap_camel.npy is not a readable .npy file"):
        gdata.load("quickdraw/camel", "train", str(tmp_path))


def test_a_mesh_of_more_devices_than_there_are_is_a_config_error():
    assert parallel.make_mesh(1).devices.size == 1
    for n in (0, jax.device_count() + 1):
        with pytest.raises(ConfigError, match=f"num_devices must be 1 to {jax.device_count()}"):
            parallel.make_mesh(n)


def test_batch_size_bounds():
    assert gdata.steps_per_epoch(50_000, 32) == 1562
    with pytest.raises(ConfigError, match="batch_size must be positive"):
        gdata.steps_per_epoch(100, 0)
    with pytest.raises(ConfigError, match="larger than the 100 training examples"):
        gdata.steps_per_epoch(100, 101)


def test_on_device_epoch_permutation_and_batches():
    key = jax.random.PRNGKey(0)
    p0 = gdata.epoch_permutation(key, 0, 50)
    assert sorted(np.asarray(p0).tolist()) == list(range(50))
    assert np.array_equal(p0, gdata.epoch_permutation(key, 0, 50))
    assert not np.array_equal(p0, gdata.epoch_permutation(key, 1, 50))

    mesh = parallel.make_mesh()
    host = gdata.ArrayData(np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1).repeat(2, 1),
                           np.arange(50, dtype=np.int32), ("x",))
    dev = gdata.to_device(host, mesh)
    images, labels = jax.jit(lambda d, p, i: gdata.gather_batch(d, p, i, 10, mesh))(dev, p0, jnp.int32(2))
    assert np.array_equal(labels, p0[20:30])
    np.testing.assert_allclose(images[:, 0, 0, 0], np.asarray(p0[20:30]) / 255.0, rtol=1e-6)
    lo_hi = gdata.to_float(jnp.array([0, 255], jnp.uint8), (-1.0, 1.0))
    np.testing.assert_allclose(lo_hi, [-1.0, 1.0])


def test_tfds_source_without_a_data_dir():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        cifar = gdata.load("cifar10", "test")           # no data dir set: tfds
        mnist = gdata.load("mnist", "train", source="tfds")
    assert cifar.images.shape == (6, 32, 32, 3) and cifar.class_names[0] == "airplane"
    assert mnist.images.shape == (6, 28, 28, 1) and mnist.labels.dtype == np.int32


def test_tfds_quickdraw_keeps_one_category():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=1500):
        cats = gdata.load("quickdraw/cat", "train", source="tfds")
        ds = tfds.data_source("quickdraw_bitmap", split="train")  # the same mock examples, read by hand
        cat = ds.dataset_info.features["label"].names.index("cat")
        want = [np.asarray(ds[i]["image"]) for i in range(len(ds)) if ds[i]["label"] == cat]
        with pytest.raises(DataError, match="no category 'kitten'"):
            gdata.load("quickdraw/kitten", "train", source="tfds")
    assert len(want) > 0 and cats.class_names == ("cat",)
    np.testing.assert_array_equal(cats.images, np.stack(want))
    assert cats.images.shape[1:] == (28, 28, 1) and not cats.labels.any()
