"""Chapter 3: train and analyse the autoencoder and VAE, on MNIST digits (book 3.1-3.3) and on
CelebA faces (book 3.4-3.7).

Training logs the loss terms per step (reconstruction and KL separately for the VAE) and the
held-out metrics per epoch. MNIST sits whole on device; CelebA streams from the host
(`StreamFeeder`). `analyze` writes the figures and numbers:
- digits: Fig 3-2 reconstructions, Fig 3-8 / 3-14 latent scatter (the VAE's with its p-value
  transform), Fig 3-3 / 3-10 decoded random points, Fig 3-9 the worst-formed of them, a latent grid;
- faces: Fig 3-18 reconstructions, Fig 3-19 histograms of the first 50 latent dimensions, Fig 3-20
  new faces, Fig 3-21 attribute vectors added with alphas -3..3, Fig 3-22 morphing;
- both: held-out MSE, the VAE's ELBO in nats and bits per dimension, how Gaussian the held-out
  codes are (faces: z sampled from q(z|x), first 50 dimensions), and `latents.npz` (the codes'
  bounding box; the faces' 40 attribute vectors), which `gdl_jax.load` reads;
- the novelty of config.quality_samples decoded random points (gdl_jax.eval.novelty: their
  nearest-training-image L1 distance against held-out images'; faces: the first
  analysis.nearest_pool training faces searched); with config.quality_features (a
  classifier run), their Frechet distance, precision and recall against as many held-out images
  in its feature space; with config.inception_weights, the same in FID's InceptionV3 features.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gdl_jax import data as gdata
from gdl_jax import eval as geval
from gdl_jax import models, outputs, parallel
from gdl_jax.api import LATENTS_FILE, TrainedModel
from gdl_jax.data.celeba import attribute_index
from gdl_jax.errors import ConfigError
from gdl_jax.eval import quality
from gdl_jax.models.summary import summarize
from gdl_jax.train import runner, steps
from gdl_jax.train.state import TrainState
from gdl_jax.viz import figures

EVAL_SEED = 1234  # the fixed key for the VAE's held-out z samples
NUM_SAMPLES = 500  # random latent points decoded and scored per digits analysis
ALPHAS = (-3, -2, -1, 0, 1, 2, 3)  # Fig 3-21
NUM_HISTOGRAM_DIMS = 50  # Fig 3-19
SCATTER_POINTS = 5000  # encoded test digits saved in latents.npz for a 2-D latent plane


def train_step(config: ml_collections.ConfigDict) -> Callable:
    """The config's train step: the VAE's with its r_loss_factor, or the autoencoder's."""
    if config.task == "vae":
        return functools.partial(steps.vae_train_step, r_loss_factor=config.r_loss_factor)
    return steps.autoencoder_train_step


def _eval_step(config: ml_collections.ConfigDict) -> Callable:
    if config.task == "vae":
        return functools.partial(steps.vae_eval_step, r_loss_factor=config.r_loss_factor,
                                 key=jax.random.PRNGKey(EVAL_SEED))
    return steps.autoencoder_eval_step


def is_faces(config: ml_collections.ConfigDict) -> bool:
    """Whether the config trains on CelebA faces (streamed) rather than MNIST digits (on device)."""
    return config.data.name == "celeba"


def test_metrics(sums: dict, config, num_dims: int) -> dict[str, float]:
    """Means of the eval sums; for the VAE also the ELBO (gdl_jax.eval.gaussian_elbo)."""
    n = float(sums["count"])
    out = {"test_mse": float(sums["mse"]) / n}
    if config.task == "vae":
        kl = float(sums["kl"]) / n
        elbo = geval.gaussian_elbo(out["test_mse"], kl, config.r_loss_factor, num_dims)
        out.update(test_kl=kl, test_loss=float(sums["loss"]) / n, test_elbo_nats=elbo["elbo_nats"],
                   test_bits_per_dim=elbo["bits_per_dim"])
    return out


