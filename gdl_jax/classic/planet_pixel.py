"""Planet Pixel (book 1.6, Fig 1-11..1-13): Wrodl fashions as 32x32 images of 256 palette colours,
and Naive Bayes over the 1024 pixels, which cannot model them.
"""

from __future__ import annotations

import jax
import numpy as np

from gdl_jax.classic import avatars, wrodl
from gdl_jax.classic.categorical import NaiveBayes
from gdl_jax.errors import ConfigError

SIZE = 32
NUM_COLOURS = len(avatars.PALETTE)


def make_dataset(key: jax.Array, n: int) -> np.ndarray:
    """n palette-index images (n, 32, 32): styles drawn from the Naive Bayes fit of Wrodl (whose
    features are near-independent), each with a random skin tone and a sideways shift of -1..1."""
    if n <= 0:
        raise ConfigError(f"the Planet Pixel data set needs n > 0 images, got {n}")
    k_style, k_skin, k_shift = jax.random.split(key, 3)
    styles = wrodl.decode(NaiveBayes.fit(wrodl.load(), wrodl.CARDINALITIES).sample(k_style, n))
    skins = np.asarray(jax.random.randint(k_skin, (n,), 0, len(avatars.SKIN)))
    shifts = np.asarray(jax.random.randint(k_shift, (n,), -1, 2))
    images = np.stack([avatars.render(s, SIZE, int(k), int(d)) for s, k, d in zip(styles, skins, shifts)])
    return avatars.to_palette_indices(images)


def fit_pixel_naive_bayes(images: np.ndarray, pseudocount: float) -> NaiveBayes:
    """One categorical distribution over the 256 colours per pixel, pixels independent."""
    return NaiveBayes.fit(images.reshape(len(images), -1), (NUM_COLOURS,) * SIZE * SIZE, pseudocount)


def sample_images(model: NaiveBayes, key: jax.Array, n: int) -> np.ndarray:
    return np.asarray(model.sample(key, n)).reshape(n, SIZE, SIZE).astype(np.uint8)


def log_likelihood_per_pixel(model: NaiveBayes, images: np.ndarray) -> float:
    """Mean log p(pixel) in nats over every pixel of `images` (held-out images: a model that
    assigns probability 0 to a seen colour gives -inf, hence the smoothing)."""
    flat = images.reshape(len(images), -1)
    return float(np.mean(np.asarray(model.log_prob(flat))) / flat.shape[1])
