"""Pure step functions: (state, batch) -> (state, metrics). The loop jit-compiles them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from gdl_jax import losses
from gdl_jax.train.state import TrainState


def classifier_train_step(state: TrainState, batch: tuple[jax.Array, jax.Array]):
    """One Adam/SGD step on softmax cross-entropy; BatchNorm statistics and dropout in train mode."""
    images, labels = batch

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, images, train=True,
            rngs={"dropout": state.step_rng("dropout")}, mutable=["batch_stats"])
        return losses.softmax_cross_entropy(logits, labels), (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads, updates.get("batch_stats", state.batch_stats))
    return state, {"loss": loss, "accuracy": losses.accuracy(logits, labels)}


def classifier_eval_step(state: TrainState, images: jax.Array, labels: jax.Array,
                         mask: jax.Array) -> dict[str, jax.Array]:
    """Sums (not means) of loss, correct predictions and count over the unmasked examples."""
    logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                            images, train=False)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = jnp.argmax(logits, -1) == labels
    return {"loss": jnp.sum(loss * mask), "correct": jnp.sum(correct * mask), "count": jnp.sum(mask)}


def classifier_predict(state: TrainState, images: jax.Array) -> jax.Array:
    """Class probabilities in inference mode."""
    logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                            images, train=False)
    return jax.nn.softmax(logits)
