"""Book 4.4-4.5's claim, measured: the WGAN-GP's Wasserstein estimate falls as sample quality
rises. The WGAN-GP (penalty 10, no clipping, Adam 2e-4 beta_1 0.5, 5 critic updates per
generator update) with the book's CIFAR-10 horses WGAN networks, batch 64, 1,500 steps; sample
quality (nearest-training-image L1, diversity and, with --config.quality_features=<a CIFAR-10
CNN run>, the Frechet distance in its features) every 50 steps against the estimate, Spearman's
correlation in results.json["quality_tracking"]. Its twin with the GAN's loss on the same data,
networks, optimizer and step budget: gan_cifar_horses.py. A CPU-sized budget: the book's own runs
are wgan_cifar_horses.py and wgangp_celeba.py."""

import ml_collections

from experiments.configs import wgan_cifar_horses

ADAM_GP = {"b1": 0.5, "b2": 0.999, "eps": 1e-7}   # Keras' Adam with beta_1 0.5, as the book's WGAN-GP


def get_config() -> ml_collections.ConfigDict:
    c = wgan_cifar_horses.get_config()
    c.figure = "the Wasserstein loss tracks quality (book 4.4)"
    c.batch_size = 64
    c.clip_value = 0.0
    c.gp_weight = 10.0
    c.optimizer = "adam"
    c.optimizer_kwargs = ADAM_GP
    c.d_learning_rate = 2e-4
    c.g_learning_rate = 2e-4
    c.num_steps = 1500
    c.checkpoint_every_steps = 250
    c.analysis.sample_steps = (50, 150, 300, 600, 1000, 1500)
    c.analysis.quality_every_steps = 50
    c.analysis.progress_png = "samples_during_training.png"
    return c
