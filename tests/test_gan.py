"""Chapter 4 building blocks: the GAN's exact counts, BCE, and the adversarial step's freezing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdl_jax import losses
from gdl_jax.models.gan import Discriminator, Generator, upsample_nearest
from gdl_jax.models.summary import summarize
from gdl_jax.train import adversarial


def test_parameter_counts_match_the_book():
    d = summarize(Discriminator(), (1, 28, 28, 1))
    g = summarize(Generator(), (1, 100))
    assert (d.total, d.non_trainable) == (720_833, 0)            # Fig 4-4
    assert (g.total, g.non_trainable) == (844_161, 6_784)        # Fig 4-5
    shapes = [layer.output_shape[1:] for layer in d.layers if "conv" in layer.name]
    assert shapes == [(14, 14, 64), (7, 7, 64), (4, 4, 128), (4, 4, 128)]


def test_generator_output_and_upsampling():
    x = jnp.arange(4.0).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(upsample_nearest(x)[0, :, :, 0],
                                  [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    g = Generator()
    variables = g.init(jax.random.key(0), jnp.zeros((2, 100)))
    images = g.apply(variables, jax.random.normal(jax.random.key(1), (3, 100)))
    assert images.shape == (3, 28, 28, 1) and float(jnp.abs(images).max()) <= 1


def test_bce_against_a_hand_computation():
    logits = jnp.array([-3.0, -0.5, 0.0, 2.0, 9.0])
    labels = jnp.array([0.0, 1.0, 1.0, 0.0, 1.0])
    p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    want = -np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p))
    np.testing.assert_allclose(losses.sigmoid_bce(logits, labels), want, rtol=1e-6)
    np.testing.assert_allclose(losses.sigmoid_bce(logits, 1.0), -np.mean(np.log(p)), rtol=1e-6)
    assert float(losses.binary_accuracy(logits, labels)) == pytest.approx(2 / 5)


def _tiny_state(seed=0):
    g = Generator(initial_shape=(2, 2, 8), upsample=(2, 2), filters=(8, 1), kernels=(3, 3), strides=(1, 1))
    d = Discriminator(filters=(8, 8), kernels=(3, 3), strides=(2, 2), dropout=0.2)
    return adversarial.GANState.create(g, d, optax.rmsprop(4e-4, eps=1e-7), optax.rmsprop(8e-4, eps=1e-7),
                                       jax.random.key(seed), z_dim=4, image_shape=(8, 8, 1))


def _same(a, b) -> bool:
    """Every array leaf equal (static fields such as apply_fn are not compared)."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(bool(jnp.array_equal(x, y)) for x, y in zip(la, lb))


def test_each_update_leaves_the_other_network_unchanged():
    state = _tiny_state()
    real = jax.random.uniform(jax.random.key(5), (6, 8, 8, 1), minval=-1, maxval=1)
    after_d, metrics = jax.jit(adversarial.discriminator_update)(state, real)
    assert _same(after_d.generator, state.generator)
    assert not _same(after_d.discriminator.params, state.discriminator.params)
    assert int(after_d.discriminator.step) == 2                      # real, then fake
    assert set(metrics) == {"d_loss_real", "d_loss_fake", "d_loss", "d_acc_real", "d_acc_fake"}
    after_g, metrics = jax.jit(adversarial.generator_update, static_argnums=1)(state, 6)
    assert _same(after_g.discriminator, state.discriminator)
    assert not _same(after_g.generator.params, state.generator.params)
    assert not _same(after_g.generator.batch_stats, state.generator.batch_stats)
    assert set(metrics) == {"g_loss", "g_acc"}


def test_gan_steps_are_deterministic_and_move_samples_toward_the_data():
    """Real images are a fixed bright square on a dark ground; after a few hundred steps the
    generated images' mean pixel is much nearer the data's than at the start."""
    real = -np.ones((16, 8, 8, 1), np.float32)
    real[:, 2:6, 2:6] = 1.0
    step = jax.jit(adversarial.gan_train_step)

    def run(n, seed=0):
        state, metrics = _tiny_state(seed), None
        for _ in range(n):
            state, metrics = step(state, (jnp.asarray(real), jnp.zeros(16, jnp.int32)))
        return state, metrics

    def gap(state):
        samples = adversarial.generate(state.generator, jax.random.normal(jax.random.key(9), (64, 4)))
        return float(jnp.abs(samples.mean(0) - real.mean(0)).mean())

    start, _ = run(0)
    a, ma = run(300)
    b, mb = run(300)
    assert _same(a, b) and jax.tree.map(float, ma) == jax.tree.map(float, mb)
    assert int(a.step) == 300 and int(a.generator.step) == 300 and int(a.discriminator.step) == 600
    assert gap(a) < 0.5 * gap(start), (gap(start), gap(a))
