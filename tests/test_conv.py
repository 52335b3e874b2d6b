"""The sub-pixel backward pass of strided convolutions equals lax's, value and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from gdl_jax import models
from gdl_jax.models import conv

DIMS = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("size, kernel, stride, padding, cin, cout", [
    (32, 3, 2, "SAME", 3, 32),    # the CIFAR CNN's stride-2 layers
    (32, 4, 2, "SAME", 3, 10),    # the small conv net's first layer
    (28, 5, 2, "SAME", 1, 64),    # the GAN discriminator's
    (7, 3, 2, "SAME", 4, 5),      # odd sizes
    (9, 3, 2, "VALID", 2, 3),
    (12, 3, 3, "SAME", 2, 2),     # stride 3
    (8, 3, 1, "SAME", 2, 3),      # stride 1: lax's own path
])
def test_gradients_match_lax(size, kernel, stride, padding, cin, cout):
    x = jax.random.normal(jax.random.key(0), (2, size, size, cin))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, cin, cout))
    loss = lambda fn: lambda x, w: jnp.sum(jnp.sin(fn(x, w, (stride, stride), padding, dimension_numbers=DIMS)))
    want = jax.value_and_grad(loss(lax.conv_general_dilated), (0, 1))(x, w)
    got = jax.value_and_grad(loss(conv.conv_general_dilated), (0, 1))(x, w)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_cnn_train_gradients_do_not_depend_on_the_backward_form():
    x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
    y = jnp.arange(4)
    fast, plain = models.build("cnn"), models.build("cnn", subpixel_backward=False)
    variables = plain.init(jax.random.key(1), x)

    def grads(model):
        def loss(params):
            logits, _ = model.apply({**variables, "params": params}, x, train=True,
                                    rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return jax.jit(jax.grad(loss))(variables["params"])

    for a, b in zip(jax.tree.leaves(grads(fast)), jax.tree.leaves(grads(plain))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
