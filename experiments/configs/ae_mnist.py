"""Book 3.1-3.2: the MNIST autoencoder, z_dim 2 (Fig 3-2 reconstructions, Fig 3-8 latent scatter,
Fig 3-3 / 3-9 decoded random points). Encoder 98,946 params, decoder 102,017."""

import ml_collections

from experiments.configs.common import classifier_config


def get_config(task: str = "autoencoder") -> ml_collections.ConfigDict:
    c = classifier_config(task, "Fig 3-2, 3-3, 3-8, 3-9")
    c.task = task
    c.model = ml_collections.ConfigDict({
        "name": task,
        "encoder": {"filters": (32, 64, 64, 64), "kernels": (3, 3, 3, 3), "strides": (1, 2, 2, 1),
                    "z_dim": 2},
        "decoder": {"shape_before_flattening": (7, 7, 64), "filters": (64, 64, 32, 1),
                    "kernels": (3, 3, 3, 3), "strides": (1, 2, 2, 1)},
    })
    c.data.name = "mnist"
    c.r_loss_factor = 1000.0   # used by the VAE only
    c.quality_features = ""      # a classifier run's workdir: Frechet distance, precision, recall of samples
    c.inception_weights = ""     # FID InceptionV3 weights (.pth / .npz, gdl_jax.eval.inception): FID too
    c.quality_samples = 1000     # generated (and real) images those compare
    return c
