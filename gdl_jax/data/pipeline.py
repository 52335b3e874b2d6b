"""Whole small data sets on device, shuffled and batched there: no host work per step.

The images stay uint8 on device (4x less memory than float32); each batch is gathered by index
and converted to float inside the jitted step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from gdl_jax import parallel
from gdl_jax.data.sources import ArrayData
from gdl_jax.errors import ConfigError


class DeviceData(NamedTuple):
    images: jax.Array   # uint8 (N, H, W, C), replicated
    labels: jax.Array   # int32 (N,) class labels, or (N, 40) 0/1 CelebA attributes; replicated


def to_device(data: ArrayData, mesh: Mesh) -> DeviceData:
    """The data set whole (uint8 images, labels) on every device of the mesh."""
    return DeviceData(*parallel.put_replicated((data.images, data.labels), mesh))


def to_float(images: jax.Array, value_range: tuple[float, float] = (0.0, 1.0)) -> jax.Array:
    """uint8 [0, 255] -> float32 in value_range ((0, 1) for classifiers and VAEs, (-1, 1) for GANs)."""
    lo, hi = value_range
    return images.astype(jnp.float32) * ((hi - lo) / 255.0) + lo


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Full batches per epoch; the remainder (< batch_size examples) is dropped for static shapes."""
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if batch_size > num_examples:
        raise ConfigError(f"batch_size {batch_size} is larger than the {num_examples} training examples")
    return num_examples // batch_size


def epoch_permutation(key: jax.Array, epoch: int, num_examples: int) -> jax.Array:
    """The shuffle order of one epoch: a pure function of (key, epoch), so resumes reproduce it."""
    return jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)


def gather_batch(data: DeviceData, perm: jax.Array, index: jax.Array, batch_size: int,
                 mesh: Mesh, value_range=(0.0, 1.0)) -> tuple[jax.Array, jax.Array]:
    """Batch `index` of the epoch (inside jit): float images and labels, sharded on the batch axis."""
    idx = jax.lax.dynamic_slice_in_dim(perm, index * batch_size, batch_size)
    sharding = parallel.batch_sharded(mesh)
    images = jax.lax.with_sharding_constraint(to_float(data.images[idx], value_range), sharding)
    labels = jax.lax.with_sharding_constraint(data.labels[idx], sharding)
    return images, labels
