"""CelebA sources and the streamed feeder on tiny copies written in the real layouts."""

import gzip
import os
import pathlib
import textwrap
import zipfile

import jax
import numpy as np
import pytest
from PIL import Image

from gdl_jax import data as gdata
from gdl_jax import parallel
from gdl_jax.data.celeba import CelebA, open_celeba, read_attributes, resize_face
from gdl_jax.errors import ConfigError, DataError

ATTRS = ["Smiling", "Male", "Eyeglasses"]


def face(i: int) -> np.ndarray:
    """A 109x89 (HxW) 'face' whose grey level identifies it, with a bright top band."""
    img = np.full((109, 89, 3), (i * 37) % 200 + 20, np.uint8)
    img[:10] = 250
    return img


def write_celeba(root, n=12, layout="zip", seed=0, extra_rows=True):
    """root/celeba/ as the offline copy (zip of celebA/<id>.jpg) or the official folder layout."""
    folder = root / "celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    lines = [str(n + 2), " ".join(ATTRS)]
    if layout == "zip":
        z = zipfile.ZipFile(folder / "celeba_small.zip", "w")
    else:
        (folder / "img_align_celeba").mkdir()
    for i in range(1, n + 1):
        name = f"{i:06d}.jpg"
        if layout == "zip":
            path = root / name
            Image.fromarray(face(i)).save(path, quality=95)
            z.write(path, f"celebA/{name}")
        else:
            Image.fromarray(face(i)).save(folder / "img_align_celeba" / name, quality=95)
        lines.append(f"{name} " + " ".join(str(v) for v in rng.choice([-1, 1], len(ATTRS))))
    if layout == "zip":
        z.close()
    if extra_rows:
        lines += ["999998.jpg  1 1 1", "999999.jpg -1 -1 -1"]  # attributes without images are skipped
    with gzip.open(folder / "list_attr_celeba.txt.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    return root


def test_local_layouts_splits_and_attributes(tmp_path):
    zipped = CelebA(str(write_celeba(tmp_path / "a")), "all", size=16)
    folder = CelebA(str(write_celeba(tmp_path / "b", layout="folder")), "all", size=16)
    assert len(zipped) == len(folder) == 12 and zipped.attribute_names == tuple(ATTRS)
    np.testing.assert_array_equal(zipped.attributes, folder.attributes)
    np.testing.assert_array_equal(zipped.load([0, 5]), folder.load([0, 5]))
    train = CelebA(str(tmp_path / "a"), "train", size=16, test_size=3)
    test = CelebA(str(tmp_path / "a"), "test", size=16, test_size=3)
    assert train.files == zipped.files[:9] and test.files == zipped.files[9:]
    np.testing.assert_array_equal(test.attributes_of([0, 2]), zipped.attributes[[9, 11]])
    # the official partition file, where present, decides the split
    (tmp_path / "b" / "celeba" / "list_eval_partition.txt").write_text(
        "".join(f"{i:06d}.jpg {2 if i in (2, 7) else 0}\n" for i in range(1, 13)))
    assert CelebA(str(tmp_path / "b"), "test").files == ("000002.jpg", "000007.jpg")
    assert len(CelebA(str(tmp_path / "b"), "train")) == 10


def test_resize_and_crop(tmp_path):
    root = write_celeba(tmp_path)
    squashed = CelebA(str(root), size=32, crop="none").load([0])[0]
    square = CelebA(str(root), size=32, crop="square").load([0])[0]
    assert squashed.shape == square.shape == (32, 32, 3) and squashed.dtype == np.uint8
    # the bright band (top 10 of 109 rows) survives the squash; the central square cuts it off
    assert squashed[0].mean() > 230 and square[0].mean() < 100
    img = Image.fromarray(np.zeros((218, 178, 3), np.uint8))
    assert resize_face(img, 64, "square").size == (64, 64)


def test_bad_celeba_input(tmp_path):
    root = write_celeba(tmp_path)
    with pytest.raises(DataError, match="unknown CelebA crop 'center'"):
        CelebA(str(root), crop="center")
    with pytest.raises(DataError, match="test_size 12 must be in 1..11"):
        CelebA(str(root), "train", test_size=12)
    with pytest.raises(DataError, match="needs a data dir"):
        CelebA(None)
    with pytest.raises(DataError, match="no folder .*celeba"):
        CelebA(str(tmp_path / "celeba"))
    # a malformed attribute line
    with gzip.open(root / "celeba" / "list_attr_celeba.txt.gz", "wt") as f:
        f.write("3\nSmiling Male Eyeglasses\n000001.jpg 1 -1\n")
    with pytest.raises(DataError, match="line 3: 2 values for 3 attributes"):
        CelebA(str(root))
    with gzip.open(root / "celeba" / "list_attr_celeba.txt.gz", "wt") as f:
        f.write("3\nSmiling Male Eyeglasses\n000001.jpg 1 -1 0\n")
    with pytest.raises(DataError, match="values must be 1 or -1"):
        read_attributes(root / "celeba" / "list_attr_celeba.txt.gz")


def test_missing_image_is_a_clear_error(tmp_path):
    root = write_celeba(tmp_path, layout="folder")
    faces = CelebA(str(root), size=16)
    (root / "celeba" / "img_align_celeba" / "000003.jpg").unlink()
    (root / "celeba" / "img_align_celeba" / "000004.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="CelebA image 000003.jpg is missing or unreadable"):
        faces.load([2])
    with pytest.raises(DataError, match="CelebA image 000004.jpg is missing or unreadable"):
        faces.load([3])
    # and through the feeder's worker threads, the same one-line error
    mesh = parallel.make_mesh()
    feeder = gdata.StreamFeeder(faces, jax.random.PRNGKey(0), 12, mesh)
    try:
        with pytest.raises(DataError, match="missing or unreadable"):
            feeder.get(0, 1)
    finally:
        feeder.close()


def test_tfds_celeb_a_source():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=5):
        source = open_celeba("train", size=24)
        images = source.load([0, 3])
        attrs = source.attributes_of([0, 1])
    assert len(source) == 5 and images.shape == (2, 24, 24, 3) and images.dtype == np.uint8
    assert len(source.attribute_names) == 40 and "Smiling" in source.attribute_names
    assert attrs.shape == (2, 40) and set(np.unique(attrs)) <= {-1, 1}


def _mnist_like(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return gdata.ArrayData(rng.integers(0, 256, (n, 6, 6, 1), dtype=np.uint8),
                           rng.integers(0, 10, n).astype(np.int32), tuple("0123456789"))


@pytest.mark.parametrize("prefetch, workers, processes", [(1, 1, False), (3, 2, False), (3, 2, True)])
def test_stream_feeder_serves_the_device_feeders_batches(prefetch, workers, processes):
    """Same data, same key: the streamed batches equal the on-device ones, across epochs and
    after jumping to another step (a resume)."""
    data, mesh, key = _mnist_like(), parallel.make_mesh(), jax.random.PRNGKey(3)
    device = gdata.DeviceFeeder(gdata.to_device(data, mesh), key, 8, mesh)
    stream = gdata.StreamFeeder(gdata.ArraySource(data), key, 8, mesh, labels=data.labels,
                                workers=workers, prefetch=prefetch, processes=processes)
    try:
        assert device.steps_per_epoch == stream.steps_per_epoch == 5
        seen = []
        for step, k in [(0, 2), (2, 2), (4, 1), (5, 4), (9, 1), (3, 2), (12, 1)]:
            stream.stage(step, k) if step == 5 else None
            want, got = gdata.feed_batches(device, step, k), gdata.feed_batches(stream, step, k)
            for (wx, wy), (gx, gy) in zip(want, got):
                np.testing.assert_array_equal(gx, wx)
                np.testing.assert_array_equal(gy, wy)
                assert gx.dtype == np.float32
            seen += [x for x, _ in got]
        # one epoch (steps 0-4) shows 40 distinct images; the next epoch's order differs
        first = np.concatenate(seen[:5]).reshape(40, -1)
        assert len({row.tobytes() for row in first}) == 40
        assert not np.array_equal(seen[0], seen[5])
    finally:
        stream.close()


def test_decode_processes_ignore_ctrl_c():
    """A terminal's Ctrl-C reaches the decode processes too: they ignore it, so that the training
    process's loop can stop with a checkpoint before a dead decoder breaks the feeder."""
    import subprocess
    import sys

    code = ("import signal\nfrom gdl_jax.data import feeders\n"
            "feeders._set_worker_source(None)\nprint(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120).stdout.strip() == "True"


def test_decode_processes_end_with_a_training_process_killed_outright(tmp_path):
    """SIGKILL (the OOM killer) gives the feeder no chance to close: its decode processes see
    their parent gone and exit instead of waiting on their queue for ever."""
    import signal
    import subprocess
    import sys
    import time

    code = textwrap.dedent("""
        import concurrent.futures, multiprocessing, os, time
        from gdl_jax.data import feeders
        def pid(_):
            time.sleep(0.2)   # both processes take some
            return os.getpid()
        if __name__ == "__main__":
            pool = concurrent.futures.ProcessPoolExecutor(
                2, mp_context=multiprocessing.get_context("spawn"), initializer=feeders._set_worker_source,
                initargs=(None,))
            print(*set(pool.map(pid, range(8))), flush=True)
            time.sleep(120)
    """)
    (tmp_path / "trainer.py").write_text(code)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "trainer.py")], stdout=subprocess.PIPE, text=True)
    workers = [int(w) for w in proc.stdout.readline().split()]
    assert workers and all(os.path.exists(f"/proc/{w}") for w in workers)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30

    def alive(pid):   # an orphan is reaped by init; a zombie counts as gone
        try:
            return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
        except OSError:
            return False
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "decode processes outlived their training process"


