"""The latent explorer: its operations on a small linear stand-in model, its HTTP API's errors,
the binary's start-up errors, and the page in headless Chromium over a tiny trained VAE."""

import base64
import io
import pathlib
import shutil
import socket
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from PIL import Image

from gdl_jax.errors import DataError
from gdl_jax.explore import core
from gdl_jax.explore.core import Explorer

# One worker runs this module (setup.cfg: --dist loadgroup), so the trained VAE fixture trains once.
pytestmark = pytest.mark.xdist_group("explore")

ROOT = pathlib.Path(__file__).resolve().parents[1]


class LinearModel:
    """A stand-in with the interface gdl_jax.load returns: images = sigmoid(z @ W), 4x4x1."""
    kind, encodes, variational, z_dim, image_shape = "vae", True, True, 3, (4, 4, 1)
    config = ml_collections.ConfigDict({"data": {"name": "celeba"}})
    attribute_names = ("Smiling", "Male")

    def __init__(self):
        self.w = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
        self.vectors = {"Smiling": np.array([1.0, 0.0, 0.0]), "Male": np.array([0.0, 0.5, -1.0])}
        self.latents = {}

    def decode(self, z):
        z = np.asarray(z, np.float32)
        out = (1 / (1 + np.exp(-np.atleast_2d(z) @ self.w))).reshape(-1, 4, 4, 1)
        return out[0] if z.ndim == 1 else out

    def encode(self, images):
        x = np.asarray(images, np.float32).reshape(-1, 16) / 255.0
        z = x[:, :3] - x[:, 3:6]
        return z[0] if np.ndim(images) == 3 else z

    def sample_latents(self, n, seed=0):
        return np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)

    def attribute_vector(self, name):
        if name not in self.vectors:
            raise DataError(f"unknown CelebA attribute {name!r}")
        return self.vectors[name]


