"""The chapter 3 trainers end to end on tiny MNIST-format data."""

import json
import pathlib

import numpy as np
import pytest
from scipy.stats import norm

from experiments.configs import ae_mnist, vae_mnist
from gdl_jax import data as gdata
from gdl_jax import eval as geval
from gdl_jax import losses, tasks
from gdl_jax.errors import ConfigError
from gdl_jax.tasks import autoencoder
from gdl_jax.train.metrics import read_jsonl

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tiny(config, mnist_dir):
    config.data.data_dir = str(mnist_dir)
    config.batch_size = 16
    config.num_epochs = 3
    config.steps_per_dispatch = 2
    config.log_every_steps = 4
    config.checkpoint_every_steps = 8
    config.eval_batch_size = 16
    return config


@pytest.mark.parametrize("make, figure", [(ae_mnist.get_config, "fig_3_8_latent_scatter.png"),
                                          (vae_mnist.get_config, "fig_3_14_latent_scatter.png")])
def test_tiny_run_lowers_the_loss_and_writes_the_analysis(mnist_dir, tmp_path, make, figure):
    config = _tiny(make(), mnist_dir)
    results = tasks.train_and_evaluate(config, tmp_path)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "train"]
    assert len(steps) == 12
    assert np.mean([r["loss"] for r in steps[-4:]]) < np.mean([r["loss"] for r in steps[:4]])
    assert results["params"] == 98_946 + 102_017 + (6_274 if config.task == "vae" else 0)
    assert len(results["latent"]["ks_to_standard_normal"]) == 2
    if config.task == "vae":
        assert {"reconstruction", "kl"} <= set(steps[0])   # loss terms logged separately
        # the ELBO of a Gaussian decoder of variance sigma^2 = D / (2 r) over D = 784 pixels, by hand
        r, mse, kl = config.r_loss_factor, results["test_mse"], results["test_kl"]
        nll = r * mse + 392 * np.log(2 * np.pi * 784 / (2 * r))
        assert results["test_elbo_nats"] == pytest.approx(-(nll + kl), rel=1e-6)
        assert results["test_bits_per_dim"] == pytest.approx((nll + kl) / (784 * np.log(2)), rel=1e-6)
    # decoded samples are closer to real digits than uniform noise is (~0.33 from every digit;
    # a decoder that outputs noise or inverted digits fails this)
    noise = np.random.default_rng(0).uniform(size=(20, 28, 28, 1))
    test = gdata.load("mnist", "test", str(mnist_dir))
    noise_score = geval.nearest_real_mse(noise, test.images / 255.0).mean()
    assert results["samples_nearest_test_mse"]["mean"] < noise_score
    for name in (figure, "fig_3_2_reconstructions.png", "fig_3_9_poorly_formed.png", "latent_grid.png", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text()) == results
    if config.task == "vae":   # the same seed: the same numbers, the sampled noise included
        assert tasks.train_and_evaluate(config, tmp_path / "again") == results


def test_bad_vae_settings(mnist_dir, tmp_path):
    config = _tiny(vae_mnist.get_config(), mnist_dir)
    config.r_loss_factor = 0.0
    with pytest.raises(ConfigError, match="r_loss_factor must be positive"):
        tasks.train_and_evaluate(config, tmp_path)
    config.task = "diffusion"
    with pytest.raises(ConfigError, match="unknown task 'diffusion'"):
        tasks.train_and_evaluate(config, tmp_path)
    config.task = "gan"   # a VAE config run as a GAN: the keys it lacks, named
    with pytest.raises(ConfigError, match="a gan config needs d_learning_rate, g_learning_rate"):
        tasks.train_and_evaluate(config, tmp_path)


