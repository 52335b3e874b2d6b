"""What the latent explorer page asks of a trained model, without the web: decode a latent
(moved along attribute vectors), sample a grid from the prior, encode an uploaded or picked
image, and the 2-D latent plane with its scatter of encoded test images.

Works over anything `gdl_jax.load` returns (TrainedModel, TrainedGenerator). Images travel as
PNG data URLs of the decoder's output rounded to 8 bits, at the model's own resolution (the
page scales them up). Bad input raises a GdlError whose message the page shows.
"""

from __future__ import annotations

import base64
import io
import math
import time
from typing import Any

import numpy as np
from PIL import Image

from gdl_jax.errors import ConfigError, DataError, GdlError

GRID_COLS = 6
GRID_SAMPLES = GRID_COLS * GRID_COLS
PICKS = 12                  # test images offered to pick from (encoders only)
PLANE_POINTS = 2000         # encoded test images drawn on the 2-D plane
MAX_UPLOAD_BYTES = 20 * 2**20
COEFFICIENT_LIMIT = 10.0    # an attribute slider's largest |coefficient| the server takes


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] as the 8-bit values the page shows."""
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def png_data_url(image: np.ndarray) -> str:
    """One (H, W, C) image in [0, 1] (C 1 or 3) as a lossless PNG data URL."""
    pixels = to_uint8(image)
    pil = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def tile(images: np.ndarray, cols: int) -> np.ndarray:
    """(N, H, W, C) images as one (rows * H, cols * W, C) image, row-major, no gaps (the page
    maps a click to its cell by dividing by the cell size)."""
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    padded = np.concatenate([images, np.zeros((rows * cols - n, h, w, c), images.dtype)])
    return padded.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def read_image(data: bytes, shape: tuple[int, int, int]) -> tuple[np.ndarray, str]:
    """An uploaded file as a uint8 image of `shape` (H, W, C): decoded by Pillow, converted to
    greyscale or RGB, and resized (the whole frame, as the models' data is) when its size
    differs; returns the image and a note saying what was done to it."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise DataError(f"the upload is {len(data) / 2**20:.1f} MiB; the limit is {MAX_UPLOAD_BYTES // 2**20} MiB")
    if not data:
        raise DataError("the upload is empty; choose an image file")
    try:
        pil = Image.open(io.BytesIO(data))
        pil.load()
    except Exception as e:   # Pillow raises several types (UnidentifiedImageError, OSError, DecompressionBomb...)
        raise DataError(f"the uploaded file is not an image Pillow can read ({type(e).__name__})") from None
    h, w, c = shape
    pil = pil.convert("L" if c == 1 else "RGB")
    note = f"{pil.width}x{pil.height} image"
    if pil.size != (w, h):
        note = f"resized from {pil.width}x{pil.height} to {w}x{h}, the model's input size"
        pil = pil.resize((w, h), Image.Resampling.BILINEAR)
    pixels = np.asarray(pil, np.uint8)
    return pixels.reshape(h, w, c), note


def _finite_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{what} must be a finite number, got {value!r}")
    return float(value)


class Explorer:
    """The page's operations over a loaded model. picks: uint8 test images to offer for
    encoding (None: none available, `picks_note` says why)."""

    def __init__(self, model, picks: np.ndarray | None = None, picks_note: str = ""):
        self.model = model
        self.picks = picks if model.encodes else None
        self.picks_note = picks_note if model.encodes else ""
        self.plane = self._plane()
        self._grid_cache: dict[int, dict] = {}

    def _plane(self) -> dict | None:
        """For a 2-D latent: the clickable plane's bounds and its scatter of encoded test
        images (from the workdir's latents.npz), or None."""
        if self.model.z_dim != 2:
            return None
        latents = self.model.latents
        points = latents.get("scatter_z")
        if points is not None:
            lo, hi = points.min(0), points.max(0)
        elif "z_min" in latents:
            lo, hi = np.asarray(latents["z_min"]), np.asarray(latents["z_max"])
        else:   # the prior's bulk
            lo, hi = np.full(2, -3.0), np.full(2, 3.0)
        margin = 0.05 * np.maximum(hi - lo, 1e-3)
        lo, hi = lo - margin, hi + margin
        plane = {"x": [float(lo[0]), float(hi[0])], "y": [float(lo[1]), float(hi[1])], "points": [], "labels": []}
        if points is not None:
            keep = np.linspace(0, len(points) - 1, min(PLANE_POINTS, len(points))).astype(int)
            plane["points"] = np.round(points[keep], 4).tolist()
            plane["labels"] = np.asarray(latents["scatter_labels"])[keep].astype(int).tolist()
            plane["note"] = f"{len(keep)} encoded test images"
        else:
            plane["note"] = "no encoded test images in the workdir's latents.npz (re-run the analysis to see them)"
        return plane

    def warm_up(self) -> float:
        """Compiles every batch shape the page uses (one latent, the grid, one image); seconds taken."""
        t0 = time.perf_counter()
        z = np.zeros((1, self.model.z_dim), np.float32)
        self.model.decode(z)
        self.model.decode(np.zeros((GRID_SAMPLES, self.model.z_dim), np.float32))
        if self.model.encodes:
            self.model.encode(np.zeros((1, *self.model.image_shape), np.uint8))
        return time.perf_counter() - t0

    def info(self) -> dict:
        m = self.model
        attributes = list(m.attribute_names)
        notes = []
        if m.encodes and m.config.data.name == "celeba" and not attributes:
            notes.append("no attribute vectors in the workdir's latents.npz: re-run the analysis "
                         "(python -m experiments.analyze_autoencoder) to compute them")
        if self.picks_note:
            notes.append(self.picks_note)
        return {"kind": m.kind, "data": m.config.data.name, "z_dim": m.z_dim, "image_shape": list(m.image_shape),
                "encodes": m.encodes, "attributes": attributes, "coefficient_limit": COEFFICIENT_LIMIT,
                "grid_cols": GRID_COLS, "plane": self.plane, "notes": notes,
                "picks": [png_data_url(p / 255.0) for p in self.picks] if self.picks is not None else []}

    def latent(self, z: Any) -> np.ndarray:
        """A latent vector from the page's JSON (a list of z_dim finite numbers)."""
        if not isinstance(z, list):
            raise DataError(f"z must be a list of {self.model.z_dim} numbers")
        values = [_finite_number(v, "every z value") for v in z]
        if len(values) != self.model.z_dim:
            raise DataError(f"z must have {self.model.z_dim} values (the model's z_dim), got {len(values)}")
        return np.asarray(values, np.float32)

    def decode(self, z: Any, attributes: Any = None) -> dict:
        """z plus sum(coefficient x attribute vector), decoded: {"z": the decoded latent, "png"}."""
        z = self.latent(z)
        if attributes:
            if not isinstance(attributes, dict):
                raise DataError("attributes must map attribute names to coefficients")
            for name, coefficient in attributes.items():
                c = _finite_number(coefficient, f"the coefficient of {name!r}")
                if abs(c) > COEFFICIENT_LIMIT:
                    raise DataError(f"the coefficient of {name!r} must be within +-{COEFFICIENT_LIMIT:g}, got {c:g}")
                z = z + np.float32(c) * self.model.attribute_vector(str(name)).astype(np.float32)
        return {"z": z.tolist(), "png": png_data_url(self.model.decode(z))}

    def grid(self, seed: Any) -> dict:
        """GRID_SAMPLES draws of the prior for `seed`, tiled: {"png", "z": their latents, "cols"}."""
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise DataError(f"seed must be an integer in [0, 2^32), got {seed!r}")
        if seed not in self._grid_cache:
            z = self.model.sample_latents(GRID_SAMPLES, seed)
            images = self.model.decode(z)
            self._grid_cache = {seed: {"png": png_data_url(tile(images, GRID_COLS)), "z": z.tolist(),
                                       "cols": GRID_COLS}}
        return self._grid_cache[seed]

    def _encoded(self, image: np.ndarray, note: str) -> dict:
        z = self.model.encode(image)
        return {"z": z.tolist(), "input_png": png_data_url(image / 255.0), "note": note}

    def encode_upload(self, data: bytes) -> dict:
        """An uploaded image file's latent (the encoder's z / posterior mean), the image as the
        model sees it, and a note saying what was done to it."""
        if not self.model.encodes:
            raise ConfigError(f"a {self.model.kind} has no encoder: it cannot encode images")
        image, note = read_image(data, self.model.image_shape)
        return self._encoded(image, note)

    def encode_pick(self, index: Any) -> dict:
        """Test image `index` of the offered picks, encoded."""
        if self.picks is None:
            raise DataError(self.picks_note or "no test images to pick from")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.picks):
            raise DataError(f"index must be an integer in [0, {len(self.picks)}), got {index!r}")
        return self._encoded(self.picks[index], f"test image {index}")


def load_picks(model, data_dir: str | None, count: int = PICKS) -> tuple[np.ndarray | None, str]:
    """The first `count` test images of the model's data set (uint8, the model's input shape),
    from data_dir, else the run config's data.data_dir, else $GDL_DATA_DIR (else tfds); (None, why)
    when they cannot be read."""
    from gdl_jax import data as gdata
    from gdl_jax.data.celeba import open_celeba

    if not model.encodes:
        return None, ""
    d = model.config.data
    directory = data_dir or d.get("data_dir") or None
    try:
        if d.name == "celeba":
            source = open_celeba("test", directory, d.source, d.image_size, d.crop, d.test_size)
            images = source.load(np.arange(min(count, len(source))))
        else:
            images = gdata.load(d.name, "test", directory, d.get("source", "auto")).images[:count]
    except GdlError as e:
        return None, f"no test images to pick from ({e}); --data_dir names where the data is"
    return np.asarray(images, np.uint8).reshape(-1, *model.image_shape), ""
