"""Chapter 4: train and analyse the GAN (task 'gan', book 4.1-4.3) and the WGAN / WGAN-GP (task
'wgan', book 4.4-4.5; clip_value > 0 makes it the WGAN, gp_weight > 0 the WGAN-GP).

Per step the metrics log holds the discriminator's loss and accuracy on real and on fake images
and the generator's loss (GAN), or the critic's losses, the Wasserstein estimate and the gradient
penalty (WGANs). The analysis writes, under the file names the config gives:
- the training history: Fig 4-8 (Fig 4-11 for a run whose losses oscillate), Fig 4-19 (WGANs);
- samples of one fixed latent batch at chosen steps, saved while training so that a resumed run
  keeps them (Fig 4-9, Fig 4-15 horses, Fig 4-18 faces);
- generated images beside their nearest training images by L1 distance, searched on device over
  the training set (Fig 4-10; a pool of `analysis.nearest_pool` faces for streamed CelebA);
- a grid of 50 samples (Fig 4-12 for a collapsed run);
- novelty, the book's rule 2 (gdl_jax.eval.novelty): the nearest-training-image L1 distance of
  analysis.novelty_held_out samples against that of as many real images never trained on (the
  test split; for Quick Draw, drawings held out of training);
- sample quality measured during training against the loss that should track it (the
  Wasserstein estimate; the GAN's generator loss): book 4.4's claim as a rank correlation;
- with config.quality_features (a classifier run), the Frechet distance, precision and recall of
  config.quality_samples generated images against as many training images in its feature space
  (with config.inception_weights, in FID's InceptionV3 features too);
and their numbers in results.json, with two that detect the failure modes (`failure_numbers`).
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import Callable, Sequence

import jax
import ml_collections
import numpy as np

from gdl_jax import data as gdata
from gdl_jax import eval as geval
from gdl_jax import outputs, parallel
from gdl_jax.errors import ConfigError
from gdl_jax.eval import quality
from gdl_jax.models.summary import summarize
from gdl_jax.train import adversarial, runner
from gdl_jax.viz import figures

VALUE_RANGE = (-1.0, 1.0)
SAMPLE_SEED = 4242  # the fixed latent batch of the samples-during-training and nearest-neighbour figures
DIVERSITY_SAMPLES = 100  # generated (and real) images compared pairwise for sample_diversity
GRID_SAMPLES = 50        # of those generated images, shown in the samples grid (Fig 4-12 under mode collapse)

generate = jax.jit(adversarial.generate)  # the samples of the hooks and the analysis: one compiled program per shape


def is_wgan(config: ml_collections.ConfigDict) -> bool:
    """Whether the config trains a WGAN or WGAN-GP (a critic) rather than the GAN (a discriminator)."""
    return config.task == "wgan"


def validate(config: ml_collections.ConfigDict) -> None:
    """A ConfigError naming the first bad setting, before any data is read."""
    wgan = is_wgan(config)
    keys = ("batch_size", "num_steps", "d_learning_rate", "g_learning_rate", "z_dim", "steps_per_dispatch",
            "log_every_steps", "checkpoint_every_steps") + (("n_critic",) if wgan else ("generator_steps",))
    missing = [k for k in keys + ("optimizer", "analysis") + (("clip_value", "gp_weight") if wgan else ())
               if k not in config]
    if missing:
        example = "wgan_cifar_horses.py" if wgan else "gan_quickdraw.py"
        raise ConfigError(f"a {config.task} config needs {', '.join(missing)} (see experiments/configs/{example})")
    runner.check_common(config, keys, config.d_learning_rate)
    quality.check(config)
    for key in ("num_samples", "nearest_samples"):
        if config.analysis.get(key, 1) < 1:
            raise ConfigError(f"analysis.{key} must be positive, got {config.analysis[key]}")
    if config.analysis.get("novelty_held_out", 0) < 0:
        raise ConfigError(f"analysis.novelty_held_out must be >= 0 (0 = no novelty), got "
                          f"{config.analysis.novelty_held_out}")
    if config.analysis.get("quality_every_steps", 0) < 0:
        raise ConfigError(f"analysis.quality_every_steps must be >= 0 (0 = never), got "
                          f"{config.analysis.quality_every_steps}")
    if config.get("d_freeze_step", 0) < 0 or (wgan and config.get("d_freeze_step")):
        raise ConfigError(f"d_freeze_step must be >= 0 (0 = never) and is for the GAN only, got {config.d_freeze_step}")
    if wgan:
        if config.clip_value < 0 or config.gp_weight < 0 or not (config.clip_value or config.gp_weight):
            raise ConfigError("a wgan needs clip_value > 0 (the WGAN) or gp_weight > 0 (the WGAN-GP), got "
                              f"clip_value {config.clip_value}, gp_weight {config.gp_weight}")
        if config.model.critic.get("batch_norm_momentum"):
            raise ConfigError("a WGAN critic cannot have BatchNorm (model.critic.batch_norm_momentum): the "
                              "gradient penalty needs each image scored on its own, and clipping assumes it too")
    g = config.model.generator
    if any(u > 1 and s > 1 for u, s in zip(g.upsample, g.strides)):
        raise ConfigError(f"model.generator: a layer has both upsample > 1 and stride > 1 "
                          f"(upsample {tuple(g.upsample)}, strides {tuple(g.strides)}); use one or the other")


def initial_state(config: ml_collections.ConfigDict, image_shape: tuple[int, ...], mesh) -> adversarial.GANState:
    """The run's step-0 GANState, replicated over the mesh (a pure function of config.seed)."""
    return jax.jit(lambda k: adversarial.init_state(config, image_shape, k, runner.axis_name(config)),
                   out_shardings=parallel.replicated(mesh))(runner.init_key(config))