def validate(config: ml_collections.ConfigDict) -> None:
    """A ConfigError naming the first bad setting, before any data is read."""
    runner.validate(config)
    quality.check(config)
    if config.task == "vae" and not config.r_loss_factor > 0:
        raise ConfigError(f"r_loss_factor must be positive, got {config.r_loss_factor}")
    if is_faces(config):
        d = config.data
        for key in ("image_size", "stream_workers", "prefetch"):
            if not d[key] > 0:
                raise ConfigError(f"data.{key} must be positive, got {d[key]}")
        if d.train_subset:
            raise ConfigError("data.train_subset is for data held on device; CelebA streams every face")
        if d.eval_examples < 0:
            raise ConfigError(f"data.eval_examples must be >= 0 (0 = the whole test split), got {d.eval_examples}")
        a = config.analysis
        if a.attribute_examples <= 0 or a.arithmetic_faces <= 0 or a.morph_steps < 2:
            raise ConfigError("analysis.attribute_examples and analysis.arithmetic_faces must be positive "
                              f"and analysis.morph_steps >= 2, got {a.attribute_examples}, "
                              f"{a.arithmetic_faces}, {a.morph_steps}")


def load_data(config: ml_collections.ConfigDict) -> tuple[gdata.ArrayData | gdata.StreamSource, gdata.ArrayData,
                                                          np.ndarray | None]:
    """(train, test, test attributes): MNIST as two ArrayData (no attributes); CelebA as a streamed
    train source, the held-out faces as ArrayData (the first data.eval_examples of the test split,
    or all of it) and their +1 / -1 attributes."""
    if not is_faces(config):
        return (*runner.load_splits(config), None)
    d = config.data
    train, test_source = runner.celeba(config, "train"), runner.celeba(config, "test")
    for name in config.analysis.attributes:  # a typo fails now, not after training
        attribute_index(train.attribute_names, name)
    n = min(len(test_source), d.eval_examples or len(test_source))
    if not all(0 <= i < n for i in config.analysis.morph_pair) or len(config.analysis.morph_pair) != 2:
        raise ConfigError(f"analysis.morph_pair {tuple(config.analysis.morph_pair)} must be two indices "
                          f"of the {n} held-out faces")
    test = gdata.ArrayData(test_source.load(np.arange(n)), np.zeros(n, np.int32), ())
    return train, test, test_source.attributes_of(np.arange(n))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                       hooks: Sequence[Callable[[int, TrainState], None]] = ()) -> dict:
    """Trains the autoencoder or VAE (digits or faces), evaluates it every epoch, runs its analysis."""
    validate(config)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    model = models.from_config(config.model, runner.axis_name(config))
    shape = runner.image_shape(config)
    summary = summarize(model, (1, *shape))
    if tuple(summary.layers[-1].output_shape[1:]) != shape:
        raise ConfigError(f"model.decoder makes {summary.layers[-1].output_shape[1:]} images but the data is "
                          f"{shape}: change its shape_before_flattening or strides")
    train, test, test_attributes = load_data(config)
    if isinstance(train, gdata.ArrayData):
        feeder = runner.device_feeder(config, train, mesh)
    else:
        feeder = runner.stream_feeder(config, train, mesh)
    eval_batch = runner.eval_batch_size(config, mesh)
    test_dev = gdata.to_device(runner.pad_to(test, eval_batch), mesh)
    step, eval_step = train_step(config), _eval_step(config)

    def evaluate(state, epoch=None, train_means=None):
        sums = jax.device_get(runner.evaluate_sums(eval_step, state, test_dev, jnp.int32(len(test)),
                                                   eval_batch, mesh))
        return test_metrics(sums, config, int(np.prod(shape)))

    state, records = runner.fit(config, workdir, feeder, step, mesh,
                                lambda: runner.initial_state(config, model, shape, mesh), summary,
                                on_epoch_end=evaluate, hooks=hooks)
    last_epoch = [r for r in records if r["kind"] == "epoch"][-1]
    trained = TrainedModel(config, model, state.variables(), shape)
    results = {"model": config.model.name, "data": config.data.name, "params": summary.total,
               "steps": int(state.step), "epochs": last_epoch["epoch"], "test_examples": len(test),
               **{k: v for k, v in last_epoch.items() if k.startswith(("train_", "test_"))},
               **analyze(trained, config, train, test, test_attributes, workdir)}
    outputs.write_results(workdir, results)
    figures.training_curves(records, workdir / "curves.png")
    return results


