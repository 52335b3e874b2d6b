"""Chapter 2: train and evaluate a CIFAR-10 classifier (MLP, small conv net, CNN); the same
trainer makes the feature extractors of the sample-quality metrics (gdl_jax.eval.features): the
CNN on MNIST, and on CelebA faces a multi-label CNN for the 40 attributes.

Test loss and accuracy after every epoch (for attributes: the mean over the 40 of the fraction
right, beside the majority-class baseline); at the end results.json, the training curves and,
for single-label data, the predictions grid (Fig 2-9 / 2-19).
"""

from __future__ import annotations

import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gdl_jax import data as gdata
from gdl_jax import models, outputs, parallel
from gdl_jax.errors import ConfigError
from gdl_jax.models.summary import summarize
from gdl_jax.train import runner, steps
from gdl_jax.train.state import TrainState
from gdl_jax.viz import figures


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                       hooks: Sequence[Callable[[int, TrainState], None]] = ()) -> dict:
    """Trains the classifier (CIFAR-10, MNIST, or CelebA's attributes), evaluates it every epoch,
    and writes its figures."""
    runner.validate(config)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    model = models.from_config(config.model, runner.axis_name(config))
    train, test = load_data(config)
    multi_label = train.labels.ndim == 2
    if multi_label and config.model.get("num_classes", 10) != train.labels.shape[1]:
        raise ConfigError(f"model.num_classes is {config.model.get('num_classes', 10)} but the data has "
                          f"{train.labels.shape[1]} attributes")
    if not multi_label and not 1 <= config.num_prediction_examples <= len(test):
        raise ConfigError(f"num_prediction_examples must be 1 to the {len(test)} test images, got "
                          f"{config.num_prediction_examples}")
    train_step, eval_step = ((steps.attributes_train_step, steps.attributes_eval_step) if multi_label
                             else (steps.classifier_train_step, steps.classifier_eval_step))
    eval_batch = runner.eval_batch_size(config, mesh)
    test_dev = gdata.to_device(runner.pad_to(test, eval_batch), mesh)

    def evaluate(state, epoch, train_means):
        s = jax.device_get(runner.evaluate_sums(eval_step, state, test_dev, jnp.int32(len(test)), eval_batch, mesh))
        return {"test_loss": float(s["loss"] / s["count"]), "test_accuracy": float(s["correct"] / s["count"])}

    shape = train.images.shape[1:]
    summary = summarize(model, (1, *shape))
    state, records = runner.fit(config, workdir, runner.device_feeder(config, train, mesh), train_step, mesh,
                                lambda: runner.initial_state(config, model, shape, mesh), summary,
                                on_epoch_end=evaluate, hooks=hooks)
    last_epoch = [r for r in records if r["kind"] == "epoch"][-1]
    results = {"model": config.model.name, "params": summary.total,
               "trainable_params": summary.trainable, "steps": int(state.step),
               "epochs": last_epoch["epoch"],
               **{k: v for k, v in last_epoch.items() if k.startswith(("train_", "test_"))}}
    if multi_label:   # what always answering each attribute's more common training value scores
        majority = train.labels.mean(0) >= 0.5
        results["test_majority_accuracy"] = float((test.labels == majority).mean())
    outputs.write_results(workdir, results)
    figures.training_curves(records, workdir / "curves.png")
    if multi_label:
        return results
    rng = np.random.default_rng(config.seed)
    idx = rng.choice(len(test), config.num_prediction_examples, replace=False)
    probs = jax.jit(steps.classifier_predict)(state, gdata.to_float(jnp.asarray(test.images[idx])))
    names = np.array(test.class_names)
    figures.predictions_grid(test.images[idx], names[np.argmax(probs, -1)], names[test.labels[idx]],
                             workdir / "predictions.png")
    return results


def load_data(config: ml_collections.ConfigDict) -> tuple[gdata.ArrayData, gdata.ArrayData]:
    """The train and test splits in host memory. CelebA: the faces at data.image_size with their
    40 attributes as 0 / 1 labels (N, 40); data.train_subset > 0 keeps that many training faces
    (the first ones: CelebA's order carries no class)."""
    if config.data.name != "celeba":
        return runner.load_splits(config)
    d = config.data
    splits = []
    for split in ("train", "test"):
        source = runner.celeba(config, split)
        n = d.train_subset if split == "train" and d.train_subset else len(source)
        if n > len(source):
            raise ConfigError(f"data.train_subset {n} is larger than the {len(source)} training faces")
        index = np.arange(n)
        labels = (source.attributes_of(index) > 0).astype(np.int32)
        splits.append(gdata.ArrayData(source.load(index), labels, tuple(source.attribute_names)))
    return splits[0], splits[1]
