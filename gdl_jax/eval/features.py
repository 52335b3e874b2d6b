"""Feature extractors for the sample-quality metrics (Frechet distance, precision and recall).

InceptionV3, the usual FID network, needs weights that cannot be downloaded on offline
machines (gdl_jax.eval.inception takes them from a file); these features come from a
classifier the project trains itself on the same kind of data (a run of task 'classifier': the
CIFAR-10 CNN, the CNN on MNIST for 28x28 greyscale images). The features are the classifier's
penultimate activations: the input of its last Dense layer, read with
`flax.linen.intercept_methods`, so any classifier whose last layer is a Dense works without a
second code path in the model. Distances in one classifier's feature space are comparable only
with each other, not with published FIDs.
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from gdl_jax import models
from gdl_jax.chunks import map_padded
from gdl_jax.errors import ConfigError, DataError
from gdl_jax.models.dense import Dense

BATCH = 256  # images per compiled call (the last batch zero-padded)


def penultimate(model: nn.Module, variables: dict, images: jax.Array) -> jax.Array:
    """The input of the last Dense layer `model` applies to `images` (eval mode)."""
    seen = []

    def grab(next_fun, args, kwargs, context):
        if isinstance(context.module, (Dense, nn.Dense)) and context.method_name == "__call__":
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(grab):
        model.apply(variables, images, train=False)
    if not seen:
        raise ConfigError(f"{type(model).__name__} has no Dense layer to take features from")
    return seen[-1].reshape(images.shape[0], -1)


def classifier_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
    """The config of the classifier run in `workdir`; a one-line error if it holds none."""
    from gdl_jax import api

    workdir = pathlib.Path(workdir)
    config = api.read_config(workdir)
    if config.get("task", "classifier") != "classifier":
        raise ConfigError(f"{workdir} holds a {config.task!r} run; features need a classifier run "
                          "(e.g. experiments/configs/cnn_cifar10.py or cnn_mnist.py)")
    return config


class ClassifierFeatures:
    """features(images) -> (N, d): float images in [0, 1], NHWC of the classifier's input
    shape (other sizes are resized bilinearly; the channel count must match)."""

    def __init__(self, name: str, model: nn.Module, variables: dict, image_shape: tuple[int, int, int]):
        self.name, self.image_shape = name, tuple(image_shape)
        variables = jax.device_put(jax.device_get(variables))
        resize = lambda x: x if x.shape[1:] == self.image_shape else jax.image.resize(
            x, (x.shape[0], *self.image_shape), "bilinear")
        features = jax.jit(lambda v, x: penultimate(model, v, resize(x)))   # the weights an argument, not constants
        self._fn = lambda x: features(variables, x)

    @classmethod
    def from_workdir(cls, workdir: str | os.PathLike) -> "ClassifierFeatures":
        """The classifier trained in `workdir` (experiments.main with a classifier config), at its
        latest checkpoint."""
        from gdl_jax import parallel
        from gdl_jax.train import runner

        workdir = pathlib.Path(workdir)
        config = classifier_config(workdir)
        model = models.from_config(config.model)
        shape = runner.image_shape(config)
        state = runner.restore(config, workdir, model, shape, parallel.make_mesh())
        return cls(f"{config.model.name} on {config.data.name} ({workdir.name}, step {int(state.step)})",
                   model, state.variables(), shape)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return batched(self._fn, images, (self.image_shape[-1],), self.name, BATCH)


def batched(fn: Callable[[jax.Array], jax.Array], images: np.ndarray, channels: tuple[int, ...], name: str,
            batch: int) -> np.ndarray:
    """fn over `images` (float NHWC, channel count one of `channels`) in zero-padded batches of
    `batch` (or of the image count, if smaller), so that one compiled shape serves a whole set."""
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[-1] not in channels or not len(x):
        want = " or ".join(map(str, channels))
        raise DataError(f"images must be (N, H, W, {want}) for features of {name}; got shape {x.shape}")
    return map_padded(fn, x, min(batch, len(x)))
