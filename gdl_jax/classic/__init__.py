"""Chapter 1: generative models without deep learning (jax.numpy, fit / log_prob / sample)."""
