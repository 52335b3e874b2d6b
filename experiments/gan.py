"""Chapter 4: train and analyse the GAN (book 4.1-4.2).

Per step the metrics log holds the discriminator's loss and accuracy on real and on fake images
and the generator's loss. The analysis writes Fig 4-8 (those curves; Fig 4-11 for a run whose
losses oscillate), Fig 4-9 (samples of one fixed latent batch at chosen steps, saved while
training so a resumed run keeps them), Fig 4-10 (generated images beside their nearest training
images by L1 distance, searched on device over the whole training set), a grid of 50 samples
(Fig 4-12 for a collapsed run), and their numbers in results.json, with two that detect the
failure modes (`failure_numbers`).
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import Callable, Sequence

import jax
import ml_collections
import numpy as np

from gdl_jax import eval as geval
from gdl_jax import models
from gdl_jax.errors import ConfigError
from gdl_jax.models.gan import Discriminator, Generator
from gdl_jax.models.summary import summarize
from gdl_jax.train import adversarial, parallel, runner
from gdl_jax.viz import figures

VALUE_RANGE = (-1.0, 1.0)
SAMPLE_SEED = 4242  # the fixed latent batch of Fig 4-9 and 4-10
DIVERSITY_SAMPLES = 100  # generated (and real) images compared pairwise for sample_diversity
GRID_SAMPLES = 50        # of those generated images, shown in the samples grid (Fig 4-12 under mode collapse)


def validate(config: ml_collections.ConfigDict) -> None:
    keys = ("batch_size", "num_steps", "d_learning_rate", "g_learning_rate", "z_dim", "steps_per_dispatch",
            "log_every_steps", "checkpoint_every_steps", "generator_steps")
    missing = [k for k in keys + ("optimizer", "analysis") if k not in config]
    if missing:
        raise ConfigError(f"a gan config needs {', '.join(missing)} (see experiments/configs/gan_quickdraw.py)")
    for key in keys:
        if not config[key] > 0:
            raise ConfigError(f"{key} must be positive, got {config[key]}")
    runner.make_optimizer(config, config.d_learning_rate)
    if config.data.train_subset < 0:
        raise ConfigError(f"data.train_subset must be >= 0 (0 = all), got {config.data.train_subset}")


def build(config: ml_collections.ConfigDict) -> tuple[Generator, Discriminator]:
    return (models.build("generator", **config.model.generator),
            models.build("discriminator", **config.model.discriminator))


def initial_state(config: ml_collections.ConfigDict, generator, discriminator, image_shape, mesh):
    """The run's step-0 GANState, replicated over the mesh (a pure function of config.seed)."""
    g_tx = runner.make_optimizer(config, config.g_learning_rate)
    d_tx = runner.make_optimizer(config, config.d_learning_rate)
    key = jax.random.split(jax.random.PRNGKey(config.seed))[0]
    return jax.jit(lambda k: adversarial.GANState.create(generator, discriminator, g_tx, d_tx, k, config.z_dim,
                                                         image_shape),
                   out_shardings=parallel.replicated(mesh))(key)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                       hooks: Sequence[Callable[[int, adversarial.GANState], None]] = ()) -> dict:
    validate(config)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    generator, discriminator = build(config)
    train, _ = runner.load_splits(config, splits=("train",))
    shape = train.images.shape[1:]
    d_summary, g_summary = summarize(discriminator, (1, *shape)), summarize(generator, (1, config.z_dim))
    summary = f"{d_summary}\n{g_summary}"
    z_fixed = jax.random.normal(jax.random.PRNGKey(SAMPLE_SEED), (config.analysis.num_samples, config.z_dim))
    generate = jax.jit(adversarial.generate)
    snapshots = workdir / "samples"

    def snapshot(step, state):
        """At the first dispatch end at or past each target step, saves the fixed batch's samples
        (a resumed run finds the targets it already passed saved, with the same images)."""
        due = [t for t in config.analysis.sample_steps if t <= step and not (snapshots / f"target_{t}.npz").exists()]
        if due:
            snapshots.mkdir(parents=True, exist_ok=True)
            images = np.asarray(generate(state.generator, z_fixed))
            for t in due:
                np.savez(snapshots / f"target_{t}.npz", images=images, step=step)

    state, records = runner.fit(config, workdir, runner.device_feeder(config, train, mesh, VALUE_RANGE),
                                functools.partial(adversarial.gan_train_step,
                                                  generator_steps=config.generator_steps), mesh,
                                lambda: initial_state(config, generator, discriminator, shape, mesh), summary,
                                hooks=[snapshot, *hooks])
    results = {"model": "gan", "data": config.data.name, "steps": int(state.step),
               "discriminator_params": d_summary.total, "generator_params": g_summary.total,
               **analyze(state, config, train.images, records, workdir, z_fixed)}
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def mean_pairwise_l1(images: np.ndarray) -> float:
    """Mean L1 distance (per pixel) over all pairs of distinct images."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    d = np.abs(flat[:, None] - flat[None]).mean(-1)
    return float(d.sum() / (len(flat) * (len(flat) - 1)))


def failure_numbers(steps: list[dict], samples: np.ndarray, real: np.ndarray) -> dict:
    """Numbers that detect the book's two failure modes.

    - sample_diversity: mean pairwise L1 of generated images over that of as many training
      images: ~1 when samples vary as much as the data, near 0 under mode collapse (Fig 4-12).
    - d_loss_swing: the range (max - min) of the 50-step moving average of the discriminator's
      loss over the second half of the run: small when training settles, large when the losses
      oscillate (Fig 4-11).
    """
    d_loss = np.array([r["d_loss"] for r in steps[len(steps) // 2:]])
    w = min(50, len(d_loss))
    smooth = np.convolve(d_loss, np.ones(w) / w, mode="valid")
    return {"sample_diversity": mean_pairwise_l1(samples) / mean_pairwise_l1(real),
            "d_loss_swing": float(smooth.max() - smooth.min())}


def to_unit(images: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [0, 1] for display."""
    return (np.asarray(images) + 1) / 2


