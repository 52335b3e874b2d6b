"""The GAN half of book 4.4's claim: a GAN's generator loss does not track sample quality. The
same data (CIFAR-10 horses), networks (the book's horses WGAN critic as discriminator, a sigmoid
in the loss), optimizer (Adam 2e-4, beta_1 0.5), batch (64) and step budget (1,500 generator
updates) as wgangp_cifar_horses.py, with binary cross-entropy and the book's GAN step
(discriminator on real, then on fake, then the generator); sample quality every 50 steps (the
Frechet distance too with --config.quality_features) against the generator's loss, Spearman's
correlation in results.json["quality_tracking"]."""

import ml_collections

from experiments.configs import wgangp_cifar_horses


def get_config() -> ml_collections.ConfigDict:
    c = wgangp_cifar_horses.get_config()
    c.task = "gan"
    c.figure = "the GAN's loss does not track quality (book 4.4)"
    c.model = ml_collections.ConfigDict({"name": "gan", "discriminator": c.model.critic.to_dict(),
                                         "generator": c.model.generator.to_dict()})
    for key in ("n_critic", "clip_value", "gp_weight"):
        del c[key]
    c.generator_steps = 1
    c.d_freeze_step = 0
    c.steps_per_dispatch = 4
    c.analysis.history_png = "history.png"
    return c
