"""Chapter 3 building blocks: exact parameter counts, ConvTranspose == nn.ConvTranspose, KL, sampling;
model configs that cannot work are config errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdl_jax import losses, models, tasks
from gdl_jax.errors import ConfigError
from gdl_jax.models.autoencoder import VAE, Autoencoder, ConvTranspose, Decoder, Encoder, reparameterize
from gdl_jax.models.summary import summarize

FACES = dict(filters=(32, 64, 64, 64), kernels=(3, 3, 3, 3), strides=(2, 2, 2, 2), use_batch_norm=True,
             dropout=0.25)


def test_parameter_counts_match_the_book():
    assert summarize(Encoder(), (1, 28, 28, 1)).total == 98_946          # Fig 3-3
    assert summarize(Decoder(), (1, 2)).total == 102_017                 # Fig 3-6
    enc = summarize(Encoder(**FACES, z_dim=200, variational=True), (1, 128, 128, 3))
    dec = summarize(Decoder((8, 8, 64), filters=(64, 64, 32, 3), kernels=(3,) * 4, strides=(2,) * 4,
                            use_batch_norm=True, dropout=0.25), (1, 200))
    assert (enc.total, enc.non_trainable) == (1_732_944, 448)            # Fig 3-16
    assert (dec.total, dec.non_trainable) == (917_123, 320)              # Fig 3-17


@pytest.mark.parametrize("size, kernel, stride, cin, cout", [
    (7, 3, 1, 64, 64), (7, 3, 2, 64, 64), (14, 3, 2, 64, 32), (8, 3, 2, 32, 3), (7, 4, 2, 5, 6), (7, 5, 2, 4, 4),
])
def test_subpixel_conv_transpose_equals_flax(size, kernel, stride, cin, cout):
    x = jax.random.normal(jax.random.key(0), (2, size, size, cin))
    ours = ConvTranspose(cout, (kernel, kernel), (stride, stride))
    params = ours.init(jax.random.key(1), x)
    flax_layer = nn.ConvTranspose(cout, (kernel, kernel), (stride, stride), padding="SAME", transpose_kernel=True)
    assert jax.tree.map(jnp.shape, flax_layer.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
    want = flax_layer.apply(params, x)
    got = ours.apply(params, x)
    assert got.shape == (2, size * stride, size * stride, cout)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    plain = ConvTranspose(cout, (kernel, kernel), (stride, stride), subpixel=False).apply(params, x)
    np.testing.assert_allclose(plain, want, rtol=1e-4, atol=1e-4)
    g_ours = jax.grad(lambda p: jnp.sum(jnp.sin(ours.apply(p, x))))(params)
    g_flax = jax.grad(lambda p: jnp.sum(jnp.sin(flax_layer.apply(p, x))))(params)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_flax)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_autoencoder_and_vae_shapes():
    x = jax.random.uniform(jax.random.key(0), (3, 28, 28, 1))
    ae = Autoencoder(Encoder(), Decoder())
    out = ae.apply(ae.init(jax.random.key(1), x), x)
    assert out.shape == x.shape
    vae = VAE(Encoder(variational=True), Decoder())
    variables = vae.init({"params": jax.random.key(1), "latent": jax.random.key(2)}, x)
    x_hat, mu, log_var = vae.apply(variables, x, rngs={"latent": jax.random.key(3)})
    assert x_hat.shape == x.shape and mu.shape == log_var.shape == (3, 2)


def test_kl_closed_form_on_known_inputs():
    mu = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    log_var = jnp.array([[0.0, 0.0], [0.0, 0.0], [jnp.log(2.0), 0.0]])
    # KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1 - log s^2) / 2 per dimension
    np.testing.assert_allclose(losses.kl_divergence(mu, log_var), [0.0, 0.5, (2 - 1 - np.log(2)) / 2], atol=1e-6)
    x, x_hat = jnp.ones((3, 2, 2, 1)), jnp.zeros((3, 2, 2, 1))
    terms = losses.vae_loss(x, x_hat, mu, log_var, r_loss_factor=1000.0)
    kl = np.mean([0.0, 0.5, (1 - np.log(2)) / 2])   # the batch mean of the three above
    np.testing.assert_allclose(terms["reconstruction"], 1000.0)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-6)
    np.testing.assert_allclose(terms["loss"], 1000.0 + kl, rtol=1e-6)


def test_reparameterized_samples_have_the_right_moments():
    mu, log_var = jnp.array([1.5, -2.0]), jnp.array([0.0, jnp.log(0.25)])
    z = jax.vmap(lambda k: reparameterize(k, mu, log_var))(jax.random.split(jax.random.key(0), 50_000))
    np.testing.assert_allclose(z.mean(0), mu, atol=0.02)
    np.testing.assert_allclose(z.var(0), jnp.exp(log_var), rtol=0.03)
    # one sample against mu + sigma * eps with the key's own normal draw, by hand
    eps = np.asarray(jax.random.normal(jax.random.key(7), (2,)), np.float64)
    np.testing.assert_allclose(reparameterize(jax.random.key(7), mu, log_var),
                               np.array([1.5, -2.0]) + np.array([1.0, 0.5]) * eps, rtol=1e-6)


def test_layer_lists_of_different_lengths_and_unknown_activations_are_config_errors():
    with pytest.raises(ConfigError, match="'vae.encoder': one value per layer .* filters 4, kernels 4, strides 2"):
        models.build("vae", encoder={"strides": [1, 2]})
    with pytest.raises(ConfigError, match="'discriminator': one value per layer .* kernels 2"):
        models.build("discriminator", filters=[8, 8, 8], kernels=[3, 3], strides=[2, 2, 2])
    with pytest.raises(ConfigError, match="unknown activation 'elu'"):
        models.build("generator", activation="elu")


def test_a_decoder_that_does_not_make_the_data_shape_fails_before_training(tmp_path):
    from experiments.configs import ae_mnist

    config = ae_mnist.get_config()
    config.model.decoder.strides = (1, 2, 2, 2)   # 56x56 images for 28x28 digits
    with pytest.raises(ConfigError, match=r"model.decoder makes \(56, 56, 1\) images but the data is \(28, 28, 1\)"):
        tasks.train_and_evaluate(config, tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


def test_a_per_layer_field_that_is_not_a_list_is_a_config_error():
    with pytest.raises(ConfigError, match="'discriminator': filters must be a list, one value per layer; got 64"):
        models.build("discriminator", filters=64)


@pytest.mark.parametrize("name, fields, message", [
    ("autoencoder", {"encoder": {"z_dim": 0}}, "'autoencoder.encoder': z_dim must be a positive integer; got 0"),
    ("vae", {"encoder": {"filters": (32, -64, 64, 64)}},
     r"'vae.encoder': every value of filters .* \(32, -64, 64, 64\)"),
    ("autoencoder", {"decoder": {"strides": (1, 0, 2, 1)}}, "'autoencoder.decoder': every value of strides"),
    ("generator", {"initial_shape": (7, 7, 0)}, "'generator': every value of initial_shape"),
    ("mlp", {"hidden": (200, 1.5)}, "'mlp': every value of hidden"),
    ("cnn", {"dropout": 1.0}, r"'cnn': dropout must be in \[0, 1\); got 1.0"),
])
def test_a_size_that_is_not_a_positive_integer_is_a_config_error(name, fields, message):
    """Zero or negative filters, kernels, strides or z_dim would fail deep in Flax or JAX (a
    division by zero, a negative shape) or, for a stride of 0, build a broken model silently."""
    with pytest.raises(ConfigError, match=message):
        models.build(name, **fields)