def train_step(config: ml_collections.ConfigDict) -> Callable:
    """The config's train step: the WGAN's (n_critic, clipping or penalty) or the GAN's."""
    if is_wgan(config):
        return functools.partial(adversarial.wgan_train_step, n_critic=config.n_critic,
                                 clip_value=config.clip_value or None, gp_weight=config.gp_weight)
    return functools.partial(adversarial.gan_train_step, generator_steps=config.generator_steps)


def real_per_step(config: ml_collections.ConfigDict) -> int:
    """Real images one step takes: a batch per critic update for the WGANs."""
    return config.batch_size * (config.n_critic if is_wgan(config) else 1)


def load_data(config: ml_collections.ConfigDict, mesh) -> tuple[gdata.Feeder, np.ndarray, np.ndarray | None]:
    """The feeder; the training images the analysis compares samples with (uint8): every one
    for data held on device, for streamed CelebA the first analysis.nearest_pool faces; and
    analysis.novelty_held_out real images never trained on (None for 0): from the test split, or
    for Quick Draw, which has none, held out of training (gdl_jax.train.runner.load_splits)."""
    per_step = real_per_step(config)
    n_held = config.analysis.get("novelty_held_out", 0)
    if config.data.name == "celeba":
        d = config.data
        if d.train_subset:
            raise ConfigError("data.train_subset is for data held on device; CelebA streams every face")
        source = runner.celeba(config, "train")
        pool = source.load(np.arange(min(len(source), config.analysis.nearest_pool)))
        held = None
        if n_held:
            test = runner.celeba(config, "test")
            held = test.load(np.arange(min(len(test), n_held)))
        return runner.stream_feeder(config, source, mesh, VALUE_RANGE, per_step), pool, held
    train, test = runner.load_splits(config, splits=("train", "test") if n_held else ("train",), held_out=n_held)
    held = None
    if n_held:
        held = test.images[np.sort(np.random.default_rng(config.seed).choice(len(test), min(n_held, len(test)),
                                                                             replace=False))]
    return runner.device_feeder(config, train, mesh, VALUE_RANGE, per_step), train.images, held


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                       hooks: Sequence[Callable[[int, adversarial.GANState], None]] = ()) -> dict:
    """Trains the GAN, WGAN or WGAN-GP, tracking sample quality, and runs its analysis."""
    validate(config)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    generator, discriminator = adversarial.networks(config)
    shape = runner.image_shape(config)
    feeder, train_images, held_out = load_data(config, mesh)
    g_summary = summarize(generator, (1, config.z_dim))
    if tuple(g_summary.layers[-1].output_shape[1:]) != shape:
        raise ConfigError(f"model.generator makes {g_summary.layers[-1].output_shape[1:]} images but the data "
                          f"is {shape}: change its initial_shape, upsample or strides")
    d_summary = summarize(discriminator, (1, *shape))
    summary = f"{d_summary}\n{g_summary}"
    z_fixed = jax.random.normal(jax.random.PRNGKey(SAMPLE_SEED), (config.analysis.num_samples, config.z_dim))
    snapshots = workdir / "samples"

    saved = {t for t in config.analysis.sample_steps if (snapshots / f"target_{t}.npz").exists()}

    def snapshot(step, state):
        """At the first dispatch end at or past each target step, saves the fixed batch's samples
        (a resumed run finds the targets it already passed saved, with the same images). What is
        due is decided from the step alone, so every process of a multi-host run generates at
        the same steps."""
        due = [t for t in config.analysis.sample_steps if t <= step and t not in saved]
        if due:
            images = np.asarray(generate(state.generator, z_fixed))
            saved.update(due)
            if parallel.is_writer():
                snapshots.mkdir(parents=True, exist_ok=True)
                for t in due:
                    np.savez(snapshots / f"target_{t}.npz", images=images, step=step)

    state, records = runner.fit(config, workdir, feeder, train_step(config), mesh,
                                lambda: initial_state(config, shape, mesh), summary,
                                hooks=[snapshot, quality_hook(config, workdir, train_images), *hooks])
    results = {"model": config.task, "data": config.data.name, "steps": int(state.step),
               "discriminator_params": d_summary.total, "generator_params": g_summary.total,
               **analyze(state, config, train_images, held_out, records, workdir, z_fixed)}
    outputs.write_results(workdir, results)
    return results