def analyze(state, config, train_images: np.ndarray, records: list[dict], workdir: pathlib.Path,
            z_fixed: jax.Array) -> dict:
    steps = [r for r in records if r["kind"] == "train"]
    figures.gan_history(steps, workdir / config.analysis.history_png)
    saved = []
    for t in sorted(config.analysis.sample_steps):
        path = workdir / "samples" / f"target_{t}.npz"
        if path.exists():
            with np.load(path) as f:
                saved.append((int(f["step"]), f["images"]))
    if saved:
        figures.image_rows([to_unit(images) for _, images in saved], workdir / "fig_4_9_samples_during_training.png",
                           row_labels=[f"step {step}" for step, _ in saved])
    n = config.analysis.nearest_samples
    samples = np.asarray(jax.jit(adversarial.generate)(state.generator, z_fixed[:n]))
    index, distance = geval.nearest_l1(samples, train_images, scale=2 / 255, offset=-1.0)
    figures.image_rows([to_unit(samples), train_images[index] / 255.0], workdir / "fig_4_10_nearest_training.png",
                       row_labels=["generated", "nearest real (L1)"],
                       col_labels=[f"L1 {d:.3f}" for d in distance])
    tail = steps[-min(100, len(steps)):]
    m = min(DIVERSITY_SAMPLES, len(train_images))
    many = np.asarray(jax.jit(adversarial.generate)(
        state.generator, jax.random.normal(jax.random.PRNGKey(SAMPLE_SEED + 1), (m, config.z_dim))))
    real = train_images[np.random.default_rng(config.seed).choice(len(train_images), m, replace=False)] * (2 / 255) - 1
    figures.image_grid(to_unit(many[:GRID_SAMPLES]), workdir / config.analysis.grid_png)
    return {"last_100_steps": {k: float(np.mean([r[k] for r in tail])) for k in tail[-1] if k not in ("step", "kind")},
            **failure_numbers(steps, many, real),
            "nearest_l1": [float(d) for d in distance], "nearest_index": [int(i) for i in index],
            "sample_steps_saved": [step for step, _ in saved]}