def pixels(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decode_moves_along_attribute_vectors_and_shows_the_decoders_output():
    model = LinearModel()
    explorer = Explorer(model)
    out = explorer.decode([0.1, 0.2, 0.3], {"Smiling": 1.5, "Male": -0.5})
    z = np.float32([0.1, 0.2, 0.3]) + 1.5 * np.float32([1, 0, 0]) - 0.5 * np.float32([0, 0.5, -1])
    np.testing.assert_allclose(out["z"], z, rtol=1e-6)
    np.testing.assert_array_equal(pixels(out["png"]), core.to_uint8(model.decode(z))[..., 0])
    for z_bad, attributes, message in [([0.0, 1.0], None, "z must have 3 values"),
                                       ([0, 0, float("nan")], None, "every z value must be a finite number"),
                                       ("0,0,0", None, "z must be a list of 3 numbers"),
                                       ([0, 0, 0], {"Bald": 1.0}, "unknown CelebA attribute 'Bald'"),
                                       ([0, 0, 0], {"Smiling": 11.0}, r"within \+-10"),
                                       ([0, 0, 0], {"Smiling": "a lot"}, "must be a finite number")]:
        with pytest.raises(DataError, match=message):
            explorer.decode(z_bad, attributes)


def test_grid_cells_are_the_decoded_prior_draws_in_row_major_order():
    model = LinearModel()
    out = Explorer(model).grid(7)
    z = np.asarray(out["z"], np.float32)
    np.testing.assert_array_equal(z, model.sample_latents(core.GRID_SAMPLES, 7))
    grid = pixels(out["png"])
    assert grid.shape == (4 * core.GRID_COLS, 4 * core.GRID_COLS)
    row, col = divmod(13, core.GRID_COLS)
    np.testing.assert_array_equal(grid[4 * row:4 * row + 4, 4 * col:4 * col + 4],
                                  core.to_uint8(model.decode(z[13]))[..., 0])
    for seed in (-1, 2**32, 1.5, "3", True):
        with pytest.raises(DataError, match="seed must be an integer"):
            Explorer(model).grid(seed)


def test_uploads_are_resized_with_a_note_and_non_images_are_refused():
    model = LinearModel()
    explorer = Explorer(model, picks=np.zeros((2, 4, 4, 1), np.uint8))
    image = np.random.default_rng(1).integers(0, 256, (10, 6, 3), dtype=np.uint8)
    out = explorer.encode_upload(png_bytes(image))
    assert out["note"] == "resized from 6x10 to 4x4, the model's input size"
    seen = np.asarray(Image.fromarray(image).convert("L").resize((4, 4), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(pixels(out["input_png"]), seen)
    np.testing.assert_allclose(out["z"], model.encode(seen[..., None]), rtol=1e-6)
    assert explorer.encode_upload(png_bytes(np.zeros((4, 4), np.uint8)))["note"] == "4x4 image"
    with pytest.raises(DataError, match="not an image Pillow can read"):
        explorer.encode_upload(b"just some text")
    with pytest.raises(DataError, match="the upload is empty"):
        explorer.encode_upload(b"")
    with pytest.raises(DataError, match=r"index must be an integer in \[0, 2\)"):
        explorer.encode_pick(2)


def test_a_generator_offers_no_encoding_and_a_2d_latent_gets_a_plane():
    model = LinearModel()
    model.encodes, model.kind, model.z_dim = False, "gan", 2
    model.w = model.w[:2]
    explorer = Explorer(model, picks=np.zeros((2, 4, 4, 1), np.uint8), picks_note="unused")
    info = explorer.info()
    assert info["picks"] == [] and not info["encodes"] and info["notes"] == []
    assert info["plane"]["x"] == [-3.3, 3.3] and info["plane"]["points"] == []   # the prior's bulk + 5%
    with pytest.raises(Exception, match="a gan has no encoder"):
        explorer.encode_upload(png_bytes(np.zeros((4, 4), np.uint8)))
    model.latents = {"scatter_z": np.array([[0.0, 1.0], [2.0, -1.0], [1.0, 0.0]]),
                     "scatter_labels": np.array([3, 1, 4])}
    plane = Explorer(model).info()["plane"]
    assert plane["x"] == pytest.approx([-0.1, 2.1]) and plane["y"] == pytest.approx([-1.1, 1.1])
    assert plane["labels"] == [3, 1, 4] and plane["points"][1] == [2.0, -1.0]


def test_api_errors_are_json_messages_and_the_server_keeps_serving():
    pytest.importorskip("starlette")
    pytest.importorskip("httpx2")
    from starlette.testclient import TestClient

    from gdl_jax.explore.app import create_app

    model = LinearModel()
    explorer = Explorer(model)
    client = TestClient(create_app(explorer), raise_server_exceptions=False)
    assert "gdl_jax latent explorer" in client.get("/").text
    assert client.get("/api/info").json()["attributes"] == ["Smiling", "Male"]
    for path, kwargs, message in [
            ("/api/decode", {"content": b"{not json"}, "the request body is not JSON"),
            ("/api/decode", {"json": [1, 2]}, "must be a JSON object"),
            ("/api/decode", {"json": {"z": [0, 0, 0], "attributes": {"Bald": 1}}}, "unknown CelebA attribute 'Bald'"),
            ("/api/encode", {"files": {"file": ("a.txt", b"hello", "text/plain")}}, "not an image Pillow can read"),
            ("/api/encode", {"data": {"file": "text"}}, "an image file in 'file'"),
            ("/api/pick", {"json": {"index": 0}}, "no test images to pick from")]:
        reply = client.post(path, **kwargs)
        assert reply.status_code == 400 and message in reply.json()["error"], (path, reply.text)
    model.decode = lambda z: 1 / 0   # a bug: a 500 with its name, and the next request is served
    reply = client.post("/api/decode", json={"z": [0, 0, 0]})
    assert reply.status_code == 500 and "internal error (ZeroDivisionError" in reply.json()["error"]
    del model.decode
    assert client.post("/api/decode", json={"z": [0, 0, 0]}).status_code == 200


def _explore(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "experiments.explore", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_binary_start_error_is_one_line(tmp_path):
    """The binary's errors print as one line (what they say: the tests below, in process)."""
    pytest.importorskip("starlette")
    proc = _explore(f"--workdir={tmp_path / 'empty'}")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "holds no gdl_jax run (no config.json)" in last, proc.stderr[-1500:]


def test_what_cannot_be_explored_or_served_is_a_clear_error(tmp_path):
    import gdl_jax
    from gdl_jax.errors import ConfigError

    (tmp_path / "classifier").mkdir()
    (tmp_path / "classifier" / "config.json").write_text('{"task": "classifier", "model": {"name": "cnn"}}')
    with pytest.raises(ConfigError, match="holds a 'classifier' run of 'cnn'"):
        gdl_jax.load(tmp_path / "classifier")
    pytest.importorskip("starlette")
    from gdl_jax.explore import app

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port} .*pick another --port"):
            app.bind("127.0.0.1", port)
    with pytest.raises(ConfigError, match=r"port must be in \[0, 65535\], got 70000"):
        app.bind("127.0.0.1", 70000)
    sock = app.bind("127.0.0.1", 0)   # any free port, listening
    socket.create_connection(sock.getsockname(), timeout=5).close()
    sock.close()


@pytest.fixture(scope="module")
def vae_workdir(mnist_dir, tmp_path_factory):
    """A VAE with a 2-D latent, trained for one epoch on the tiny MNIST (its analysis writes the
    plane's scatter into latents.npz)."""
    from experiments.configs import vae_mnist
    from gdl_jax import tasks

    config = vae_mnist.get_config()
    config.data.data_dir = str(mnist_dir)
    config.update(batch_size=16, num_epochs=1, steps_per_dispatch=2, log_every_steps=4, checkpoint_every_steps=4,
                  eval_batch_size=16)
    workdir = tmp_path_factory.mktemp("explore_vae")
    tasks.train_and_evaluate(config, workdir)
    return workdir


class Server:
    """experiments.explore on any free port, stopped on exit."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "experiments.explore", "--port=0", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> str:
        line = self.proc.stdout.readline()
        if "http://" not in line:
            self.proc.kill()
            raise AssertionError(f"the explorer did not start: {line}{self.proc.stderr.read()[-2000:]}")
        return line.split("http://")[1].split()[0].rstrip("/")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_a_run_without_a_checkpoint_is_a_clear_error(vae_workdir, tmp_path):
    import gdl_jax
    from gdl_jax.errors import CheckpointError

    (tmp_path / "untrained").mkdir()
    shutil.copy(vae_workdir / "config.json", tmp_path / "untrained")
    with pytest.raises(CheckpointError, match="no checkpoint in .*untrained/checkpoints; train first"):
        gdl_jax.load(tmp_path / "untrained")


def test_page_in_chromium_shows_the_decoders_output_for_clicks_and_slider_moves(vae_workdir, mnist_dir):
    pytest.importorskip("starlette")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[test]'")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs a Chromium browser: Debian's chromium package (apt-get install chromium)")
    import gdl_jax

    model = gdl_jax.load(vae_workdir)

    def shown(page) -> tuple[np.ndarray, np.ndarray]:
        """The current latent the page reports, and the image it displays."""
        z = np.asarray(page.eval_on_selector("#z", "e => JSON.parse(e.dataset.z)"), np.float32)
        return z, pixels(page.get_attribute("#current", "src"))

    def after(page, action) -> tuple[np.ndarray, np.ndarray]:
        old = page.eval_on_selector("#z", "e => e.dataset.z || ''")
        action()
        page.wait_for_function("old => (document.getElementById('z').dataset.z || '') !== old", arg=old)
        page.wait_for_function("() => !document.getElementById('message').classList.contains('error')")
        return shown(page)

    def assert_decoded(z, image):
        np.testing.assert_array_equal(image, core.to_uint8(model.decode(z))[..., 0])

    with Server(f"--workdir={vae_workdir}", f"--data_dir={mnist_dir}") as address, \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"http://{address}/")
        page.wait_for_function("() => document.body.dataset.ready === '1' && document.getElementById('z').dataset.z")
        z0, image0 = shown(page)
        np.testing.assert_array_equal(z0, model.sample_latents(core.GRID_SAMPLES, 0)[0])
        assert_decoded(z0, image0)
        info = page.evaluate("() => info")
        assert len(info["plane"]["points"]) == 32 and len(info["picks"]) == 12

        # a click on the plane decodes the point under the cursor
        plane = page.locator("#plane")
        box = plane.bounding_box()
        fx, fy = 0.25, 0.7
        z1, image1 = after(page, lambda: plane.click(position={"x": fx * box["width"], "y": fy * box["height"]}))
        (x0, x1), (y0, y1) = info["plane"]["x"], info["plane"]["y"]
        pixel = np.array([(x1 - x0) / box["width"], (y1 - y0) / box["height"]])   # a click lands within 2 px
        np.testing.assert_allclose(z1, [x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)], rtol=0, atol=2 * pixel.max())
        assert_decoded(z1, image1)
        assert not np.array_equal(image1, image0)

        # morph: A = the plane point, B = a grid sample; the slider moved 25 steps by keyboard
        page.click("#use-a")
        grid = page.locator("#grid")
        box = grid.bounding_box()
        z_b, _ = after(page, lambda: grid.click(position={"x": box["width"] * 2.5 / 6, "y": box["height"] * 1.5 / 6}))
        np.testing.assert_array_equal(z_b, model.sample_latents(core.GRID_SAMPLES, 0)[6 + 2])
        page.click("#use-b")
        page.focus("#morph")
        for _ in range(25):
            page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.getElementById('alpha').textContent === '0.25'")
        page.wait_for_function("want => Math.abs(JSON.parse(document.getElementById('z').dataset.z)[0] - want) < 1e-4",
                               arg=float(0.75 * z1[0] + 0.25 * z_b[0]))
        z2, image2 = shown(page)
        np.testing.assert_allclose(z2, 0.75 * z1 + 0.25 * z_b, rtol=1e-5, atol=1e-6)
        assert_decoded(z2, image2)

        # a file that is not an image: the page says so, and the server keeps serving
        page.set_input_files("#upload", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi"}])
        page.wait_for_function("() => document.getElementById('message').classList.contains('error')")
        assert "not an image Pillow can read" in page.text_content("#message")
        # a wrong-sized image is resized, and the page says so
        digit = np.zeros((40, 50), np.uint8)
        digit[8:32, 20:28] = 255
        z3, image3 = after(page, lambda: page.set_input_files(
            "#upload", files=[{"name": "digit.png", "mimeType": "image/png", "buffer": png_bytes(digit)}]))
        assert page.text_content("#message") == "resized from 50x40 to 28x28, the model's input size"
        seen, _ = core.read_image(png_bytes(digit), model.image_shape)
        np.testing.assert_allclose(z3, model.encode(seen), rtol=1e-5, atol=1e-6)
        assert_decoded(z3, image3)
        assert page.get_attribute("#download", "href") == page.get_attribute("#current", "src")
        browser.close()
