"""Chapter 3: train and analyse the MNIST autoencoder and VAE (book 3.1-3.3).

Training logs the loss terms per step (reconstruction and KL separately for the VAE) and the
test metrics per epoch. `analyze` writes the figures (Fig 3-2 reconstructions, Fig 3-8 / 3-14
latent scatter with the VAE's p-value transform, Fig 3-3 / 3-10 decoded random points, Fig 3-9 the
worst-formed of them, a latent grid) and the numbers: test reconstruction MSE, the VAE's ELBO in nats and bits per
dimension, how Gaussian the encoded test set is, and how far random samples are from any real
digit.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats

from gdl_jax import data as gdata
from gdl_jax import models
from gdl_jax.errors import ConfigError
from gdl_jax.train import parallel, runner, steps
from gdl_jax.train.state import TrainState
from gdl_jax.viz import figures

EVAL_SEED = 1234  # the fixed key for the VAE's test-set z samples
NUM_SAMPLES = 500  # random latent points decoded and scored per analysis


def _steps(config):
    if config.task == "vae":
        eval_key = jax.random.PRNGKey(EVAL_SEED)
        return (functools.partial(steps.vae_train_step, r_loss_factor=config.r_loss_factor),
                functools.partial(steps.vae_eval_step, r_loss_factor=config.r_loss_factor, key=eval_key))
    return steps.autoencoder_train_step, steps.autoencoder_eval_step


def test_metrics(sums: dict, config, num_pixels: int) -> dict[str, float]:
    """Means of the eval sums; for the VAE also the ELBO.

    The book's loss r * mse + KL is, up to a constant, the negative ELBO of a Gaussian decoder
    with variance sigma^2 = D / (2 r) (D pixels): -log p(x|z) = r * mse + D/2 log(2 pi sigma^2).
    Pixel values are continuous here, so bits per dimension can be negative.
    """
    n = float(sums["count"])
    out = {"test_mse": float(sums["mse"]) / n}
    if config.task == "vae":
        kl = float(sums["kl"]) / n
        sigma2 = num_pixels / (2 * config.r_loss_factor)
        nll = config.r_loss_factor * out["test_mse"] + num_pixels / 2 * math.log(2 * math.pi * sigma2)
        elbo = -(nll + kl)
        out.update(test_kl=kl, test_loss=float(sums["loss"]) / n, test_elbo_nats=elbo,
                   test_bits_per_dim=-elbo / (num_pixels * math.log(2)))
    return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                       hooks: Sequence[Callable[[int, TrainState], None]] = ()) -> dict:
    runner.validate(config)
    if config.task == "vae" and not config.r_loss_factor > 0:
        raise ConfigError(f"r_loss_factor must be positive, got {config.r_loss_factor}")
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    model = models.build(config.model.name, encoder=config.model.encoder, decoder=config.model.decoder)
    train, test = runner.load_splits(config)
    eval_batch = runner.eval_batch_size(config, mesh)
    test_dev = gdata.to_device(runner.pad_to(test, eval_batch), mesh)
    train_step, eval_step = _steps(config)
    num_pixels = int(np.prod(test.images.shape[1:]))

    def evaluate(state, epoch=None, train_means=None):
        sums = jax.device_get(runner.evaluate_sums(eval_step, state, test_dev, jnp.int32(len(test)),
                                                   eval_batch, mesh))
        return test_metrics(sums, config, num_pixels)

    state, records, summary = runner.fit(config, workdir, model, train, train_step, mesh,
                                         on_epoch_end=evaluate, hooks=hooks)
    last_epoch = [r for r in records if r["kind"] == "epoch"][-1]
    results = {"model": config.model.name, "params": summary.total, "steps": int(state.step),
               "epochs": last_epoch["epoch"],
               **{k: v for k, v in last_epoch.items() if k.startswith(("train_", "test_"))},
               **analyze(state, model, config, test, workdir)}
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    figures.training_curves(records, workdir / "curves.png")
    return results


def encode(state: TrainState, model, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Latent codes of uint8 images: z for the autoencoder, mu for the VAE."""
    fn = jax.jit(lambda x: model.apply(state.variables(),
                                       gdata.to_float(x), method=lambda m, x: m.encoder(x, train=False)))
    out = [fn(jnp.asarray(images[i:i + batch])) for i in range(0, len(images), batch)]
    if isinstance(out[0], tuple):
        out = [mu for mu, _ in out]
    return np.concatenate([np.asarray(o) for o in out])


