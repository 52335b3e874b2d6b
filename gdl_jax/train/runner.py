"""The shared path every trainer takes: config -> data (a feeder) -> state -> loop -> records.

A trainer (gdl_jax/tasks/classifier.py, gdl_jax/tasks/autoencoder.py, ...) supplies the model, the
step function and its end-of-epoch evaluation; `fit` does the rest: workdir guard, summary,
optimizer, initial state, checkpoints and resume, the metrics log, the loop.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from gdl_jax import data as gdata
from gdl_jax import parallel
from gdl_jax.data.celeba import open_celeba
from gdl_jax.errors import ConfigError
from gdl_jax.models.summary import Summary
from gdl_jax.train.checkpoint import Checkpointer, restore_trained
from gdl_jax.train.loop import Loop
from gdl_jax.train.metrics import JsonlWriter
from gdl_jax.train.state import TrainState, check_compute_dtype
from gdl_jax.train.workdir import claim

FORMS_RECORD = "conv_mode.json"   # the 'auto' convolution mode a run chose (Loop.forms_record)
OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd, "rmsprop": optax.rmsprop}
# The config keys that make two runs the same run (a resume must match them; identity_keys).
IDENTITY_KEYS = ("task", "model", "data.name", "data.source", "data.train_subset", "data.image_size",
                 "data.crop", "data.test_size", "batch_size", "optimizer", "optimizer_kwargs", "learning_rate",
                 "d_learning_rate", "g_learning_rate", "generator_steps", "d_freeze_step", "n_critic",
                 "clip_value", "gp_weight", "r_loss_factor", "z_dim", "compute_dtype", "parallel", "seed")


def identity_keys(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """IDENTITY_KEYS, and for a data set without a test split a GAN's analysis.novelty_held_out
    (the drawings it holds out of training: load_splits)."""
    held_out = () if gdata.has_test_split(config.data.name) else ("analysis.novelty_held_out",)
    return IDENTITY_KEYS + held_out


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first bad value among the keys the classifier and autoencoder
    trainers share (the GAN tasks check theirs in gdl_jax.tasks.gan.validate)."""
    check_common(config, ("batch_size", "learning_rate", "steps_per_dispatch", "log_every_steps",
                          "checkpoint_every_steps", "eval_batch_size", "num_epochs"), config.learning_rate)
    if config.get("num_steps", 0) < 0:
        raise ConfigError(f"num_steps must be >= 0 (0 = num_epochs epochs), got {config.num_steps}")


def check_common(config: ml_collections.ConfigDict, positive: Sequence[str], learning_rate: float) -> None:
    """What every trainer checks: the `positive` keys, the seed, the optimizer (with
    `learning_rate`), the parallel backend, the compute dtype and data.train_subset."""
    for key in positive:
        if not config[key] > 0:
            raise ConfigError(f"{key} must be positive, got {config[key]}")
    check_seed(config)
    check_optimizer(config, learning_rate)
    axis_name(config)
    compute_dtype(config)
    if config.data.train_subset < 0:
        raise ConfigError(f"data.train_subset must be >= 0 (0 = all), got {config.data.train_subset}")


def check_seed(config: ml_collections.ConfigDict) -> None:
    """ConfigError unless config.seed is a non-negative integer (numpy's generators reject others)."""
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {config.seed!r}")


def axis_name(config: ml_collections.ConfigDict) -> str | None:
    """The device axis name of config.parallel's backend for models and steps (None: 'sharded')."""
    return parallel.axis_name(config.get("parallel", "sharded"))


def compute_dtype(config: ml_collections.ConfigDict) -> str:
    """config.compute_dtype ('float32' or 'bfloat16': the models' forward and backward passes;
    params, optimizer state and losses stay float32; gdl_jax.train.state.mixed_precision)."""
    return check_compute_dtype(config.get("compute_dtype", "float32"))


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
    """The (H, W, C) of the config's data set as the model sees it."""
    base = config.data.name.partition("/")[0]
    if base == "celeba":
        return (config.data.image_size, config.data.image_size, 3)
    shapes = {"mnist": (28, 28, 1), "quickdraw": (28, 28, 1), "cifar10": (32, 32, 3)}
    if base not in shapes:
        raise ConfigError(f"unknown data set {config.data.name!r}")
    return shapes[base]


