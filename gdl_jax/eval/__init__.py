"""Evaluation: the VAE's ELBO in nats and bits per dimension, latent-space statistics, sample quality,
nearest training images, a GAN's failure-mode numbers."""

from gdl_jax.eval.adversarial import (
    loss_oscillation,
    loss_tracks_quality,
    mean_pairwise_l1,
    rank_correlation,
    sample_diversity,
    window_means,
)
from gdl_jax.eval.latent import attribute_vectors, gaussianity, nearest_real_mse, sample_latents, worst_separated
from gdl_jax.eval.neighbours import nearest_l1, novelty
from gdl_jax.eval.vae import gaussian_elbo

__all__ = ["attribute_vectors", "gaussian_elbo", "gaussianity", "loss_oscillation", "loss_tracks_quality",
           "mean_pairwise_l1", "nearest_l1", "nearest_real_mse", "novelty", "rank_correlation", "sample_diversity",
           "sample_latents", "window_means", "worst_separated"]