def decoder_fn(state: TrainState, model) -> Callable[[np.ndarray], np.ndarray]:
    fn = jax.jit(lambda z: model.apply(state.variables(),
                                       z, method=lambda m, z: m.decoder(z, train=False)))
    return lambda z: np.asarray(fn(jnp.asarray(z, jnp.float32)))


def sample_latents(rng: np.random.Generator, z: np.ndarray, variational: bool, n: int) -> np.ndarray:
    """Random latent points as the book draws them: N(0, I) for the VAE; for the AE, whose code
    distribution is undefined, uniform over the bounding box of the encoded test set."""
    if variational:
        return rng.normal(size=(n, z.shape[1]))
    return rng.uniform(z.min(0), z.max(0), size=(n, z.shape[1]))


def nearest_real_mse(samples: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per sample, the mean squared pixel error to its nearest real image: a score of how poorly
    formed a generated image is (one that looks like no real digit is far from all of them)."""
    a = samples.reshape(len(samples), -1).astype(np.float64)
    b = real.reshape(len(real), -1).astype(np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(sq.min(1), 0) / a.shape[1]


def worst_separated(points: np.ndarray, scores: np.ndarray, n: int, min_distance: float) -> np.ndarray:
    """Indices of the n highest-scoring points, each at least min_distance from those chosen
    before it (so a figure shows n different places, not one spot n times)."""
    chosen: list[int] = []
    for i in np.argsort(scores)[::-1]:
        if all(np.linalg.norm(points[i] - points[j]) >= min_distance for j in chosen):
            chosen.append(int(i))
        if len(chosen) == n:
            break
    return np.array(chosen)


def gaussianity(z: np.ndarray) -> dict:
    """Per latent dimension: mean, std, and the Kolmogorov-Smirnov distance to N(0, 1)."""
    return {"mean": z.mean(0).tolist(), "std": z.std(0).tolist(),
            "ks_to_standard_normal": [float(stats.kstest(z[:, d], "norm").statistic) for d in range(z.shape[1])]}


def analyze(state: TrainState, model, config, test: gdata.ArrayData, workdir: pathlib.Path) -> dict:
    """Figures and latent-space numbers for a trained autoencoder / VAE on the test set."""
    variational = config.task == "vae"
    name = "VAE" if variational else "AE"
    decode = decoder_fn(state, model)
    rng = np.random.default_rng(config.seed)
    z = encode(state, model, test.images)

    idx = rng.choice(len(test), 10, replace=False)
    recon = decode(z[idx])
    figures.image_grid(np.concatenate([gdata.to_float(test.images[idx]), recon]),
                       workdir / "fig_3_2_reconstructions.png", ncols=10)
    figures.latent_scatter(z, test.labels, workdir / f"fig_3_{'14' if variational else '8'}_latent_scatter.png",
                           title=f"{name}: test set in latent space", with_pvalues=variational)
    samples = sample_latents(rng, z, variational, NUM_SAMPLES)
    decoded = decode(samples)
    nearest = nearest_real_mse(decoded, np.asarray(gdata.to_float(test.images)))
    if z.shape[1] == 2:
        figures.image_grid(decoded[:30], workdir / f"fig_3_{'10' if variational else '3'}_random_points.png",
                           ncols=10, titles=[f"({a:.1f}, {b:.1f})" for a, b in samples[:30]])
        worst = worst_separated(samples, nearest, 3, min_distance=0.1 * np.linalg.norm(np.ptp(z, 0)))
        figures.latent_points(z, test.labels, samples[worst], decoded[worst], workdir / "fig_3_9_poorly_formed.png",
                              captions=[f"({a:.1f}, {b:.1f})\nnearest MSE {m:.3f}"
                                        for (a, b), m in zip(samples[worst], nearest[worst])],
                              title=f"{name}: the 3 worst-formed of {NUM_SAMPLES} random points")
        lo, hi = (np.full(2, -3.0), np.full(2, 3.0)) if variational else (z.min(0), z.max(0))
        figures.latent_grid(decode, np.linspace(lo[0], hi[0], 15), np.linspace(lo[1], hi[1], 15),
                            workdir / "latent_grid.png", scatter=z[:2000])
    return {"latent": gaussianity(z),
            "samples_nearest_test_mse": {"mean": float(nearest.mean()), "median": float(np.median(nearest)),
                                         "p90": float(np.quantile(nearest, 0.9))}}