def load_splits(config: ml_collections.ConfigDict, splits: Sequence[str] = ("train", "test"),
                held_out: int = 0) -> tuple[gdata.ArrayData, gdata.ArrayData | None]:
    """The train split and the test split (None unless asked for), on the host.

    A data set without a test split (Quick Draw) gets one when `held_out` > 0: that many training
    examples, drawn at random (seeded by config.seed), leave training to be the test split.
    data.train_subset > 0 then keeps that many training examples drawn at random (seeded by
    config.seed), not the first ones: local copies can be ordered by class.
    """
    args = (config.data.data_dir or None, config.data.source)
    train = gdata.load(config.data.name, "train", *args)
    test, carved = None, ""
    if "test" in splits and held_out and not gdata.has_test_split(config.data.name):
        if held_out >= len(train):
            raise ConfigError(f"{config.data.name} has no test split, and holding out {held_out} of its "
                              f"{len(train)} training examples leaves none to train on")
        out = np.zeros(len(train), bool)
        out[np.random.default_rng([config.seed, 1]).choice(len(train), held_out, replace=False)] = True
        test = gdata.ArrayData(train.images[out], train.labels[out], train.class_names)
        train = gdata.ArrayData(train.images[~out], train.labels[~out], train.class_names)
        carved = f" left after {held_out} held out as the test split"
    elif "test" in splits:
        test = gdata.load(config.data.name, "test", *args)
    if config.data.train_subset:
        n = config.data.train_subset
        if n > len(train):
            raise ConfigError(f"data.train_subset {n} is larger than the {len(train)} training examples{carved}")
        keep = np.sort(np.random.default_rng(config.seed).choice(len(train), n, replace=False))
        train = gdata.ArrayData(train.images[keep], train.labels[keep], train.class_names)
    return train, test


def pad_to(data: gdata.ArrayData, multiple: int) -> gdata.ArrayData:
    """Zero examples appended up to a multiple of `multiple` (evaluation masks them out)."""
    pad = -len(data) % multiple
    if not pad:
        return data
    return gdata.ArrayData(np.concatenate([data.images, np.zeros((pad,) + data.images.shape[1:], np.uint8)]),
                           np.concatenate([data.labels, np.zeros((pad,) + data.labels.shape[1:], data.labels.dtype)]),
                           data.class_names)


