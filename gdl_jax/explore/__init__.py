"""The latent explorer (`python -m experiments.explore`): a local web page over a trained VAE or
GAN. `core` works on any model `gdl_jax.load` opens; `app` serves it (the `explore` extra:
pip install -e '.[explore]')."""

from gdl_jax.explore.core import Explorer, load_picks

__all__ = ["Explorer", "load_picks"]
