"""Chapter 2: train and evaluate a CIFAR-10 classifier (MLP, small conv net, CNN).

Test loss and accuracy after every epoch; at the end results.json, the training curves and the
predictions grid (Fig 2-9 / 2-19).
"""

from __future__ import annotations

import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gdl_jax import data as gdata
from gdl_jax import models, parallel
from gdl_jax.models.summary import summarize
from gdl_jax.train import runner, steps
from gdl_jax.train.state import TrainState
from gdl_jax.viz import figures


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                       hooks: Sequence[Callable[[int, TrainState], None]] = ()) -> dict:
    runner.validate(config)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    model = models.build(config.model.name, runner.axis_name(config),
                         **{k: v for k, v in config.model.items() if k != "name"})
    train, test = runner.load_splits(config)
    eval_batch = runner.eval_batch_size(config, mesh)
    test_dev = gdata.to_device(runner.pad_to(test, eval_batch), mesh)

    def evaluate(state, epoch, train_means):
        s = jax.device_get(runner.evaluate_sums(steps.classifier_eval_step, state, test_dev,
                                                jnp.int32(len(test)), eval_batch, mesh))
        return {"test_loss": float(s["loss"] / s["count"]), "test_accuracy": float(s["correct"] / s["count"])}

    shape = train.images.shape[1:]
    summary = summarize(model, (1, *shape))
    state, records = runner.fit(config, workdir, runner.device_feeder(config, train, mesh),
                                steps.classifier_train_step, mesh,
                                lambda: runner.initial_state(config, model, shape, mesh), summary,
                                on_epoch_end=evaluate, hooks=hooks)
    last_epoch = [r for r in records if r["kind"] == "epoch"][-1]
    results = {"model": config.model.name, "params": summary.total,
               "trainable_params": summary.trainable, "steps": int(state.step),
               "epochs": last_epoch["epoch"],
               **{k: v for k, v in last_epoch.items() if k.startswith(("train_", "test_"))}}
    runner.write_results(workdir, results)
    figures.training_curves(records, workdir / "curves.png")
    rng = np.random.default_rng(config.seed)
    idx = rng.choice(len(test), config.num_prediction_examples, replace=False)
    probs = jax.jit(steps.classifier_predict)(state, gdata.to_float(jnp.asarray(test.images[idx])))
    names = np.array(test.class_names)
    figures.predictions_grid(test.images[idx], names[np.argmax(probs, -1)], names[test.labels[idx]],
                             workdir / "predictions.png")
    return results