def quality_latents(config: ml_collections.ConfigDict) -> jax.Array:
    """The fixed latent batch of the quality measures (DIVERSITY_SAMPLES images)."""
    return jax.random.normal(jax.random.PRNGKey(SAMPLE_SEED + 1), (DIVERSITY_SAMPLES, config.z_dim))


def reference_images(config: ml_collections.ConfigDict, train_images: np.ndarray) -> np.ndarray:
    """The training images sample_diversity compares with: as many as it generates, in [-1, 1]."""
    m = min(DIVERSITY_SAMPLES, len(train_images))
    return train_images[np.random.default_rng(config.seed).choice(len(train_images), m, replace=False)] * (2 / 255) - 1


def sample_quality(samples: np.ndarray, train_images: np.ndarray, real: np.ndarray) -> dict:
    """Two sample-quality measures: the mean L1 distance of the samples to their nearest training
    images (falls as samples look like data) and their sample_diversity (falls under collapse)."""
    _, distance = geval.nearest_l1(samples, train_images, scale=2 / 255, offset=-1.0, chunk=256)
    return {"nearest_l1": float(distance.mean()), "diversity": geval.sample_diversity(samples[:len(real)], real)}


def metric_images(config: ml_collections.ConfigDict, train_images: np.ndarray) -> tuple[np.ndarray, jax.Array]:
    """The real images (in [0, 1]) and the latents of the feature-space metrics: the same for the
    tracking during training and the final numbers, so the last tracked point is the final one."""
    n = min(config.quality_samples, len(train_images))
    chosen = np.random.default_rng(config.seed).choice(len(train_images), n, replace=False)
    return train_images[chosen] / 255.0, jax.random.normal(jax.random.PRNGKey(SAMPLE_SEED + 2), (n, config.z_dim))


def frechet_tracker(config: ml_collections.ConfigDict,
                    train_images: np.ndarray) -> Callable[[adversarial.GANState], float] | None:
    """With config.quality_features (a classifier run): state -> the Frechet distance of the
    generator's metric_images samples to the real ones in that classifier's features (the real
    statistics computed once). None without it."""
    if not config.get("quality_features"):
        return None
    from gdl_jax.eval import frechet
    from gdl_jax.eval.features import ClassifierFeatures

    features = ClassifierFeatures.from_workdir(config.quality_features)
    real, z = metric_images(config, train_images)
    real_stats = frechet.feature_statistics(features(real))
    return lambda state: frechet.frechet_distance(
        real_stats, frechet.feature_statistics(features(to_unit(generate(state.generator, z)))))


def quality_hook(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                 train_images: np.ndarray) -> Callable[[int, adversarial.GANState], None]:
    """Sample quality during training, every analysis.quality_every_steps (0: never): at the first
    dispatch end at or past each multiple, sample_quality of one fixed latent batch (and, with
    config.quality_features, the Frechet distance in that classifier's features), saved as
    quality/step_<multiple>.json with the step it was measured at (a resumed run keeps those it
    passed; the run is deterministic, so they are the numbers it would measure again)."""
    every = config.analysis.get("quality_every_steps", 0)
    folder = workdir / "quality"
    z = quality_latents(config)
    real = reference_images(config, train_images)
    done = {int(p.stem.split("_")[1]) for p in folder.glob("step_*.json")}
    frechet_of = frechet_tracker(config, train_images) if every else None

    def hook(step: int, state: adversarial.GANState) -> None:
        due = [t for t in range(every, step + 1, every) if t not in done] if every else []
        if due:
            record = {"step": step, **sample_quality(np.asarray(generate(state.generator, z)), train_images, real)}
            if frechet_of is not None:
                record["frechet_distance"] = frechet_of(state)
            done.update(due)
            if parallel.is_writer():
                folder.mkdir(exist_ok=True)
                for t in due:
                    (folder / f"step_{t}.json").write_text(json.dumps(record) + "\n")
    return hook


