"""Precision and recall of generated samples in feature space (Kynkaanniemi et al., 2019).

Each set's manifold is estimated as the union of balls around its points, each ball's radius
the distance to that point's k-th nearest neighbour in its own set. Precision: the fraction of
generated points inside the real manifold (are the samples realistic?). Recall: the fraction
of real points inside the generated manifold (do the samples cover the data?). A collapsed
generator has high precision and low recall.

Distances are computed on device, jit-compiled, one block of rows against the whole other set
at a time, so memory is block x N.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gdl_jax.chunks import map_padded
from gdl_jax.errors import ConfigError

BLOCK = 512


def _sq_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """Squared euclidean distances (A, B), clamped at 0 against rounding. The product at full float32
    precision: a GPU's default (TF32, 10-bit mantissa) would cancel away near neighbours' distances."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * jnp.matmul(a, b.T, precision="highest")
    return jnp.maximum(d, 0.0)


@functools.partial(jax.jit, static_argnums=(2,))
def _kth_sq_distance(block: jax.Array, points: jax.Array, k: int) -> jax.Array:
    """Per row of block (a point of `points`), its squared distance to its k-th nearest
    neighbour among `points`, itself excluded (the nearest, at distance 0, is itself)."""
    return -jax.lax.top_k(-_sq_distances(block, points), k + 1)[0][:, k]


@jax.jit
def _inside(block: jax.Array, points: jax.Array, radii_sq: jax.Array) -> jax.Array:
    """Per row of block: whether it lies in some ball (points[j], radius_j)."""
    return (_sq_distances(block, points) <= radii_sq[None, :]).any(1)


def kth_neighbour_radii(points: np.ndarray, k: int) -> np.ndarray:
    """Squared distance of each point to its k-th nearest other point."""
    dev = jnp.asarray(points)
    return map_padded(lambda block: _kth_sq_distance(block, dev, k), points, BLOCK)


def coverage(queries: np.ndarray, points: np.ndarray, radii_sq: np.ndarray) -> float:
    """The fraction of queries inside the union of balls (points, radii)."""
    dev, r = jnp.asarray(points), jnp.asarray(radii_sq)
    return float(map_padded(lambda block: _inside(block, dev, r), queries, BLOCK).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """Precision and recall of (N, d) generated features `fake` against (M, d) real ones."""
    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ConfigError(f"features must be (N, d) with one d, got {real.shape} and {fake.shape}")
    if not 1 <= k < min(len(real), len(fake)):
        raise ConfigError(f"k must be in [1, {min(len(real), len(fake)) - 1}] for {len(real)} real and "
                          f"{len(fake)} generated points, got {k}")
    return {"precision": coverage(fake, real, kth_neighbour_radii(real, k)),
            "recall": coverage(real, fake, kth_neighbour_radii(fake, k)), "k": k}