def eval_batch_size(config: ml_collections.ConfigDict, mesh) -> int:
    """config.eval_batch_size rounded up to a multiple of the device count."""
    n = mesh.devices.size
    return -(-config.eval_batch_size // n) * n


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def evaluate_sums(eval_fn: Callable, state, data: gdata.DeviceData, num_examples: jax.Array,
                  batch_size: int, mesh, value_range: tuple[float, float] = (0.0, 1.0)) -> dict:
    """Sums of eval_fn(state, images, labels, mask) over `data` in batches, on device.

    `data` is padded to whole batches; mask marks the first `num_examples` as real.
    """
    sharding = parallel.batch_sharded(mesh)

    def chunk(i):
        x = jax.lax.dynamic_slice_in_dim(data.images, i * batch_size, batch_size)
        y = jax.lax.dynamic_slice_in_dim(data.labels, i * batch_size, batch_size)
        mask = ((i * batch_size + jnp.arange(batch_size)) < num_examples).astype(jnp.float32)
        x = jax.lax.with_sharding_constraint(gdata.to_float(x, value_range), sharding)
        return eval_fn(state, x, y, mask)

    zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(chunk, 0))
    body = lambda i, acc: jax.tree.map(jnp.add, acc, chunk(i))
    return jax.lax.fori_loop(0, data.images.shape[0] // batch_size, body, zero)


def make_optimizer(config: ml_collections.ConfigDict, learning_rate: float) -> optax.GradientTransformation:
    """config.optimizer (a name in OPTIMIZERS) at `learning_rate` with config.optimizer_kwargs
    (e.g. {'b1': 0.5} for Adam; replace them whole with --config.optimizer_kwargs="{...}")."""
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {config.optimizer!r}; expected one of {sorted(OPTIMIZERS)}")
    kwargs = dict(config.get("optimizer_kwargs") or {})
    try:
        return OPTIMIZERS[config.optimizer](learning_rate, **kwargs)
    except TypeError as e:
        raise ConfigError(f"bad optimizer_kwargs {kwargs} for {config.optimizer!r}: {e}") from None


def check_optimizer(config: ml_collections.ConfigDict, learning_rate: float) -> None:
    """ConfigError for an optimizer, or optimizer_kwargs, that cannot build or cannot update:
    optax reads most values only in its first update ({'b1': 'x'} builds), which would fail
    inside the first compiled step. The update is traced on a one-value parameter, not run."""
    tx = make_optimizer(config, learning_rate)
    params = jnp.zeros((1,), jnp.float32)
    try:
        jax.eval_shape(lambda p: tx.update(p, tx.init(p), p), params)
    except (TypeError, ValueError) as e:
        kwargs = dict(config.get("optimizer_kwargs") or {})
        raise ConfigError(f"bad optimizer_kwargs {kwargs} for {config.optimizer!r}: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def initial_state(config: ml_collections.ConfigDict, model: nn.Module, image_shape: tuple,
                  mesh) -> TrainState:
    """The run's step-0 state, replicated over the mesh (a pure function of config.seed)."""
    tx = make_optimizer(config, config.learning_rate)
    sample = jnp.zeros((1, *image_shape), jnp.float32)
    return jax.jit(lambda k: TrainState.create(model, tx, k, sample, compute_dtype(config)),
                   out_shardings=parallel.replicated(mesh))(init_key(config))


def restore(config: ml_collections.ConfigDict, workdir: pathlib.Path, model: nn.Module,
            image_shape: tuple, mesh) -> TrainState:
    """The latest checkpoint of the run in `workdir`, for analysis without training (nothing in
    the workdir is created or changed)."""
    return restore_trained(workdir / "checkpoints", initial_state(config, model, image_shape, mesh))


def init_key(config: ml_collections.ConfigDict) -> jax.Array:
    """The key of a run's initial state (its parameters and its step keys' root)."""
    return jax.random.split(jax.random.PRNGKey(config.seed))[0]


def shuffle_key(config: ml_collections.ConfigDict) -> jax.Array:
    """The key of every epoch's shuffle order (independent of the init key)."""
    return jax.random.split(jax.random.PRNGKey(config.seed))[1]


def device_feeder(config: ml_collections.ConfigDict, train: gdata.ArrayData, mesh,
                  value_range: tuple[float, float] = (0.0, 1.0), batch_size: int | None = None) -> gdata.DeviceFeeder:
    """`train` held whole on device, batches of `batch_size` (default config.batch_size) gathered there."""
    batch_size = batch_size or config.batch_size
    gdata.steps_per_epoch(len(train), batch_size)  # a clear error before the upload
    return gdata.DeviceFeeder(gdata.to_device(train, mesh), shuffle_key(config), batch_size, mesh, value_range)


def celeba(config: ml_collections.ConfigDict, split: str) -> gdata.StreamSource:
    """CelebA's `split` as the config's data section asks (data dir or tfds, size, crop, test size)."""
    d = config.data
    return open_celeba(split, d.data_dir or None, d.source, d.image_size, d.crop, d.test_size)


def stream_feeder(config: ml_collections.ConfigDict, source: gdata.StreamSource, mesh,
                  value_range: tuple[float, float] = (0.0, 1.0), batch_size: int | None = None) -> gdata.StreamFeeder:
    """`source` decoded on the host as the config's data section asks (workers, prefetch,
    processes), batches of `batch_size` (default config.batch_size) put on device."""
    d = config.data
    return gdata.StreamFeeder(source, shuffle_key(config), batch_size or config.batch_size, mesh, value_range,
                              workers=d.stream_workers, prefetch=d.prefetch, processes=d.stream_processes)


def fit(config: ml_collections.ConfigDict, workdir: pathlib.Path, feeder: gdata.Feeder, step_fn: Callable,
        mesh, init_fn: Callable[[], Any], summary: Summary | str,
        on_epoch_end: Callable[[Any, int, dict], dict] | None = None,
        hooks: Sequence[Callable[[int, Any], None]] = ()) -> tuple[Any, list[dict]]:
    """Trains with `step_fn` on the feeder's batches from `init_fn()`'s state (TrainState, GANState),
    resuming from the workdir's latest checkpoint.

    Runs config.num_steps steps when the config sets them, else config.num_epochs epochs, with
    step_fn(state, batch, axis_name=None) run by config.parallel's backend (gdl_jax.parallel).
    The workdir's lock taken here (`workdir.claim`) outlives fit: the caller releases it
    (`outputs.release`) once it has written what follows training.
    Returns the final state and every metrics record of the run. The feeder is closed on every
    exit path.
    """
    writes_files = parallel.is_writer()
    try:
        refused = None
        if writes_files:
            try:
                claim(workdir, config, identity_keys(config))
            except Exception as e:   # noqa: BLE001 - every process must stop, whatever stopped process 0
                refused = e
        parallel.raise_on_every_process(refused)
        logging.info("%s on %s: %d examples, %d steps/epoch, %d devices, %s\n%s", config.model.name,
                     config.data.name, feeder.num_examples, feeder.steps_per_epoch, mesh.devices.size,
                     type(feeder).__name__, summary)
        if writes_files:
            (workdir / "summary.txt").write_text(str(summary) + "\n")
        state = init_fn()
        total_steps = config.get("num_steps") or feeder.steps_per_epoch * config.num_epochs
        with Checkpointer(workdir / "checkpoints", config.checkpoint_every_steps) as checkpointer:
            restored = checkpointer.restore_latest(state)
            with JsonlWriter(workdir / "metrics.jsonl", write_file=writes_files,
                             tensorboard_dir=workdir / "tensorboard") as log:
                history = log.truncate_after(int(restored.step) if restored is not None else 0)
                if restored is not None:
                    state = restored
                    logging.info("resumed from step %d", int(state.step))
                loop = Loop(step_fn=parallel.data_parallel(step_fn, config.get("parallel", "sharded"), mesh),
                            feeder=feeder,
                            total_steps=total_steps,
                            steps_per_dispatch=config.steps_per_dispatch, checkpointer=checkpointer,
                            writer=log, log_every_steps=config.log_every_steps,
                            on_epoch_end=on_epoch_end, hooks=hooks,
                            forms_record=workdir / FORMS_RECORD if writes_files else None)
                state = loop.run(state, history)
                records = log.records
    finally:
        feeder.close()
    return state, records