def test_the_same_dispatch_asked_twice_is_served_again_and_the_queue_goes_on():
    """The loop's convolution-form timing and its first dispatch ask for the same batches: the
    second ask gets the first's arrays (a new decode would make new ones), and the next
    dispatch's batches are still the right ones."""
    data, mesh, key = _mnist_like(), parallel.make_mesh(), jax.random.PRNGKey(3)
    device = gdata.DeviceFeeder(gdata.to_device(data, mesh), key, 8, mesh)
    stream = gdata.StreamFeeder(gdata.ArraySource(data), key, 8, mesh, labels=data.labels, prefetch=2)
    try:
        first = stream.get(0, 2)
        assert stream.get(0, 2) is first
        for (wx, _), (gx, _) in zip(gdata.feed_batches(device, 2, 1), gdata.feed_batches(stream, 2, 1)):
            np.testing.assert_array_equal(gx, wx)
    finally:
        stream.close()


def test_stream_feeder_bad_settings():
    data, mesh = _mnist_like(), parallel.make_mesh()
    with pytest.raises(ConfigError, match="workers and prefetch must be positive"):
        gdata.StreamFeeder(gdata.ArraySource(data), jax.random.PRNGKey(0), 8, mesh, prefetch=0)
    with pytest.raises(ConfigError, match="batch_size 64 is larger than the 40"):
        gdata.StreamFeeder(gdata.ArraySource(data), jax.random.PRNGKey(0), 64, mesh)
