"""The adversarial train state and steps, written once for the GAN (and next the WGAN and WGAN-GP).

Two networks, each a `TrainState` with its own optimizer and BatchNorm statistics, in one pytree.
The discriminator is frozen in the generator update by construction: that update differentiates
the generator's params only and returns the discriminator's state untouched (and vice versa).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from gdl_jax import losses
from gdl_jax.train.state import TrainState, step_key


class GANState(struct.PyTreeNode):
    """step, the generator's and the discriminator's TrainStates, the run's root rng."""
    step: jax.Array
    generator: TrainState
    discriminator: TrainState
    rng: jax.Array
    z_dim: int = struct.field(pytree_node=False)

    @classmethod
    def create(cls, generator: nn.Module, discriminator: nn.Module, g_tx: optax.GradientTransformation,
               d_tx: optax.GradientTransformation, rng: jax.Array, z_dim: int,
               image_shape: tuple[int, ...]) -> "GANState":
        g_key, d_key, run_key = jax.random.split(rng, 3)
        return cls(step=jnp.zeros((), jnp.int32),
                   generator=TrainState.create(generator, g_tx, g_key, jnp.zeros((1, z_dim))),
                   discriminator=TrainState.create(discriminator, d_tx, d_key, jnp.zeros((1, *image_shape))),
                   rng=run_key, z_dim=z_dim)

    def step_rng(self, name: str) -> jax.Array:
        """A key for this step only: a pure function of (root rng, step, name)."""
        return step_key(self.rng, self.step, name)

    def noise(self, name: str, n: int) -> jax.Array:
        """z ~ N(0, I), (n, z_dim), drawn with this step's key `name`."""
        return jax.random.normal(self.step_rng(name), (n, self.z_dim))


def generate(g: TrainState, z: jax.Array) -> jax.Array:
    """The generator in inference mode (running BatchNorm statistics), as Keras' predict."""
    return g.apply_fn(g.variables(), z, train=False)


def _d_update(d: TrainState, images: jax.Array, label: float, key: jax.Array) -> tuple[TrainState, dict]:
    """One optimizer step of the discriminator on images that all carry `label`."""
    def loss_fn(params):
        logits, updates = d.apply_fn(d.variables(params), images, train=True, rngs={"dropout": key},
                                     mutable=["batch_stats"])
        return losses.sigmoid_bce(logits, label), (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
    d = d.apply_gradients(grads, updates.get("batch_stats", d.batch_stats))
    return d, {"loss": loss, "accuracy": losses.binary_accuracy(logits, label)}


def discriminator_update(state: GANState, real: jax.Array) -> tuple[GANState, dict]:
    """The book's discriminator step: one update on real images (label 1), then one on as many
    generated images (label 0). The generator's state is returned unchanged."""
    fake = generate(state.generator, state.noise("d_noise", real.shape[0]))
    d, m_real = _d_update(state.discriminator, real, 1.0, state.step_rng("d_dropout_real"))
    d, m_fake = _d_update(d, fake, 0.0, state.step_rng("d_dropout_fake"))
    metrics = {"d_loss_real": m_real["loss"], "d_loss_fake": m_fake["loss"],
               "d_loss": (m_real["loss"] + m_fake["loss"]) / 2,
               "d_acc_real": m_real["accuracy"], "d_acc_fake": m_fake["accuracy"]}
    return state.replace(discriminator=d), metrics


def generator_update(state: GANState, batch_size: int, index: int = 0) -> tuple[GANState, dict]:
    """One generator update through the frozen discriminator, labels 1 ("real"); only the
    generator's params are differentiated, so the discriminator's state is returned unchanged.
    `index` numbers the step's generator updates (each draws its own noise)."""
    g, d = state.generator, state.discriminator
    z = state.noise(f"g_noise_{index}", batch_size)

    def loss_fn(params):
        images, updates = g.apply_fn(g.variables(params), z, train=True, mutable=["batch_stats"],
                                     rngs={"dropout": state.step_rng(f"g_dropout_{index}")})
        logits = d.apply_fn(d.variables(), images, train=True, mutable=["batch_stats"],
                            rngs={"dropout": state.step_rng(f"g_d_dropout_{index}")})[0]
        return losses.sigmoid_bce(logits, 1.0), (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g.params)
    g = g.apply_gradients(grads, updates.get("batch_stats", g.batch_stats))
    return state.replace(generator=g), {"g_loss": loss, "g_acc": losses.binary_accuracy(logits, 1.0)}


def gan_train_step(state: GANState, batch: tuple[jax.Array, jax.Array],
                   generator_steps: int = 1) -> tuple[GANState, dict]:
    """One GAN step (book Example 4-5): the discriminator on real then fake, then the generator,
    `generator_steps` times in a row (more than 1 lets the generator run ahead of the
    discriminator: the book's recipe for mode collapse, Fig 4-12). Metrics of the last update."""
    real, _ = batch
    state, d_metrics = discriminator_update(state, real)
    for i in range(generator_steps):  # unrolled
        state, g_metrics = generator_update(state, real.shape[0], i)
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}
