"""Shared fixtures: tiny data sets written in the real on-disk layouts, and tiny configs."""

import atexit
import os
import shutil
import tempfile

from gdl_jax import runtime

# Tests compile hundreds of tiny programs and run each a few times, so LLVM's optimisation is
# wasted on them: without it XLA:CPU compiles a tiny GAN train step 3.4x faster and a tiny GAN
# run takes 11 s instead of 23 (Zen 4). Set in the environment, before jax starts, so the binaries
# tests start compile the same way; every comparison a test makes is between programs compiled
# alike. Benchmarks and training runs keep XLA's default (-O3).
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
runtime.add_xla_flag(TEST_XLA_FLAG)
# One persistent XLA compilation cache for the whole run, shared by the xdist workers and the
# binaries tests start (the controller makes it; workers and subprocesses inherit the variable):
# trainer runs in many tests compile the same steps, which are then read back instead.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gdl_jax_test_xla_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
# jax writes an entry without a lock unless the cache has a size limit, so a worker can read one
# another is still writing: it warns and compiles again (setup.cfg silences that one message). A
# size limit would lock every read and write: 8.6 instead of 5.5 minutes for the suite (Zen 4).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
runtime.configure()  # the binaries' XLA defaults, before jax starts

import gzip  # noqa: E402
import pathlib  # noqa: E402
import struct  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from gdl_jax.data.sources import CIFAR10_CLASSES  # noqa: E402

# Real data sets for the tests that need them (the offline MNIST, Quick Draw, CIFAR-10 and CelebA
# copies, in the layouts of README "Running experiments"): $GDL_TEST_DATA_DIR, else a shared/data
# folder beside the checkout; those tests skip, saying so, without them.
TEST_DATA_ENV = "GDL_TEST_DATA_DIR"
SHARED_DATA = pathlib.Path(os.environ.get(TEST_DATA_ENV)
                           or pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data")


def xla_flags_without(fragment: str) -> str:
    """$XLA_FLAGS less each flag containing `fragment`: for a process that must not inherit it."""
    return " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if fragment not in f)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """No test reads the user's data dir or writes the user's cache. Convolutions take the
    fixed rules (also in the binaries tests start): measuring every tiny test shape's forms
    would cost compile time, and the numbers must not depend on a measurement
    (tests/test_conv.py tests the measured choice)."""
    monkeypatch.delenv("GDL_DATA_DIR", raising=False)
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("GDL_JAX_CONV", "rule")


def _class_image(rng, label: int) -> np.ndarray:
    """A 32x32 image whose colour and stripe direction encode the label (learnable)."""
    base = np.array([(label * 25) % 256, (label * 70) % 256, 255 - label * 25], np.float32)
    img = rng.normal(0, 20, (32, 32, 3)) + base
    if label % 2:
        img[::4] += 60
    else:
        img[:, ::4] += 60
    return np.clip(img, 0, 255).astype(np.uint8)


def write_cifar_folder(root: pathlib.Path, n_train: int, n_test: int, seed: int = 0) -> pathlib.Path:
    """Writes root/cifar10/cifar10_jpg/{train,test}/<class>/<i>.jpg (the offline copy's layout)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for label, name in enumerate(CIFAR10_CLASSES):
            folder = root / "cifar10" / "cifar10_jpg" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(_class_image(rng, label)).save(folder / f"{i:04d}.jpg", quality=95)
    return root


def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory) -> pathlib.Path:
    """A tiny CIFAR-10 in the offline layout: 16 train and 4 test images per class."""
    return write_cifar_folder(tmp_path_factory.mktemp("data"), n_train=16, n_test=4)


@pytest.fixture
def tiny_config(cifar_dir):
    """The CNN config, shrunk to seconds: 4 epochs of 20 steps on the tiny data set."""
    from experiments.configs.cnn_cifar10 import get_config

    c = get_config()
    c.data.data_dir = str(cifar_dir)
    c.batch_size = 8
    c.num_epochs = 4
    c.steps_per_dispatch = 2
    c.log_every_steps = 5
    c.checkpoint_every_steps = 6
    c.eval_batch_size = 16
    c.num_prediction_examples = 4
    return c


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> pathlib.Path:
    """A tiny MNIST in IDX format: 64 train and 32 test 28x28 images of blurred 'digits'."""
    root = tmp_path_factory.mktemp("mnist_data")
    (root / "mnist").mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 32)):
        labels = rng.integers(0, 10, n)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):  # a bar whose position encodes the label
            images[i, 4:24, 2 + 2 * label:6 + 2 * label] = 255
        write_idx(root / "mnist" / f"{prefix}-images.idx3-ubyte.gz", images)
        write_idx(root / "mnist" / f"{prefix}-labels.idx1-ubyte.gz", labels)
    return root


def write_quickdraw_cats(root: pathlib.Path, n: int = 40) -> pathlib.Path:
    """A Quick Draw folder of n random 28x28 'cats' under root; returns root."""
    (root / "quickdraw").mkdir(parents=True)
    np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8).tofile(root / "quickdraw" / f"cats{n}.bin")
    return root


def tiny_gan_config(data_dir):
    """The book's GAN config shrunk to seconds: 12 steps of batch 8 on 8-filter networks."""
    from experiments.configs import gan_quickdraw

    c = gan_quickdraw.get_config()
    c.data.data_dir = str(data_dir)
    c.model.discriminator.update(filters=(8, 8), kernels=(3, 3), strides=(2, 2))
    c.model.generator.update(initial_shape=(7, 7, 8), upsample=(2, 2), filters=(8, 1), kernels=(3, 3),
                             strides=(1, 1))
    c.z_dim = 8
    c.batch_size = 8
    c.num_steps = 12
    c.steps_per_dispatch = 2
    c.log_every_steps = 4
    c.checkpoint_every_steps = 5
    c.analysis.sample_steps = (2, 8, 12)
    c.analysis.num_samples = 4
    c.analysis.nearest_samples = 3
    c.analysis.quality_every_steps = 3
    c.analysis.novelty_held_out = 0   # every cat trains (tests/test_gan.py turns it on)
    return c


def conv_path(fn, *args) -> str:
    """'lax' when the traced function runs lax's convolutions itself, else 'custom' (a custom-VJP
    form of gdl_jax.models.conv; the dense layers' custom-VJP matmul does not count)."""
    import re

    import jax

    text = str(jax.make_jaxpr(lambda *a: fn(*a))(*args))   # a new function: no cached trace
    names = re.findall(r"custom_vjp_call\[\s*name=(\w+)", text)
    return "custom" if any(n != "matmul" for n in names) else "lax"
