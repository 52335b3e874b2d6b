"""The rows of experiments.reproduce: each reproduced result of the book's chapters 1-4 as the
binary and flags that make it (gdl_jax.report.Row), the book's numbers, and the fields of its
results.json that are ours. Rows that others need (the feature classifiers) come first."""

from gdl_jax.report import Field, Row


def _main(config: str, *flags_: str) -> tuple[str, ...]:
    return ("--config=experiments/configs/" + config, "--workdir={workdir}", *flags_)


# One step per dispatch: an unrolled dispatch of k steps takes about k times as long to compile,
# which is most of a short run. 10,000 examples: enough steps (312) for BatchNorm's running
# statistics (momentum 0.99) to forget their start.
ONE = "--config.steps_per_dispatch=1"
CLASSIFIER_QUICK = (ONE, "--config.num_epochs=1", "--config.data.train_subset=10000", "--config.log_every_steps=100")
DIGITS_QUICK = (ONE, "--config.num_epochs=1", "--config.data.train_subset=2000", "--config.quality_samples=500")
def _gan_quick(steps: int, *extra: str) -> tuple[str, ...]:
    return (ONE, f"--config.num_steps={steps}", f"--config.checkpoint_every_steps={steps}",
            f"--config.log_every_steps={max(1, steps // 3)}", f"--config.analysis.sample_steps=({steps // 3},{steps})",
            f"--config.analysis.quality_every_steps={max(1, steps // 3)}", "--config.quality_samples=300", *extra)


GAN_QUICK = _gan_quick(30, "--config.batch_size=16")
ACCURACY = (Field("params", "params", ","), Field("train acc", "train_accuracy", ".1%"),
            Field("test acc", "test_accuracy", ".1%"))
GAN_FIELDS = (Field("D params", "discriminator_params", ","), Field("G params", "generator_params", ","),
              Field("diversity", "sample_diversity", ".3f"), Field("FD", "feature_metrics.frechet_distance", ".4g"),
              Field("novelty", "novelty.ratio", ".2f"))

