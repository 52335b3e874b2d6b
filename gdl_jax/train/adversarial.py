"""The adversarial train state and steps, written once for the GAN, the WGAN and the WGAN-GP.

Two networks, each a `TrainState` with its own optimizer and BatchNorm statistics, in one pytree.
The discriminator (the WGANs' critic) is frozen in the generator update by construction: that
update differentiates the generator's params only and returns the discriminator's state
untouched (and vice versa). Every step takes `axis_name` (gdl_jax.parallel): per device, the
gradients and metrics are averaged over the devices, latent noise and the penalty's alpha are
the device's rows of the global batch's draw, dropout keys are per device.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from gdl_jax import losses, models, parallel
from gdl_jax.train import runner
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
               image_shape: tuple[int, ...], compute_dtype: str = "float32") -> "GANState":
        g_key, d_key, run_key = jax.random.split(rng, 3)
        return cls(step=jnp.zeros((), jnp.int32),
                   generator=TrainState.create(generator, g_tx, g_key, jnp.zeros((1, z_dim)), compute_dtype),
                   discriminator=TrainState.create(discriminator, d_tx, d_key, jnp.zeros((1, *image_shape)),
                                                   compute_dtype),
                   rng=run_key, z_dim=z_dim)

    def step_rng(self, name: str) -> jax.Array:
        """A key for this step only: a pure function of (root rng, step, name)."""
        return step_key(self.rng, self.step, name)

    def noise(self, name: str, n: int, axis_name: str | None = None) -> jax.Array:
        """z ~ N(0, I), (n, z_dim), drawn with this step's key `name` (per device: its rows of the global draw)."""
        return parallel.global_draw(jax.random.normal, self.step_rng(name), (n, self.z_dim), axis_name)


def critic_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The discriminator's settings: model.critic for the WGANs (task 'wgan'), model.discriminator for the GAN."""
    return config.model.critic if config.task == "wgan" else config.model.discriminator


def networks(config: ml_collections.ConfigDict, axis_name: str | None = None) -> tuple[nn.Module, nn.Module]:
    """The config's generator and discriminator (critic); axis_name for per-device training."""
    return (models.build("generator", axis_name, **config.model.generator),
            models.build("discriminator", axis_name, **critic_config(config)))


def init_state(config: ml_collections.ConfigDict, image_shape: tuple[int, ...], key: jax.Array,
               axis_name: str | None = None) -> GANState:
    """The step-0 GANState of a GAN / WGAN config: its networks (for per-device training with
    axis_name) computing in config.compute_dtype, its optimizers at g_learning_rate and
    d_learning_rate (the GAN's discriminator frozen from d_freeze_step on)."""
    generator, discriminator = networks(config, axis_name)
    d_lr = config.d_learning_rate
    if config.get("d_freeze_step"):  # the GAN's discriminator makes 2 optimizer updates a step (real, fake)
        d_lr = optax.piecewise_constant_schedule(d_lr, {2 * config.d_freeze_step: 0.0})
    return GANState.create(generator, discriminator, runner.make_optimizer(config, config.g_learning_rate),
                           runner.make_optimizer(config, d_lr), key, config.z_dim, image_shape,
                           runner.compute_dtype(config))


def generate(g: TrainState, z: jax.Array) -> jax.Array:
    """The generator in inference mode (running BatchNorm statistics), as Keras' predict."""
    return g.apply_fn(g.variables(), z, train=False)


def _d_update(d: TrainState, images: jax.Array, label: float, key: jax.Array,
              axis_name: str | None) -> tuple[TrainState, dict]:
    """One optimizer step of the discriminator on images that all carry `label`."""
    def loss_fn(params):
        logits, updates = d.apply_fn(d.variables(params), images, train=True, mutable=["batch_stats"],
                                     rngs={"dropout": parallel.device_key(key, axis_name)})
        return losses.sigmoid_bce(logits, label), (logits, updates)

    d, loss, logits = d.descend(loss_fn, axis_name)
    return d, parallel.mean({"loss": loss, "accuracy": losses.binary_accuracy(logits, label)}, axis_name)