@pytest.mark.slow   # the analysis binary in a new process (the trainer runs the analysis in every test)
def test_analysis_binary_restores_the_latest_checkpoint(mnist_dir, tmp_path):
    import subprocess
    import sys

    config = _tiny(ae_mnist.get_config(), mnist_dir)
    config.num_epochs = 1
    tasks.train_and_evaluate(config, tmp_path / "wd")
    (tmp_path / "wd" / "latent_grid.png").unlink()
    args = [sys.executable, "-m", "experiments.analyze_autoencoder", "--config=experiments/configs/ae_mnist.py",
            f"--config.data.data_dir={mnist_dir}", "--config.checkpoint_every_steps=8"]
    proc = subprocess.run(args + [f"--workdir={tmp_path / 'wd'}"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "wd" / "latent_grid.png").stat().st_size > 0
    # the same final checkpoint and test set as the trainer's own analysis: the same latent statistics
    assert json.loads(proc.stdout)["latent"] == json.loads((tmp_path / "wd" / "results.json").read_text())["latent"]
    # gdl_jax.load: the trained MNIST autoencoder, sampling from its latents.npz box
    import gdl_jax

    model = gdl_jax.load(tmp_path / "wd")
    test = gdata.load("mnist", "test", str(mnist_dir))
    z = model.encode(test.images[:5])
    assert model.kind == "autoencoder" and z.shape == (5, 2) and model.image_shape == (28, 28, 1)
    assert model.decode(z).shape == (5, 28, 28, 1)
    samples = model.sample(3)
    assert samples.shape == (3, 28, 28, 1) and model.attribute_names == ()
    with pytest.raises(ConfigError, match="has no attribute vectors"):
        model.attribute_vector("Smiling")
    with pytest.raises(ConfigError, match="an autoencoder has no posterior"):
        model.posterior(test.images[:2])
    empty = subprocess.run(args + [f"--workdir={tmp_path / 'empty'}"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert empty.returncode != 0 and "Traceback" not in empty.stderr
    assert empty.stderr.strip().splitlines()[-1].startswith("error: no checkpoint in")


def test_nearest_real_mse_scores_the_nearest_image():
    real = np.random.default_rng(0).uniform(size=(50, 4, 4, 1))
    samples = np.stack([real[7], real[3] + 0.1, np.full((4, 4, 1), 0.5)])
    scores = geval.nearest_real_mse(samples, real)
    brute = [min(np.mean((s - r) ** 2) for r in real) for s in samples]
    np.testing.assert_allclose(scores, brute, atol=1e-12)
    assert scores[0] < 1e-12 and abs(scores[1] - 0.01) < 1e-12


def test_latent_samples_follow_each_models_sampler():
    rng = np.random.default_rng(0)
    z = np.array([[-4.0, 1.0], [2.0, 5.0], [0.0, 3.0]])
    ae = geval.sample_latents(rng, z, variational=False, n=2000)
    # uniform over the box [-4, 2] x [1, 5]: it fills the box, centred on its middle
    span = np.ptp(z, 0)
    assert np.all(np.abs(ae.min(0) - z.min(0)) < 0.02 * span) and np.all(np.abs(ae.max(0) - z.max(0)) < 0.02 * span)
    assert np.all(np.abs(ae.mean(0) - (z.min(0) + z.max(0)) / 2) < 0.03 * span)
    vae = geval.sample_latents(rng, z, variational=True, n=20000)
    np.testing.assert_allclose(vae.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(vae.std(0), 1, atol=0.03)


def test_worst_separated_skips_near_duplicates():
    points = np.array([[0.0, 0.0], [0.05, 0.0], [3.0, 0.0], [0.0, 3.0]])
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    assert geval.worst_separated(points, scores, 2, min_distance=1.0).tolist() == [0, 2]
    assert geval.worst_separated(points, scores, 3, min_distance=0.01).tolist() == [0, 1, 2]


def test_elbo_matches_an_independent_computation():
    """The reported ELBO and bits/dim against log-densities from scipy and a Monte Carlo KL."""
    rng = np.random.default_rng(0)
    n, d, r = 3, 12, 50.0
    x, x_hat = rng.uniform(size=(n, d)), rng.uniform(size=(n, d))
    mu, log_var = rng.normal(size=(n, 2)), 0.3 * rng.normal(size=(n, 2))
    sigma = np.sqrt(d / (2 * r))                      # the decoder variance the loss implies
    log_lik = norm.logpdf(x, x_hat, sigma).sum(1)     # log p(x | z)
    std = np.exp(log_var / 2)
    z = mu + std * rng.standard_normal((100_000, n, 2))
    kl_mc = (norm.logpdf(z, mu, std) - norm.logpdf(z)).sum(-1).mean(0)
    want = np.mean(log_lik - kl_mc)
    mse, kl = ((x - x_hat) ** 2).mean(1), np.asarray(losses.kl_divergence(mu, log_var))
    np.testing.assert_allclose(kl, kl_mc, atol=0.02)   # the closed-form KL
    config = vae_mnist.get_config()
    config.r_loss_factor = r
    got = autoencoder.test_metrics({"mse": mse.sum(), "kl": kl.sum(), "loss": (r * mse + kl).sum(), "count": n},
                                   config, d)
    assert abs(got["test_elbo_nats"] - want) < 0.02
    assert abs(got["test_bits_per_dim"] - (-want / (d * np.log(2)))) < 0.02 / (d * np.log(2))