ROWS = (
    Row("world_map", ("1.1",), "world-map game (Fig 1-4..1-6)", "experiments.world_map", ("--workdir={workdir}",),
        "box MLE; samples break rule 1, rule 2, or succeed",
        (Field("rule 1", "breaks_rule_1"), Field("rule 2", "breaks_rule_2"), Field("success", "success"))),
    Row("wrodl", ("1.2", "1.3", "1.4", "1.5"), "Wrodl: multinomial, smoothing, Naive Bayes (Fig 1-9, 1-10)",
        "experiments.wrodl", ("--workdir={workdir}",),
        "4,032 points; seen twice 0.04, unseen 0; Naive Bayes 23 params, 0.0054",
        (Field("points", "sample_space", ","), Field("MLE seen twice", "multinomial.p_combination_1", ".3g"),
         Field("NB params", "naive_bayes.free_params"), Field("NB p", "naive_bayes.p_combination_1", ".2g"))),
    Row("planet_pixel", ("1.6",), "Planet Pixel per-pixel Naive Bayes (Fig 1-13)", "experiments.planet_pixel",
        ("--workdir={workdir}",), "samples are noisy, near-identical faces",
        (Field("held-out bits/pixel", "heldout_bits_per_pixel", ".3f"),),
        quick=("--num_train=1000", "--num_heldout=200")),
    Row("biscuit_tins", ("1.7",), "biscuit tins: 2 latent factors (Fig 1-14, 1-15)", "experiments.biscuit_tins",
        ("--workdir={workdir}",), "2-D latent space maps to images", (Field("latent dims", "latent_dims"),)),
    Row("mlp", ("2.1",), "MLP on CIFAR-10", "experiments.main", _main("mlp_cifar10.py"),
        "646,260 params; train 51.9%, test 49.0%", ACCURACY, quick=CLASSIFIER_QUICK),
    Row("small_conv", ("2.2",), "small conv net", "experiments.main", _main("small_conv_cifar10.py"),
        "15,120 params", ACCURACY, quick=CLASSIFIER_QUICK),
    Row("cnn", ("2.3", "2.4", "2.6"), "CNN with BatchNorm and Dropout (Fig 2-17..2-19)", "experiments.main",
        _main("cnn_cifar10.py"), "592,554 params; test 71.5%", ACCURACY, quick=CLASSIFIER_QUICK),
    Row("conv_by_hand", ("2.5",), "convolution by hand (Fig 2-10, 2-11)", "experiments.conv_by_hand",
        ("--workdir={workdir}",), "2.3 and -2.3", (Field("responses", "fig_2_10"),)),
    Row("features.mnist", (), "CNN on MNIST: features for the 28x28 samples' metrics", "experiments.main",
        _main("cnn_mnist.py"), "-", ACCURACY, quick=CLASSIFIER_QUICK),
    Row("features.celeba", (), "CNN on CelebA's 40 attributes: features for the face samples' metrics",
        "experiments.main", _main("attributes_celeba.py"), "-",
        (Field("params", "params", ","), Field("test acc (mean of 40)", "test_accuracy", ".1%"),
         Field("majority baseline", "test_majority_accuracy", ".1%")),
        quick=(ONE, "--config.num_epochs=1", "--config.data.train_subset=2000", "--config.log_every_steps=10")),
    Row("ae_mnist", ("3.1", "3.2"), "autoencoder on MNIST (Fig 3-2, 3-8, 3-9)", "experiments.main",
        _main("ae_mnist.py", "--config.quality_features={features.mnist}"),
        "encoder 98,946 + decoder 102,017 params",
        (Field("params", "params", ","), Field("test MSE", "test_mse", ".4f"),
         Field("FD", "feature_metrics.frechet_distance", ".4g")), quick=DIGITS_QUICK, needs=("features.mnist",)),
    Row("vae_mnist", ("3.3",), "VAE on MNIST (Fig 3-10, 3-14)", "experiments.main",
        _main("vae_mnist.py", "--config.quality_features={features.mnist}"), "loss 1000 * mse + KL",
        (Field("params", "params", ","), Field("test MSE", "test_mse", ".4f"), Field("KL", "test_kl", ".2f"),
         Field("bits/dim", "test_bits_per_dim", ".3f"), Field("FD", "feature_metrics.frechet_distance", ".4g")),
        quick=DIGITS_QUICK, needs=("features.mnist",)),
    Row("vae_faces", ("3.4", "3.5", "3.6", "3.7"), "faces VAE on CelebA (Fig 3-18..3-22)", "experiments.main",
        _main("vae_faces_offline.py", "--config.quality_features={features.celeba}"),
        "encoder 1,732,944 + decoder 917,123 params; ~5 epochs",
        (Field("params", "params", ","), Field("test MSE", "test_mse", ".4f"),
         Field("bits/dim", "test_bits_per_dim", ".3f"), Field("FD", "feature_metrics.frechet_distance", ".4g")),
        quick=(ONE, "--config.num_steps=30", "--config.data.eval_examples=100",
               "--config.analysis.attribute_examples=300", "--config.quality_samples=100",
               "--config.analysis.nearest_pool=500", "--config.log_every_steps=10"), needs=("features.celeba",)),
    Row("gan", ("4.1", "4.2"), "GAN on Quick Draw (Fig 4-8..4-10)", "experiments.main",
        _main("gan_quickdraw.py", "--config.quality_features={features.mnist}"),
        "D 720,833, G 844,161 params; 2000 steps", GAN_FIELDS, quick=GAN_QUICK, needs=("features.mnist",)),
    Row("gan_oscillation", ("4.3",), "GAN failure: oscillating loss (Fig 4-11)", "experiments.main",
        _main("gan_quickdraw_oscillation.py", "--config.quality_features={features.mnist}"),
        "losses swing for tens of steps", GAN_FIELDS + (Field("D swing", "loss_oscillation.d_loss", ".3f"),),
        quick=GAN_QUICK, needs=("features.mnist",)),
    Row("gan_collapse", ("4.3",), "GAN failure: mode collapse (Fig 4-12)", "experiments.main",
        _main("gan_quickdraw_collapse.py", "--config.quality_features={features.mnist}"),
        "samples collapse to a few images", GAN_FIELDS, quick=GAN_QUICK, needs=("features.mnist",)),
    Row("wgan", ("4.4",), "WGAN on CIFAR-10 horses (Fig 4-15)", "experiments.main",
        _main("wgan_cifar_horses.py", "--config.quality_features={cnn}"), "RMSprop 5e-5, batch 128, clip 0.01",
        GAN_FIELDS, quick=_gan_quick(20, "--config.batch_size=32"), needs=("cnn",)),
    Row("wgan_gp", ("4.5",), "WGAN-GP on CelebA (Fig 4-18, 4-19)", "experiments.main",
        _main("wgangp_celeba.py", "--config.quality_features={features.celeba}"),
        "gradient weight 10, Adam b1 0.5", GAN_FIELDS,
        quick=_gan_quick(4, "--config.batch_size=16", "--config.analysis.nearest_pool=200"),
        needs=("features.celeba",)),
)
