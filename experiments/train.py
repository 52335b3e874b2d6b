"""Chapter 2: train and evaluate a CIFAR-10 classifier (MLP, small conv net, CNN).

`train_and_evaluate(config, workdir)` is the whole run: data on device, model, state, the
shared loop with checkpoints and resume, then test metrics, figures and results.json.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from gdl_jax import data as gdata
from gdl_jax import models
from gdl_jax.errors import ConfigError
from gdl_jax.models.summary import summarize
from gdl_jax.train import parallel, steps
from gdl_jax.train.checkpoint import Checkpointer
from gdl_jax.train.loop import Loop
from gdl_jax.train.metrics import JsonlWriter, read_jsonl
from gdl_jax.train.state import TrainState
from gdl_jax.train.workdir import claim
from gdl_jax.viz import figures

# The config keys that make two runs the same run (a resume must match them).
IDENTITY_KEYS = ("model", "data.name", "data.train_subset", "batch_size", "optimizer",
                 "learning_rate", "seed")
OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd, "rmsprop": optax.rmsprop}


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first bad value."""
    positive = ["batch_size", "learning_rate", "steps_per_dispatch", "log_every_steps",
                "checkpoint_every_steps", "eval_batch_size"]
    for key in positive:
        if not config[key] > 0:
            raise ConfigError(f"{key} must be positive, got {config[key]}")
    if config.num_epochs <= 0:
        raise ConfigError(f"num_epochs must be positive, got {config.num_epochs}")
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {config.optimizer!r}; expected one of {sorted(OPTIMIZERS)}")
    if config.data.train_subset < 0:
        raise ConfigError(f"data.train_subset must be >= 0 (0 = all), got {config.data.train_subset}")


def _model_kwargs(config) -> dict:
    return {k: v for k, v in config.model.to_dict().items() if k != "name"}


def evaluate(state: TrainState, data: gdata.DeviceData, num_examples: int, batch_size: int,
             mesh) -> dict[str, float]:
    """Test loss and accuracy over the first `num_examples` of `data` (padded to whole batches)."""
    metrics = _eval_chunks(state, data, jnp.int32(num_examples), batch_size, mesh)
    total = jax.device_get(metrics)
    return {"loss": float(total["loss"] / total["count"]),
            "accuracy": float(total["correct"] / total["count"])}


@functools.partial(jax.jit, static_argnums=(3, 4))
def _eval_chunks(state, data, num_examples, batch_size, mesh):
    sharding = parallel.batch_sharded(mesh)
    n_chunks = data.images.shape[0] // batch_size

    def body(i, acc):
        x = jax.lax.dynamic_slice_in_dim(data.images, i * batch_size, batch_size)
        y = jax.lax.dynamic_slice_in_dim(data.labels, i * batch_size, batch_size)
        mask = (i * batch_size + jnp.arange(batch_size)) < num_examples
        x = jax.lax.with_sharding_constraint(gdata.to_float(x), sharding)
        m = steps.classifier_eval_step(state, x, y, mask)
        return jax.tree.map(jnp.add, acc, m)

    zero = {k: jnp.zeros((), jnp.float32) for k in ("loss", "correct", "count")}
    return jax.lax.fori_loop(0, n_chunks, body, zero)


