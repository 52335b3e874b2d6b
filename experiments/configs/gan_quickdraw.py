"""Book 4.1-4.2: the GAN on Quick Draw (Fig 4-8 losses and accuracies, Fig 4-9 samples during
training, Fig 4-10 nearest training images). Discriminator 720,833 params, generator 844,161
(6,784 non-trainable), z_dim 100, RMSprop D 8e-4 / G 4e-4, batch 64, binary cross-entropy, 2000
steps. The book's camel is not in the offline copy: cat is (--config.data.name=quickdraw/camel
with the full data)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "gan"
    c.figure = "Fig 4-8, 4-9, 4-10"
    c.model = ml_collections.ConfigDict({
        "name": "gan",
        "discriminator": {"filters": (64, 64, 128, 128), "kernels": (5, 5, 5, 5), "strides": (2, 2, 2, 1),
                          "activation": "relu", "dropout": 0.4},
        "generator": {"initial_shape": (7, 7, 64), "upsample": (2, 2, 1, 1), "filters": (128, 64, 64, 1),
                      "kernels": (5, 5, 5, 5), "strides": (1, 1, 1, 1), "batch_norm_momentum": 0.9},
    })
    c.z_dim = 100
    c.data = ml_collections.ConfigDict({"name": "quickdraw/cat", "data_dir": "", "source": "auto",
                                        "train_subset": 0})
    c.batch_size = 64
    c.num_steps = 2000
    c.optimizer = "rmsprop"
    c.optimizer_kwargs = {"decay": 0.9, "eps": 1e-7}   # Keras' RMSprop rho and epsilon
    c.d_learning_rate = 8e-4
    c.g_learning_rate = 4e-4
    c.generator_steps = 1        # generator updates per step
    c.d_freeze_step = 0          # > 0: the discriminator stops learning at this step (Fig 4-12's mode collapse)
    c.seed = 0
    c.quality_features = ""      # a classifier run's workdir: Frechet distance, precision, recall of samples
    c.inception_weights = ""     # FID InceptionV3 weights (.pth / .npz, gdl_jax.eval.inception): FID too
    c.quality_samples = 1000     # generated (and real) images those compare
    c.parallel = "sharded"       # data parallelism: 'sharded' (jit, global code) or 'pmap' (per-device code)
    c.compute_dtype = "float32"  # or 'bfloat16': forward and backward passes (params, losses stay float32)
    c.steps_per_dispatch = 4
    c.log_every_steps = 100
    c.checkpoint_every_steps = 500
    c.analysis = ml_collections.ConfigDict({
        "sample_steps": (20, 200, 400, 1000, 2000),   # Fig 4-9 (the book's epochs are steps)
        "num_samples": 10,                             # per row of Fig 4-9, from one fixed latent batch
        "nearest_samples": 8,                          # Fig 4-10
        "history_png": "fig_4_8_history.png",          # losses and accuracies
        "progress_png": "fig_4_9_samples_during_training.png",
        "nearest_png": "fig_4_10_nearest_training.png",
        "grid_png": "samples.png",                     # 50 samples of the trained generator
        "quality_every_steps": 100,                    # sample quality during training (0: never)
        "quality_png": "loss_vs_quality.png",          # it against the generator's loss
        "novelty_held_out": 100,   # drawings held out of training: the novelty baseline (Quick Draw has no test split)
    })
    return c
