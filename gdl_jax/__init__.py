"""gdl_jax: JAX/Flax reproductions of "Generative Deep Learning", chapters 1-4.

Importing the package does not import jax, so `gdl_jax.runtime.configure()` can still set
XLA flags before the backend starts.
"""

import os

__version__ = "0.1.0"


def load(workdir: str | os.PathLike):
    """The autoencoder or VAE (gdl_jax.api.TrainedModel), or the GAN / WGAN / WGAN-GP generator
    (gdl_jax.api.TrainedGenerator), trained in `workdir`."""
    from gdl_jax.api import load as _load

    return _load(workdir)
