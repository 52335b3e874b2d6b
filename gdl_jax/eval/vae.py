"""The book's VAE loss read as an ELBO, in nats and bits per dimension."""

from __future__ import annotations

import math


def gaussian_elbo(mse: float, kl: float, r_loss_factor: float, num_dims: int) -> dict[str, float]:
    """ELBO per example of the book's VAE from its mean squared error and KL (nats).

    The loss r * mse + KL is, up to a constant, the negative ELBO of a Gaussian decoder
    p(x|z) = N(x_hat, sigma^2 I) over D = num_dims values, with the variance that makes the
    two agree, sigma^2 = D / (2 r):  -log p(x|z) = sum (x - x_hat)^2 / (2 sigma^2)
    + D/2 log(2 pi sigma^2) = r * mse + D/2 log(2 pi sigma^2). Pixels are continuous here, so
    the density can exceed 1 and bits per dimension can be negative.
    """
    sigma2 = num_dims / (2 * r_loss_factor)
    nll = r_loss_factor * mse + num_dims / 2 * math.log(2 * math.pi * sigma2)
    elbo = -(nll + kl)
    return {"elbo_nats": elbo, "bits_per_dim": -elbo / (num_dims * math.log(2)), "decoder_sigma": math.sqrt(sigma2)}
