"""Pure loss functions (means over the batch unless named otherwise)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Categorical cross-entropy of integer labels under softmax(logits), as Keras reports it."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of argmax(logits) equal to the integer labels."""
    return (jnp.argmax(logits, -1) == labels).mean()


def mse_per_image(x: jax.Array, x_hat: jax.Array) -> jax.Array:
    """Mean squared error over each image's pixels and channels (the book's r_loss): shape (N,)."""
    return jnp.mean(jnp.square(x - x_hat), axis=tuple(range(1, x.ndim)))


def kl_divergence(mu: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(mu, exp(log_var)) || N(0, I)) per example, summed over latent dims: shape (N,)."""
    return -0.5 * jnp.sum(1 + log_var - jnp.square(mu) - jnp.exp(log_var), axis=-1)


def vae_loss(x, x_hat, mu, log_var, r_loss_factor: float) -> dict[str, jax.Array]:
    """The book's VAE loss, batch means: r_loss_factor * mse + KL, with both terms reported."""
    reconstruction = r_loss_factor * mse_per_image(x, x_hat).mean()
    kl = kl_divergence(mu, log_var).mean()
    return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}


def sigmoid_bce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Binary cross-entropy of sigmoid(logits) against labels in {0, 1}, batch mean (Keras'
    'binary_crossentropy' on a sigmoid output, in the stable log-sum-exp form)."""
    return optax.sigmoid_binary_cross_entropy(logits, jnp.broadcast_to(labels, logits.shape)).mean()


def binary_accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of sigmoid(logits) on the right side of 0.5."""
    return ((logits > 0) == (jnp.broadcast_to(labels, logits.shape) > 0.5)).mean()


def wasserstein(scores: jax.Array, labels: jax.Array) -> jax.Array:
    """The book's Wasserstein loss -mean(y_true * y_pred): labels +1 (real) / -1 (fake), scores
    the critic's unbounded outputs (no sigmoid)."""
    return -jnp.mean(jnp.broadcast_to(labels, scores.shape) * scores)


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     alpha: jax.Array) -> jax.Array:
    """WGAN-GP's penalty: mean over the batch of (1 - ||grad_x critic(x_hat)||_2)^2 at
    x_hat = alpha * real + (1 - alpha) * fake, one alpha per image (shape (N,)).

    `critic` maps a batch (N, ...) to one score per image (N,). The per-image gradients come from
    one `jax.grad` of the summed scores (the sum trick): exact because a critic without BatchNorm
    scores each image on its own, and one batched backward pass instead of N (vmap). The norm is
    optax.safe_norm, whose gradient stays finite where a gradient is exactly zero.
    """
    if alpha.shape != real.shape[:1] or real.shape != fake.shape:
        raise ValueError(f"gradient_penalty needs real and fake of one shape and one alpha per image: "
                         f"real {real.shape}, fake {fake.shape}, alpha {alpha.shape}")
    a = alpha.reshape((-1,) + (1,) * (real.ndim - 1))
    x_hat = a * real + (1 - a) * fake
    grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
    norms = optax.safe_norm(grads.reshape(grads.shape[0], -1), 0.0, axis=1)
    return jnp.mean(jnp.square(1 - norms))
