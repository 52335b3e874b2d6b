"""`train_and_evaluate(config, workdir)`: the whole run of any config, by its `task`.

classifier (chapter 2) -> experiments/classifier.py; autoencoder and vae (chapter 3) ->
experiments/autoencoder.py; gan, wgan (chapter 4) -> experiments/gan.py. Each returns its results (also
written to workdir/results.json).
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable, Sequence

import ml_collections
from absl import logging

from gdl_jax.errors import ConfigError
from gdl_jax.train.state import TrainState

TASKS = ("classifier", "autoencoder", "vae", "gan", "wgan")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       hooks: Sequence[Callable[[int, TrainState], None]] = ()) -> dict:
    """Trains config.model on config.data, resuming from the workdir's latest checkpoint if any.

    hooks(step, state) run on the host after each dispatch.
    """
    task = config.get("task", "classifier")
    if task == "classifier":
        from experiments import classifier as trainer
    elif task in ("autoencoder", "vae"):
        from experiments import autoencoder as trainer
    elif task in ("gan", "wgan"):
        from experiments import gan as trainer
    else:
        raise ConfigError(f"unknown task {task!r}; expected one of {TASKS}")
    results = trainer.train_and_evaluate(config, pathlib.Path(workdir), hooks)
    logging.info("results: %s", results)
    return results
