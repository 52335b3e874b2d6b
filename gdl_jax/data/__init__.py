"""Data layer: sources (local folders, tfds), the on-device pipeline, streamed CelebA."""

from gdl_jax.data.celeba import CelebA
from gdl_jax.data.pipeline import DeviceData, epoch_permutation, gather_batch, steps_per_epoch, to_device, to_float
from gdl_jax.data.sources import ArrayData, load, resolve_data_dir

__all__ = ["ArrayData", "CelebA", "DeviceData", "epoch_permutation", "gather_batch", "load",
           "resolve_data_dir", "steps_per_epoch", "to_device", "to_float"]
