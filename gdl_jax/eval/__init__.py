"""Evaluation: the VAE's ELBO in nats and bits per dimension, latent-space statistics, sample quality,
nearest training images."""

from gdl_jax.eval.latent import attribute_vectors, gaussianity, nearest_real_mse, sample_latents, worst_separated
from gdl_jax.eval.neighbours import nearest_l1
from gdl_jax.eval.vae import gaussian_elbo

__all__ = ["attribute_vectors", "gaussian_elbo", "gaussianity", "nearest_l1", "nearest_real_mse", "sample_latents",
           "worst_separated"]
