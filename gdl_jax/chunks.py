"""A compiled function over many inputs, a chunk at a time: each chunk zero-padded to one size,
so that one compiled shape serves the whole set."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def map_padded(fn: Callable[[jax.Array], jax.Array], x: np.ndarray, size: int, axis: int = 0) -> np.ndarray:
    """fn over x in chunks of `size` rows (the last zero-padded to `size`), its outputs (the
    batch on `axis`) cut back to the real rows and joined."""
    out = []
    for start in range(0, len(x), size):
        chunk = x[start:start + size]
        padded = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        out.append(np.take(np.asarray(fn(jnp.asarray(padded))), np.arange(len(chunk)), axis=axis))
    return np.concatenate(out, axis=axis)
