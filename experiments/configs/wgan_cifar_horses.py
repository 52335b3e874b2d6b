"""Book 4.4: the WGAN on CIFAR-10 horses (Fig 4-15 samples during training). Wasserstein loss
-mean(y_true * y_pred) with labels +1 / -1, a critic without sigmoid whose weights are clipped to
[-0.01, 0.01] after every update, 5 critic updates per generator update, RMSprop 5e-5, batch 128.
The book's notebook configuration: critic 670,401 params, generator 884,163 (4,544 non-trainable).
Any other class by name: --config.data.name=cifar10/ship."""

import ml_collections

RMSPROP_KERAS = {"decay": 0.9, "eps": 1e-7}   # Keras' RMSprop rho and epsilon


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "wgan"
    c.figure = "Fig 4-15"
    c.model = ml_collections.ConfigDict({
        "name": "wgan",
        "critic": {"filters": (32, 64, 128, 128), "kernels": (5, 5, 5, 5), "strides": (2, 2, 2, 1),
                   "activation": "leaky_relu", "dropout": 0.0},
        "generator": {"initial_shape": (4, 4, 128), "upsample": (2, 2, 2, 1), "filters": (128, 64, 32, 3),
                      "kernels": (5, 5, 5, 5), "strides": (1, 1, 1, 1), "activation": "leaky_relu",
                      "batch_norm_momentum": 0.8},
    })
    c.z_dim = 100
    c.data = ml_collections.ConfigDict({"name": "cifar10/horse", "data_dir": "", "source": "auto",
                                        "train_subset": 0})
    c.batch_size = 128           # per critic update: a step takes n_critic x batch_size real images
    c.n_critic = 5
    c.clip_value = 0.01          # > 0: the WGAN's weight clipping
    c.gp_weight = 0.0            # > 0: the WGAN-GP's gradient penalty instead
    c.num_steps = 6000           # generator updates (the book's "epochs")
    c.optimizer = "rmsprop"
    c.optimizer_kwargs = RMSPROP_KERAS
    c.d_learning_rate = 5e-5     # the critic's
    c.g_learning_rate = 5e-5
    c.seed = 0
    c.quality_features = ""      # a classifier run's workdir: Frechet distance, precision, recall of samples
    c.inception_weights = ""     # FID InceptionV3 weights (.pth / .npz, gdl_jax.eval.inception): FID too
    c.quality_samples = 1000     # generated (and real) images those compare
    c.parallel = "sharded"       # data parallelism: 'sharded' (jit, global code) or 'pmap' (per-device code)
    c.compute_dtype = "float32"  # or 'bfloat16': forward and backward passes (params, losses stay float32)
    c.steps_per_dispatch = 2
    c.log_every_steps = 50
    c.checkpoint_every_steps = 500
    c.analysis = ml_collections.ConfigDict({
        "sample_steps": (50, 200, 500, 1000, 2000, 4000, 6000),
        "num_samples": 10,
        "nearest_samples": 8,
        "history_png": "history.png",     # critic and generator losses, the Wasserstein estimate
        "progress_png": "fig_4_15_samples_during_training.png",
        "nearest_png": "nearest_training.png",
        "grid_png": "samples.png",
        "quality_every_steps": 100,       # sample quality during training (0: never)
        "quality_png": "loss_vs_quality.png",   # it against the Wasserstein estimate
        "novelty_held_out": 1000,         # test images: the novelty baseline (0: no novelty)
    })
    return c