def discriminator_update(state: GANState, real: jax.Array, axis_name: str | None = None) -> tuple[GANState, dict]:
    """The book's discriminator step: one update on real images (label 1), then one on as many
    generated images (label 0). The generator's state is returned unchanged."""
    fake = generate(state.generator, state.noise("d_noise", real.shape[0], axis_name))
    d, m_real = _d_update(state.discriminator, real, 1.0, state.step_rng("d_dropout_real"), axis_name)
    d, m_fake = _d_update(d, fake, 0.0, state.step_rng("d_dropout_fake"), axis_name)
    metrics = {"d_loss_real": m_real["loss"], "d_loss_fake": m_fake["loss"],
               "d_loss": (m_real["loss"] + m_fake["loss"]) / 2,
               "d_acc_real": m_real["accuracy"], "d_acc_fake": m_fake["accuracy"]}
    return state.replace(discriminator=d), metrics


def _scores(d: TrainState, images: jax.Array, key: jax.Array, params=None) -> jax.Array:
    """The discriminator's (critic's) training-mode outputs; its BatchNorm updates are dropped.
    `key`: the dropout key, per device where the caller runs per device."""
    return d.apply_fn(d.variables(params), images, train=True, rngs={"dropout": key}, mutable=["batch_stats"])[0]


def generator_update(state: GANState, batch_size: int, index: int = 0, objective: str = "bce",
                     axis_name: str | None = None) -> tuple[GANState, dict]:
    """One generator update through the frozen discriminator, labels 1 ("real"); only the
    generator's params are differentiated, so the discriminator's state is returned unchanged.
    `index` numbers the step's generator updates (each draws its own noise). objective: 'bce'
    (the GAN) or 'wasserstein' (the WGANs: -mean critic score). batch_size: this device's."""
    g, d = state.generator, state.discriminator
    z = state.noise(f"g_noise_{index}", batch_size, axis_name)
    key = lambda name: parallel.device_key(state.step_rng(name), axis_name)

    def loss_fn(params):
        images, updates = g.apply_fn(g.variables(params), z, train=True, mutable=["batch_stats"],
                                     rngs={"dropout": key(f"g_dropout_{index}")})
        scores = _scores(d, images, key(f"g_d_dropout_{index}"))
        loss = losses.sigmoid_bce(scores, 1.0) if objective == "bce" else losses.wasserstein(scores, 1.0)
        return loss, (scores, updates)

    g, loss, scores = g.descend(loss_fn, axis_name)
    metrics = {"g_loss": loss}
    if objective == "bce":
        metrics["g_acc"] = losses.binary_accuracy(scores, 1.0)
    return state.replace(generator=g), parallel.mean(metrics, axis_name)


def gan_train_step(state: GANState, batch: tuple[jax.Array, jax.Array], generator_steps: int = 1,
                   axis_name: str | None = None) -> tuple[GANState, dict]:
    """One GAN step (book Example 4-5): the discriminator on real then fake, then the generator,
    `generator_steps` times in a row (more than 1 lets the generator run ahead of the
    discriminator: the book's recipe for mode collapse, Fig 4-12). Metrics of the last update."""
    real, _ = batch
    state, d_metrics = discriminator_update(state, real, axis_name)
    for i in range(generator_steps):  # unrolled
        state, g_metrics = generator_update(state, real.shape[0], i, axis_name=axis_name)
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}


def _critic_step(c: TrainState, loss_fn: Callable[[Any], dict], axis_name: str | None) -> tuple[TrainState, dict]:
    """One optimizer step of the critic on the sum of the terms loss_fn(params); returns them."""
    def total(params):
        parts = loss_fn(params)
        return sum(parts.values()), (parts, {})   # no BatchNorm in a critic: nothing mutated

    c, _, parts = c.descend(total, axis_name)
    return c, parallel.mean(parts, axis_name)


