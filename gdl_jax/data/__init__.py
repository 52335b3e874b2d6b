"""Data layer: sources (local folders, tfds), the two feeders of the training loop, CelebA."""

from gdl_jax.data.celeba import CelebA
from gdl_jax.data.feeders import ArraySource, DeviceFeeder, Feeder, StreamFeeder, StreamSource, feed_batches
from gdl_jax.data.pipeline import DeviceData, epoch_permutation, gather_batch, steps_per_epoch, to_device, to_float
from gdl_jax.data.sources import ArrayData, has_test_split, load, resolve_data_dir

__all__ = ["ArrayData", "ArraySource", "CelebA", "DeviceData", "DeviceFeeder", "Feeder", "StreamFeeder",
           "StreamSource", "epoch_permutation", "feed_batches", "gather_batch", "has_test_split", "load",
           "resolve_data_dir", "steps_per_epoch", "to_device", "to_float"]
