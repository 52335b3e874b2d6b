"""Data layer: sources (local folders, tfds) and the on-device pipeline."""

from gdl_jax.data.pipeline import (DeviceData, epoch_permutation, gather_batch, steps_per_epoch,
                                   to_device, to_float)
from gdl_jax.data.sources import ArrayData, load, resolve_data_dir
from gdl_jax.data.celeba import CelebA