def analyze(trained: TrainedModel, config, train, test: gdata.ArrayData, test_attributes: np.ndarray | None,
            workdir: pathlib.Path) -> dict:
    """The figures and numbers of a trained model (digits or faces), and workdir/latents.npz."""
    workdir.mkdir(parents=True, exist_ok=True)
    if is_faces(config):  # the faces analysis needs q(z|x) too: one encoder pass gives both
        z, log_var = trained.posterior(test.images)
    else:
        z = trained.encode(test.images)
    latents = {"z_min": z.min(0), "z_max": z.max(0)}
    if z.shape[1] == 2:   # the latent plane's scatter (experiments.explore)
        latents.update(scatter_z=z[:SCATTER_POINTS], scatter_labels=test.labels[:SCATTER_POINTS])
    if is_faces(config):
        out = analyze_faces(trained, config, train, test, test_attributes > 0, z, log_var, workdir, latents)
    else:
        out = analyze_digits(trained, config, test, z, workdir)
    # samples as the book draws them (gdl_jax.eval.sample_latents) against as many held-out images
    n = min(config.quality_samples, len(test))
    rng = np.random.default_rng(config.seed)
    fake = trained.decode(geval.sample_latents(rng, z, trained.variational, n))
    real = test.images[rng.choice(len(test), n, replace=False)]
    # rule 2 against every training digit; for streamed faces, the first analysis.nearest_pool
    searched = train.images if isinstance(train, gdata.ArrayData) else \
        train.load(np.arange(min(len(train), config.analysis.get("nearest_pool", 5000))))
    out["novelty"] = geval.novelty(fake, searched, real, scale=1 / 255)
    out.update(quality.metrics_for_config(config, real / 255.0, fake))
    if parallel.is_writer():
        outputs.atomic_savez(workdir / LATENTS_FILE, **latents)
    return out


