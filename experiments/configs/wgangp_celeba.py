"""Book 4.5: the WGAN-GP on CelebA faces at 64x64 (Fig 4-18 samples, Fig 4-19 losses). The
critic's loss adds 10 x the gradient penalty (1 - ||grad critic(x_hat)||_2)^2 at random
interpolates of real and generated faces (losses.gradient_penalty, by jax.grad); no clipping and
no BatchNorm in the critic; Adam 2e-4 with beta_1 0.5; 5 critic updates per generator update,
batch 64. The book's notebook configuration: critic 4,314,753 params, generator 5,168,003
(17,280 non-trainable; its Conv2DTranspose layers double the size).

Needs CelebA: a folder <data dir>/celeba/ (the offline 10,000-face copy works) or tfds celeb_a.
"""

import ml_collections

from experiments.configs import wgan_cifar_horses


def get_config() -> ml_collections.ConfigDict:
    c = wgan_cifar_horses.get_config()
    c.figure = "Fig 4-18, 4-19"
    c.model.critic = {"filters": (64, 128, 256, 512), "kernels": (5, 5, 5, 5), "strides": (2, 2, 2, 2),
                      "activation": "leaky_relu", "dropout": 0.0}
    c.model.generator = {"initial_shape": (4, 4, 512), "upsample": (1, 1, 1, 1), "filters": (256, 128, 64, 3),
                         "kernels": (5, 5, 5, 5), "strides": (2, 2, 2, 2), "activation": "leaky_relu",
                         "batch_norm_momentum": 0.9}
    c.data = ml_collections.ConfigDict({
        "name": "celeba", "data_dir": "", "source": "auto", "train_subset": 0,
        "image_size": 64, "crop": "none",     # the whole frame squashed to 64x64, as the book's generator
        "test_size": 500, "stream_workers": 2, "stream_processes": False, "prefetch": 8,
    })
    c.batch_size = 64
    c.clip_value = 0.0
    c.gp_weight = 10.0
    c.optimizer = "adam"
    c.optimizer_kwargs = {"b1": 0.5, "b2": 0.999, "eps": 1e-7}   # Keras' Adam with beta_1 0.5
    c.d_learning_rate = 2e-4
    c.g_learning_rate = 2e-4
    c.analysis.nearest_pool = 5000            # training faces searched for each sample's nearest
    c.analysis.history_png = "fig_4_19_history.png"
    c.analysis.progress_png = "fig_4_18_samples_during_training.png"
    return c