def read_quality(workdir: pathlib.Path) -> list[dict]:
    """The quality records quality_hook saved, one per measured step, in step order."""
    records = {}
    for path in (workdir / "quality").glob("step_*.json"):
        record = json.loads(path.read_text())
        records[record["step"]] = record
    return [records[k] for k in sorted(records)]


def failure_numbers(steps: list[dict], samples: np.ndarray, real: np.ndarray, wgan: bool = False) -> dict:
    """Numbers that detect the book's two failure modes (gdl_jax.eval.adversarial).

    - sample_diversity: mean pairwise L1 of generated images over that of as many training
      images: ~1 when samples vary as much as the data, near 0 under mode collapse (Fig 4-12).
    - loss_oscillation: for the discriminator's (critic's) and the generator's loss, the swing
      of its 25-step moving average about its 200-step one after the first 10% of the run:
      small when training settles, large when the losses oscillate (Fig 4-11).
    """
    d_key = "c_loss" if wgan else "d_loss"
    return {"sample_diversity": geval.sample_diversity(samples, real),
            "loss_oscillation": {k: geval.loss_oscillation([r[k] for r in steps]) for k in (d_key, "g_loss")}}


def to_unit(images: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [0, 1] for display."""
    return (np.asarray(images) + 1) / 2


def analyze(state: adversarial.GANState, config: ml_collections.ConfigDict, train_images: np.ndarray,
            held_out: np.ndarray | None, records: list[dict], workdir: pathlib.Path, z_fixed: jax.Array) -> dict:
    """The figures and numbers of a trained GAN: samples, losses, sample quality and novelty,
    and whether the logged loss tracked quality."""
    a = config.analysis
    steps = [r for r in records if r["kind"] == "train"]
    (figures.wgan_history if is_wgan(config) else figures.gan_history)(steps, workdir / a.history_png)
    saved = []
    for t in sorted(a.sample_steps):
        path = workdir / "samples" / f"target_{t}.npz"
        if path.exists():
            with np.load(path) as f:
                saved.append((int(f["step"]), f["images"]))
    if saved:
        figures.image_rows([to_unit(images) for _, images in saved], workdir / a.progress_png,
                           row_labels=[f"step {step}" for step, _ in saved])
    n = a.nearest_samples
    samples = np.asarray(generate(state.generator, z_fixed[:n]))
    index, distance = geval.nearest_l1(samples, train_images, scale=2 / 255, offset=-1.0)
    figures.image_rows([to_unit(samples), train_images[index] / 255.0], workdir / a.nearest_png,
                       row_labels=["generated", "nearest real (L1)"],
                       col_labels=[f"L1 {d:.3f}" for d in distance])
    tail = steps[-min(100, len(steps)):]
    real = reference_images(config, train_images)
    many = np.asarray(generate(state.generator, quality_latents(config)))[:len(real)]
    figures.image_grid(to_unit(many[:GRID_SAMPLES]), workdir / a.grid_png)
    quality_metrics = {}
    if quality.wanted(config):
        real_unit, z = metric_images(config, train_images)
        quality_metrics = quality.metrics_for_config(config, real_unit, to_unit(generate(state.generator, z)))
    novelty = {}
    if held_out is not None:   # the book's rule 2: as many samples as held-out images, against the same images
        z = jax.random.normal(jax.random.PRNGKey(SAMPLE_SEED + 3), (len(held_out), config.z_dim))
        novelty = {"novelty": geval.novelty(np.asarray(generate(state.generator, z)), train_images, held_out,
                                            scale=2 / 255, offset=-1.0)}
    tracking = {}
    measured = read_quality(workdir)
    if measured and a.get("quality_every_steps"):
        loss = "wasserstein_estimate" if is_wgan(config) else "g_loss"
        tracking = {"loss": loss, **geval.loss_tracks_quality([r["step"] for r in steps], [r[loss] for r in steps],
                                                              measured, a.quality_every_steps)}
        figures.loss_and_quality(tracking["series"], loss, workdir / a.quality_png)
    return {"last_100_steps": {k: float(np.mean([r[k] for r in tail])) for k in tail[-1] if k not in ("step", "kind")},
            **failure_numbers(steps, many, real, is_wgan(config)), "quality_tracking": tracking,
            **quality_metrics, **novelty,
            "nearest_l1": [float(d) for d in distance], "nearest_index": [int(i) for i in index],
            "sample_steps_saved": [step for step, _ in saved]}