def critic_update(state: GANState, real: jax.Array, index: int = 0, clip_value: float | None = None,
                  gp_weight: float = 0.0, axis_name: str | None = None) -> tuple[GANState, dict]:
    """One critic update of the WGAN (gp_weight 0) or WGAN-GP, on `real` and as many generated
    images (generator in inference mode; its state is returned unchanged).

    WGAN, as the book trains it: one optimizer step on real images (label +1), one on fakes
    (label -1), then every critic weight clipped to [-clip_value, clip_value]. WGAN-GP: one step
    on the sum of both Wasserstein terms and gp_weight x `losses.gradient_penalty` at random
    interpolates (one alpha ~ U(0, 1) per image). The critic's BatchNorm statistics, if it had
    any, are not updated (the trainers refuse a critic with BatchNorm). Metrics: the critic's
    losses, the penalty (unweighted), and the Wasserstein estimate mean critic(real) - mean
    critic(fake) = -(c_loss_real + c_loss_fake).
    """
    n = real.shape[0]
    fake = generate(state.generator, state.noise(f"c_noise_{index}", n, axis_name))
    c = state.discriminator
    key = lambda name: state.step_rng(f"c_{name}_{index}")
    dropout = lambda name: parallel.device_key(key(name), axis_name)
    if gp_weight:
        alpha = parallel.global_draw(jax.random.uniform, key("alpha"), (n,), axis_name)

        def loss_fn(params):
            critic = lambda x, name: _scores(c, x, dropout(name), params)   # a dropout draw per pass
            return {"c_loss_real": losses.wasserstein(critic(real, "dropout_real"), 1.0),
                    "c_loss_fake": losses.wasserstein(critic(fake, "dropout_fake"), -1.0),
                    "gradient_penalty": gp_weight * losses.gradient_penalty(
                        lambda x: critic(x, "dropout_gp"), real, fake, alpha)}
        c, parts = _critic_step(c, loss_fn, axis_name)
        parts["gradient_penalty"] = parts["gradient_penalty"] / gp_weight
    else:
        c, real_part = _critic_step(c, lambda p: {"c_loss_real": losses.wasserstein(
            _scores(c, real, dropout("dropout_real"), p), 1.0)}, axis_name)
        c, fake_part = _critic_step(c, lambda p: {"c_loss_fake": losses.wasserstein(
            _scores(c, fake, dropout("dropout_fake"), p), -1.0)}, axis_name)
        parts = {**real_part, **fake_part}
    if clip_value is not None:
        c = c.replace(params=jax.tree.map(lambda w: jnp.clip(w, -clip_value, clip_value), c.params))
    metrics = {**parts, "c_loss": parts["c_loss_real"] + parts["c_loss_fake"],
               "wasserstein_estimate": -(parts["c_loss_real"] + parts["c_loss_fake"])}
    return state.replace(discriminator=c), metrics


def wgan_train_step(state: GANState, batch: tuple[jax.Array, jax.Array], n_critic: int = 5,
                    clip_value: float | None = None, gp_weight: float = 0.0,
                    axis_name: str | None = None) -> tuple[GANState, dict]:
    """One WGAN / WGAN-GP step: n_critic critic updates, each on its own n-th of the batch
    (the feeder hands n_critic x batch_size real images per step), unrolled in the jit (a rolled
    lax.scan measured ~30x slower on XLA:CPU), then one generator update. Metrics: the critic's
    averaged over its updates, the generator's."""
    real, _ = batch
    if real.shape[0] % n_critic:
        raise ValueError(f"a WGAN step needs n_critic x batch_size images, got {real.shape[0]} for n_critic {n_critic}")
    # update i takes images i, i + n_critic, ...: with the batch sharded over devices on its first
    # axis, every update's slice is then spread evenly over them, with no resharding
    chunks = real.reshape(real.shape[0] // n_critic, n_critic, *real.shape[1:])
    per_update = []
    for i in range(n_critic):  # unrolled
        state, m = critic_update(state, chunks[:, i], i, clip_value, gp_weight, axis_name)
        per_update.append(m)
    c_metrics = jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *per_update)
    state, g_metrics = generator_update(state, chunks.shape[0], objective="wasserstein", axis_name=axis_name)
    return state.replace(step=state.step + 1), {**c_metrics, **g_metrics}
