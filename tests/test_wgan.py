"""Chapter 4, part 2: the Wasserstein loss and WGAN-GP's gradient penalty against independent
computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdl_jax import losses


def test_wasserstein_loss_is_minus_mean_label_times_score():
    scores = jnp.array([2.0, -1.0, 0.5, 3.0])
    labels = jnp.array([1.0, 1.0, -1.0, -1.0])
    assert float(losses.wasserstein(scores, labels)) == pytest.approx(-(2.0 - 1.0 - 0.5 - 3.0) / 4)
    assert float(losses.wasserstein(scores, -1.0)) == pytest.approx(np.mean([2.0, -1.0, 0.5, 3.0]))


def _batch(seed, n=5, shape=(4, 3, 2)):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return (jax.random.normal(k1, (n, *shape)), jax.random.normal(k2, (n, *shape)),
            jax.random.uniform(k3, (n,)))


def test_penalty_of_a_linear_critic_is_one_minus_its_weight_norm_squared():
    real, fake, alpha = _batch(0)
    w = jax.random.normal(jax.random.key(1), (24,))
    linear = lambda w: lambda x: x.reshape(x.shape[0], -1) @ w
    unit = w / jnp.linalg.norm(w)
    assert float(losses.gradient_penalty(linear(unit), real, fake, alpha)) == pytest.approx(0.0, abs=1e-10)
    want = (1 - float(np.linalg.norm(np.asarray(w)))) ** 2
    for a in (alpha, jnp.zeros(5), jnp.ones(5)):   # whatever alpha is
        assert float(losses.gradient_penalty(linear(w), real, fake, a)) == pytest.approx(want, rel=1e-5)


def test_penalty_of_half_squared_norm_critic_uses_each_images_own_alpha():
    real, fake, alpha = _batch(2)
    critic = lambda x: 0.5 * jnp.sum(x.reshape(x.shape[0], -1) ** 2, axis=1)   # grad at x_hat is x_hat
    r, f, a = (np.asarray(v, np.float64) for v in (real, fake, alpha))
    x_hat = a[:, None, None, None] * r + (1 - a[:, None, None, None]) * f
    want = np.mean((1 - np.linalg.norm(x_hat.reshape(5, -1), axis=1)) ** 2)
    assert float(losses.gradient_penalty(critic, real, fake, alpha)) == pytest.approx(want, rel=1e-5)
    # one alpha per example: a single shared alpha would give another number
    shared = float(losses.gradient_penalty(critic, real, fake, jnp.full(5, alpha[0])))
    assert shared != pytest.approx(want, rel=1e-3)


def test_penalty_rejects_wrong_shapes_and_has_finite_gradients_at_zero():
    real, fake, alpha = _batch(3)
    with pytest.raises(ValueError, match="one alpha per image"):
        losses.gradient_penalty(lambda x: x.sum((1, 2, 3)), real, fake, alpha[:2])
    # a critic whose input gradient is exactly zero: the safe norm keeps the penalty's gradient finite
    g = jax.grad(lambda s: losses.gradient_penalty(lambda x: s * jnp.zeros(x.shape[0]) + 0 * x.sum((1, 2, 3)),
                                                   real, fake, alpha))(1.0)
    assert np.isfinite(float(g))


@pytest.mark.parametrize("critic, generator, image_shape, counts", [
    # the book's WGAN on CIFAR-10 horses (notebook configuration)
    (dict(filters=(32, 64, 128, 128), kernels=(5, 5, 5, 5), strides=(2, 2, 2, 1), activation="leaky_relu",
          dropout=0.0),
     dict(initial_shape=(4, 4, 128), upsample=(2, 2, 2, 1), filters=(128, 64, 32, 3), kernels=(5, 5, 5, 5),
          strides=(1, 1, 1, 1), activation="leaky_relu", batch_norm_momentum=0.8),
     (32, 32, 3), (670_401, 884_163, 4_544)),
    # the book's WGAN-GP on 64x64 CelebA: Conv2DTranspose (stride 2) generator
    (dict(filters=(64, 128, 256, 512), kernels=(5, 5, 5, 5), strides=(2, 2, 2, 2), activation="leaky_relu",
          dropout=0.0),
     dict(initial_shape=(4, 4, 512), upsample=(1, 1, 1, 1), filters=(256, 128, 64, 3), kernels=(5, 5, 5, 5),
          strides=(2, 2, 2, 2), activation="leaky_relu", batch_norm_momentum=0.9),
     (64, 64, 3), (4_314_753, 5_168_003, 17_280)),
])
def test_wgan_networks_have_the_books_counts(critic, generator, image_shape, counts):
    from gdl_jax.models.gan import Discriminator, Generator
    from gdl_jax.models.summary import summarize

    c, g = summarize(Discriminator(**critic), (1, *image_shape)), summarize(Generator(**generator), (1, 100))
    assert (c.total, g.total, g.non_trainable) == counts
    assert c.non_trainable == 0
    assert g.layers[-1].output_shape[1:] == image_shape