def analyze_digits(trained: TrainedModel, config, test: gdata.ArrayData, z: np.ndarray,
                   workdir: pathlib.Path) -> dict:
    variational = trained.variational
    name = "VAE" if variational else "AE"
    decode = trained.decode
    rng = np.random.default_rng(config.seed)

    idx = rng.choice(len(test), 10, replace=False)
    recon = decode(z[idx])
    figures.image_grid(np.concatenate([gdata.to_float(test.images[idx]), recon]),
                       workdir / "fig_3_2_reconstructions.png", ncols=10)
    figures.latent_scatter(z, test.labels, workdir / f"fig_3_{'14' if variational else '8'}_latent_scatter.png",
                           title=f"{name}: test set in latent space", with_pvalues=variational)
    samples = geval.sample_latents(rng, z, variational, NUM_SAMPLES)
    decoded = decode(samples)
    nearest = geval.nearest_real_mse(decoded, np.asarray(gdata.to_float(test.images)))
    if z.shape[1] == 2:
        figures.image_grid(decoded[:30], workdir / f"fig_3_{'10' if variational else '3'}_random_points.png",
                           ncols=10, titles=[f"({a:.1f}, {b:.1f})" for a, b in samples[:30]])
        worst = geval.worst_separated(samples, nearest, 3, min_distance=0.1 * np.linalg.norm(np.ptp(z, 0)))
        figures.latent_points(z, test.labels, samples[worst], decoded[worst], workdir / "fig_3_9_poorly_formed.png",
                              captions=[f"({a:.1f}, {b:.1f})\nnearest MSE {m:.3f}"
                                        for (a, b), m in zip(samples[worst], nearest[worst])],
                              title=f"{name}: the 3 worst-formed of {NUM_SAMPLES} random points")
        lo, hi = (np.full(2, -3.0), np.full(2, 3.0)) if variational else (z.min(0), z.max(0))
        figures.latent_grid(decode, np.linspace(lo[0], hi[0], 15), np.linspace(lo[1], hi[1], 15),
                            workdir / "latent_grid.png", scatter=z[:2000])
    return {"latent": geval.gaussianity(z),
            "samples_nearest_test_mse": {"mean": float(nearest.mean()), "median": float(np.median(nearest)),
                                         "p90": float(np.quantile(nearest, 0.9))}}


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def analyze_faces(trained: TrainedModel, config, train, test: gdata.ArrayData, test_attrs: np.ndarray,
                  z: np.ndarray, log_var: np.ndarray, workdir: pathlib.Path, latents: dict) -> dict:
    """z, log_var: the held-out faces' posterior means and log-variances."""
    a = config.analysis
    rng = np.random.default_rng(config.seed)
    faces = gdata.to_float(test.images)
    n = len(test)

    idx = rng.choice(n, min(10, n), replace=False)
    figures.image_rows([faces[idx], trained.decode(z[idx])], workdir / "fig_3_18_reconstructions.png",
                       row_labels=["original", "reconstruction"])
    # Fig 3-19 shows z sampled from q(z|x), as the book's encoder outputs it: their spread over
    # the data (the aggregate posterior) is what sampling from N(0, I) relies on.
    z_sampled = z + np.exp(log_var / 2) * rng.standard_normal(z.shape)
    dims = min(NUM_HISTOGRAM_DIMS, z.shape[1])
    figures.latent_histograms(z_sampled[:, :dims], workdir / "fig_3_19_latent_histograms.png",
                              "first latent dimensions of the held-out faces (bars) against N(0, 1) (line)")
    figures.image_grid(trained.sample(30, seed=config.seed), workdir / "fig_3_20_new_faces.png", ncols=10)

    # Attribute vectors from the first attribute_examples training faces (book 3.6).
    m = min(a.attribute_examples, len(train))
    z_attr = np.concatenate([trained.encode(train.load(np.arange(i, min(i + 500, m))))
                             for i in range(0, m, 500)])
    vectors, counts = geval.attribute_vectors(z_attr, train.attributes_of(np.arange(m)))
    latents.update(attribute_names=np.array(train.attribute_names), attribute_vectors=vectors,
                   attribute_counts=counts, attribute_examples=np.int64(m))
    trained.latents = latents

    chosen = rng.choice(n, min(a.arithmetic_faces, n), replace=False)
    rows, labels = [], []
    for name in a.attributes:
        v = trained.attribute_vector(name)
        for i in chosen:
            rows.append(trained.decode(z[i] + np.array(ALPHAS, np.float32)[:, None] * v))
            labels.append(f"{name}\nface {i}")
    figures.image_rows(rows, workdir / "fig_3_21_attribute_arithmetic.png", row_labels=labels,
                       col_labels=[f"alpha {al:+d}" for al in ALPHAS],
                       first_column=[faces[i] for i in chosen] * len(a.attributes), first_label="original")

    i, j = a.morph_pair
    frames = trained.morph(test.images[i], test.images[j], a.morph_steps)
    alphas = np.linspace(0, 1, a.morph_steps)
    figures.image_rows([np.concatenate([faces[i][None], frames, faces[j][None]])],
                       workdir / "fig_3_22_morphing.png", row_labels=[f"face {i} -> {j}"],
                       col_labels=["A"] + [f"{al:.2f}" for al in alphas] + ["B"])

    # How well each direction separates held-out faces with the attribute from those without.
    index = {name: k for k, name in enumerate(trained.attribute_names)}
    separation = {name: auc(z @ vectors[index[name]], test_attrs[:, index[name]]) for name in a.attributes}
    g = geval.gaussianity(z_sampled[:, :dims])
    mu_std = z.std(0)
    return {"latent_first_dims": dims, "latent": g,
            "latent_summary": {"mean_abs_mean": float(np.mean(np.abs(g["mean"]))), "mean_std": float(np.mean(g["std"])),
                               "mean_ks": float(np.mean(g["ks_to_standard_normal"])),
                               "max_ks": float(np.max(g["ks_to_standard_normal"])),
                               # dimensions whose posterior mean varies over faces (the rest carry noise only)
                               "active_dims": int((mu_std > 0.5).sum()),
                               "active_dims_in_first": int((mu_std[:dims] > 0.5).sum())},
            "attribute_examples": m,
            "attribute_counts": {name: int(counts[index[name]]) for name in a.attributes},
            "attribute_test_auc": separation}
