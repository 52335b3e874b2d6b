"""Pure step functions: (state, batch) -> (state, metrics). The loop jit-compiles them.

Each train step takes `axis_name`: None when it runs as global code (the 'sharded' backend),
the device axis when it runs per device (the 'pmap' backend, gdl_jax.parallel), where its
gradients and metrics are averaged over the devices and its dropout key is made per device.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from gdl_jax import losses, parallel
from gdl_jax.train.state import TrainState


def _supervised_step(state: TrainState, batch: tuple[jax.Array, jax.Array], loss: Callable, metric: Callable,
                     axis_name: str | None) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on loss(logits, labels), BatchNorm statistics and dropout in train
    mode; metrics: the loss and metric(logits, labels), averaged over devices."""
    images, labels = batch

    def loss_fn(params):
        logits, updates = state.apply_fn(
            state.variables(params), images, train=True,
            rngs={"dropout": parallel.device_key(state.step_rng("dropout"), axis_name)}, mutable=["batch_stats"])
        return loss(logits, labels), (logits, updates)

    state, value, logits = state.descend(loss_fn, axis_name)
    return state, parallel.mean({"loss": value, "accuracy": metric(logits, labels)}, axis_name)


def classifier_train_step(state: TrainState, batch: tuple[jax.Array, jax.Array],
                          axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
    """One Adam/SGD step on softmax cross-entropy; BatchNorm statistics and dropout in train mode."""
    return _supervised_step(state, batch, losses.softmax_cross_entropy, losses.accuracy, axis_name)


def classifier_eval_step(state: TrainState, images: jax.Array, labels: jax.Array,
                         mask: jax.Array) -> dict[str, jax.Array]:
    """Sums (not means) of loss, correct predictions and count over the unmasked examples."""
    logits = state.apply_fn(state.variables(),
                            images, train=False)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = jnp.argmax(logits, -1) == labels
    return {"loss": jnp.sum(loss * mask), "correct": jnp.sum(correct * mask), "count": jnp.sum(mask)}


def classifier_predict(state: TrainState, images: jax.Array) -> jax.Array:
    """Class probabilities in inference mode."""
    logits = state.apply_fn(state.variables(),
                            images, train=False)
    return jax.nn.softmax(logits)


def attributes_train_step(state: TrainState, batch: tuple[jax.Array, jax.Array],
                          axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
    """One step on multi-label sigmoid cross-entropy (labels (N, A) in {0, 1}, e.g. CelebA's 40
    attributes), averaged over examples and attributes; BatchNorm and dropout in train mode."""
    return _supervised_step(state, batch, losses.sigmoid_bce, losses.binary_accuracy, axis_name)


def attributes_eval_step(state: TrainState, images: jax.Array, labels: jax.Array,
                         mask: jax.Array) -> dict[str, jax.Array]:
    """Sums over the unmasked examples of the per-example mean (over attributes) sigmoid
    cross-entropy and fraction of attributes right, and their count."""
    logits = state.apply_fn(state.variables(), images, train=False)
    loss = optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)).mean(-1)
    correct = ((logits > 0) == (labels > 0)).mean(-1)
    return {"loss": jnp.sum(loss * mask), "correct": jnp.sum(correct * mask), "count": jnp.sum(mask)}


def autoencoder_train_step(state: TrainState, batch: tuple[jax.Array, jax.Array],
                           axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
    """One step on the mean per-image squared error of the reconstruction (book 3.1)."""
    images, _ = batch

    def loss_fn(params):
        x_hat, updates = state.apply_fn(state.variables(params), images, train=True, mutable=["batch_stats"],
                                        rngs={"dropout": parallel.device_key(state.step_rng("dropout"), axis_name)})
        return losses.mse_per_image(images, x_hat).mean(), (None, updates)

    state, loss, _ = state.descend(loss_fn, axis_name)
    return state, parallel.mean({"loss": loss}, axis_name)


def vae_train_step(state: TrainState, batch: tuple[jax.Array, jax.Array], r_loss_factor: float,
                   axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
    """One step on r_loss_factor * mse + KL, z sampled with this step's 'latent' key (book 3.3;
    per device, the model draws the global batch's noise and takes its rows)."""
    images, _ = batch

    def loss_fn(params):
        (x_hat, mu, log_var), updates = state.apply_fn(
            state.variables(params), images, train=True, mutable=["batch_stats"],
            rngs={"dropout": parallel.device_key(state.step_rng("dropout"), axis_name),
                  "latent": state.step_rng("latent")})
        terms = losses.vae_loss(images, x_hat, mu, log_var, r_loss_factor)
        return terms["loss"], (terms, updates)

    state, _, terms = state.descend(loss_fn, axis_name)
    return state, parallel.mean(terms, axis_name)


def autoencoder_eval_step(state: TrainState, images: jax.Array, labels: jax.Array,
                          mask: jax.Array) -> dict[str, jax.Array]:
    """Sums over unmasked examples of the reconstruction's mean squared error."""
    del labels
    x_hat = state.apply_fn(state.variables(), images, train=False)
    return {"mse": jnp.sum(losses.mse_per_image(images, x_hat) * mask), "count": jnp.sum(mask)}


def vae_eval_step(state: TrainState, images: jax.Array, labels: jax.Array, mask: jax.Array, r_loss_factor: float,
                  key: jax.Array) -> dict[str, jax.Array]:
    """Sums over unmasked examples of the loss terms with z sampled from q(z|x) (a fixed key)."""
    del labels
    x_hat, mu, log_var = state.apply_fn(state.variables(), images, train=False,
                                        rngs={"latent": key})
    mse = losses.mse_per_image(images, x_hat)
    kl = losses.kl_divergence(mu, log_var)
    return {"mse": jnp.sum(mse * mask), "kl": jnp.sum(kl * mask),
            "loss": jnp.sum((r_loss_factor * mse + kl) * mask), "count": jnp.sum(mask)}
