"""Biscuit tins (book 1.7, Fig 1-14/1-15): images generated from two latent factors.

f(height, width) draws a greyscale tin; the 2-D latent space maps to images through f.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gdl_jax.errors import ConfigError

LIMITS = (0.2, 0.9)  # height and width, as fractions of the image side


def tin_image(height: jax.Array, width: jax.Array, size: int = 64) -> jax.Array:
    """float32 (size, size) in [0, 1]: a shaded cylinder with an elliptical lid, standing on the
    image's bottom edge, centred, `height` and `width` fractions of the side."""
    y, x = jnp.mgrid[0:size, 0:size] / (size - 1)
    half_w = width / 2
    lid = 0.12 * width                       # lid ellipse half-height
    top, bottom = 1.0 - 0.05 - height, 1.0 - 0.05
    u = (x - 0.5) / half_w                   # -1..1 across the tin
    body = (jnp.abs(u) <= 1) & (y >= top) & (y <= bottom)
    cap = u ** 2 + ((y - top) / lid) ** 2 <= 1
    base = u ** 2 + ((y - bottom) / lid) ** 2 <= 1
    shade = 0.35 + 0.45 * (1 - jnp.abs(u) ** 2)         # cylinder shading
    img = jnp.where(body | base, shade, 1.0)
    return jnp.where(cap, 0.85, img).astype(jnp.float32)


def check_latents(latents) -> jax.Array:
    latents = jnp.asarray(latents, jnp.float32)
    if latents.ndim != 2 or latents.shape[1] != 2:
        raise ConfigError(f"latents must be (N, 2) (height, width), got {latents.shape}")
    lo, hi = LIMITS
    if bool(jnp.any((latents < lo) | (latents > hi))):
        raise ConfigError(f"tin height and width must lie in [{lo}, {hi}]")
    return latents


def generate(latents, size: int = 64) -> jax.Array:
    """f: latents (N, 2) of (height, width) -> images (N, size, size)."""
    latents = check_latents(latents)
    return jax.vmap(lambda z: tin_image(z[0], z[1], size))(latents)


def sample_latents(key: jax.Array, n: int) -> jax.Array:
    """The data set's latent factors: uniform over the allowed heights and widths."""
    lo, hi = LIMITS
    return jax.random.uniform(key, (n, 2), minval=lo, maxval=hi)
