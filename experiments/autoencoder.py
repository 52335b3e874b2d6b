"""Chapter 3: train and analyse the MNIST autoencoder and VAE (book 3.1-3.3).

Training logs the loss terms per step (reconstruction and KL separately for the VAE) and the
test metrics per epoch. `analyze` writes the figures (Fig 3-2 reconstructions, Fig 3-8 / 3-14
latent scatter with the VAE's p-value transform, Fig 3-3 / 3-9 / 3-10 decoded random points, a
latent grid) and the numbers: test reconstruction MSE, the VAE's ELBO in nats and bits per
dimension, and how Gaussian the encoded test set is.
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
    if z.shape[1] == 2:
        lo, hi = (-3.0, 3.0) if variational else (z.min(0), z.max(0))
        points = rng.normal(size=(30, 2)) if variational else rng.uniform(lo, hi, size=(30, 2))
        figures.image_grid(decode(points), workdir / f"fig_3_{'10' if variational else '3_9'}_random_points.png",
                           ncols=10, titles=[f"({a:.1f}, {b:.1f})" for a, b in points])
        lo, hi = np.broadcast_to(lo, 2), np.broadcast_to(hi, 2)
        figures.latent_grid(decode, np.linspace(lo[0], hi[0], 15), np.linspace(lo[1], hi[1], 15),
                            workdir / "latent_grid.png", scatter=z[:2000])
    return {"latent": gaussianity(z)}
