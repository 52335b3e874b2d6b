"""Book 3.3: the MNIST VAE, z_dim 2, loss 1000 * mse + KL (Fig 3-10 generated digits, Fig 3-14
latent scatter and its p-value transform)."""

from experiments.configs.ae_mnist import get_config as ae_config


def get_config():
    c = ae_config("vae")
    c.figure = "Fig 3-10, 3-14"
    return c
