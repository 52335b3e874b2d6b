"""`train_and_evaluate(config, workdir)`: the whole run of any config, by its `task`.

One module per `config.task`: classifier (chapter 2) -> `classifier`; autoencoder and vae
(chapter 3) -> `autoencoder`; gan, wgan (chapter 4) -> `gan`. Each returns its results (also
written to workdir/results.json). `experiments.main` runs any config through here; tests call it
with tiny configs.
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable, Sequence

import ml_collections
from absl import logging

from gdl_jax.errors import ConfigError
from gdl_jax.outputs import release
from gdl_jax.train.state import TrainState

TASKS = ("classifier", "autoencoder", "vae", "gan", "wgan")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       hooks: Sequence[Callable[[int, TrainState], None]] = ()) -> dict:
    """Trains config.model on config.data, resuming from the workdir's latest checkpoint if any.

    hooks(step, state) run on the host after each dispatch.
    """
    task = config.get("task", "classifier")
    if task == "classifier":
        from gdl_jax.tasks import classifier as trainer
    elif task in ("autoencoder", "vae"):
        from gdl_jax.tasks import autoencoder as trainer
    elif task in ("gan", "wgan"):
        from gdl_jax.tasks import gan as trainer
    else:
        raise ConfigError(f"unknown task {task!r}; expected one of {TASKS}")
    held = pathlib.Path(workdir).resolve()   # now: the run may change the working directory
    try:
        results = trainer.train_and_evaluate(config, pathlib.Path(workdir), hooks)
    finally:   # the lock the run took (train.workdir.claim), held through its analysis
        release(held)
    logging.info("results: %s", results)
    return results
