"""Nearest training images of generated samples, searched on device (book Fig 4-10), and the
novelty of samples measured with them (the book's rule 2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def _chunk_l1(samples: jax.Array, chunk: jax.Array) -> jax.Array:
    """Mean absolute pixel difference of every sample to every image of the chunk: (S, C)."""
    a = samples.reshape(samples.shape[0], 1, -1)
    b = chunk.reshape(1, chunk.shape[0], -1).astype(jnp.float32)
    return jnp.abs(a - b).mean(-1)


@jax.jit
def _chunk_l1_images_minor(samples: jax.Array, chunk: jax.Array) -> jax.Array:
    """_chunk_l1 with the chunk's images along the minor axis: the sum over pixels runs as vector
    adds across images. XLA:CPU's row sums collapse for long rows, this does not (2-core Zen 4,
    100-500 samples against 1024 images, G differences/s: 0.50-0.62 -> 4.2-5.9 at 49,152 pixels;
    but 5.2-8.1 -> 3.9-7.0 at 784-12,288 pixels, where _chunk_l1 stays)."""
    a = samples.reshape(samples.shape[0], -1, 1)
    b = chunk.reshape(chunk.shape[0], -1).astype(jnp.float32).T
    return jnp.abs(a - b[None]).mean(1)


LONG_ROW = 16384  # pixel values per image above which _chunk_l1_images_minor is the faster


def nearest_l1(samples: np.ndarray, data: np.ndarray, scale: float = 1.0, offset: float = 0.0,
               chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(index, distance) of each sample's nearest image in `data` by mean L1 distance (the book's
    `np.mean(np.abs(img1 - img2))`), in chunks of `chunk` images on device.

    data may be uint8: it is compared as data * scale + offset (e.g. 2/255 and -1 for [-1, 1]).
    """
    samples = jnp.asarray(samples, jnp.float32)
    distances = _chunk_l1_images_minor if samples[0].size > LONG_ROW else _chunk_l1
    best_d = np.full(len(samples), np.inf)
    best_i = np.zeros(len(samples), np.int64)
    for start in range(0, len(data), chunk):
        block = jnp.asarray(data[start:start + chunk]).astype(jnp.float32) * scale + offset
        d = np.asarray(distances(samples, block))
        i = d.argmin(1)
        better = d[np.arange(len(samples)), i] < best_d
        best_d[better] = d[np.arange(len(samples)), i][better]
        best_i[better] = start + i[better]
    return best_i, best_d


def novelty(samples: np.ndarray, train: np.ndarray, held_out: np.ndarray, scale: float = 1.0,
            offset: float = 0.0) -> dict:
    """The book's rule 2 as a number: how far generated images lie from their nearest training
    image (mean L1, `nearest_l1`), against how far unseen real images lie (`held_out`, e.g.
    the test split, the baseline for "new"). ratio ~1: samples as novel as new data; near 0:
    copies of training images. copies: the fraction of samples nearer to a training image than
    all but 1% of held-out images are. ratio is None when every held-out image has an exact copy
    in the training set (no baseline). It also gives the two image counts.

    samples: float on the data's scale after `data * scale + offset`; train, held_out: uint8 or
    float as nearest_l1 takes them.
    """
    _, d_fake = nearest_l1(samples, train, scale, offset)
    _, d_real = nearest_l1(np.asarray(held_out, np.float32) * scale + offset, train, scale, offset)
    threshold = float(np.percentile(d_real, 1))
    baseline = float(d_real.mean())
    return {"nearest_l1_samples": float(d_fake.mean()), "nearest_l1_held_out": baseline,
            "ratio": float(d_fake.mean()) / baseline if baseline > 0 else None,   # None: held-out images are copies
            "copies": float((d_fake < threshold).mean()), "copy_threshold": threshold,
            "held_out_images": len(held_out), "training_images_searched": len(train)}