def _pad_to(data: gdata.ArrayData, multiple: int) -> gdata.ArrayData:
    pad = -len(data) % multiple
    if not pad:
        return data
    return gdata.ArrayData(np.concatenate([data.images, np.zeros((pad,) + data.images.shape[1:], np.uint8)]),
                           np.concatenate([data.labels, np.zeros(pad, np.int32)]), data.class_names)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       hooks: Sequence[Callable[[int, TrainState], None]] = ()) -> dict:
    """Trains config.model on config.data, resuming from workdir's latest checkpoint if any.

    hooks(step, state) run on the host after each dispatch. Returns the final results (also
    written to workdir/results.json).
    """
    validate(config)
    workdir = pathlib.Path(workdir)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    model = models.build(config.model.name, **_model_kwargs(config))

    train = gdata.load(config.data.name, "train", config.data.data_dir or None, config.data.source)
    test = gdata.load(config.data.name, "test", config.data.data_dir or None, config.data.source)
    if config.data.train_subset:
        train = gdata.ArrayData(train.images[:config.data.train_subset],
                                train.labels[:config.data.train_subset], train.class_names)
    steps_per_epoch = gdata.steps_per_epoch(len(train), config.batch_size)
    total_steps = steps_per_epoch * config.num_epochs
    eval_batch = -(-config.eval_batch_size // mesh.devices.size) * mesh.devices.size
    num_test = len(test)
    train_dev = gdata.to_device(train, mesh)
    test_dev = gdata.to_device(_pad_to(test, eval_batch), mesh)

    claim(workdir, config, IDENTITY_KEYS)
    summary = summarize(model, (1,) + train.images.shape[1:])
    logging.info("%s on %s: %d train / %d test examples, %d steps/epoch, %d devices\n%s",
                 config.model.name, config.data.name, len(train), num_test, steps_per_epoch,
                 mesh.devices.size, summary)
    (workdir / "summary.txt").write_text(str(summary) + "\n")

    tx = OPTIMIZERS[config.optimizer](config.learning_rate)
    root = jax.random.PRNGKey(config.seed)
    init_key, shuffle_key = jax.random.split(root)
    sample = jnp.zeros((1,) + train.images.shape[1:], jnp.float32)
    state = jax.jit(lambda k: TrainState.create(model, tx, k, sample),
                    out_shardings=parallel.replicated(mesh))(init_key)

    def on_epoch_end(state, epoch, train_means):
        return {f"test_{k}": v for k, v in evaluate(state, test_dev, num_test, eval_batch, mesh).items()}

    with Checkpointer(workdir / "checkpoints", config.checkpoint_every_steps) as checkpointer:
        restored = checkpointer.restore_latest(state)
        with JsonlWriter(workdir / "metrics.jsonl") as writer:
            history = writer.truncate_after(int(restored.step) if restored is not None else 0)
            if restored is not None:
                state = restored
                logging.info("resumed from step %d", int(state.step))
            loop = Loop(
                step_fn=steps.classifier_train_step,
                batch_fn=lambda d, perm, i: gdata.gather_batch(d, perm, i, config.batch_size, mesh),
                perm_fn=jax.jit(lambda e: gdata.epoch_permutation(shuffle_key, e, len(train))),
                steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                steps_per_dispatch=config.steps_per_dispatch, checkpointer=checkpointer,
                writer=writer, log_every_steps=config.log_every_steps, on_epoch_end=on_epoch_end,
                hooks=hooks)
            state = loop.run(state, train_dev, history)

    records = read_jsonl(workdir / "metrics.jsonl")
    last_epoch = [r for r in records if r["kind"] == "epoch"][-1]
    results = {"model": config.model.name, "params": summary.total,
               "trainable_params": summary.trainable, "steps": int(state.step),
               "epochs": last_epoch["epoch"],
               **{k: v for k, v in last_epoch.items() if k.startswith(("train_", "test_"))}}
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _figures(state, test, records, config, workdir)
    logging.info("results: %s", results)
    return results


def _figures(state, test: gdata.ArrayData, records, config, workdir: pathlib.Path) -> None:
    """Fig 2-9 / 2-19 (predictions on random test images) and the training curves."""
    figures.training_curves(records, workdir / "curves.png")
    rng = np.random.default_rng(config.seed)
    idx = rng.choice(len(test), config.num_prediction_examples, replace=False)
    probs = jax.jit(steps.classifier_predict)(state, gdata.to_float(jnp.asarray(test.images[idx])))
    names = np.array(test.class_names)
    figures.predictions_grid(test.images[idx], names[np.argmax(probs, -1)], names[test.labels[idx]],
                             workdir / "predictions.png")
