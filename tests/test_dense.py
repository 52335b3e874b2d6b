"""gdl_jax.models.dense: nn.Dense's params and values, with the kernel gradient made in the
kernel's layout; first- and second-order gradients equal lax's (a WGAN-GP critic ends in one)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdl_jax.models import dense


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7)])   # a batch of vectors; extra leading axes
def test_dense_equals_flax_dense_in_params_values_and_gradients(shape):
    x = jax.random.normal(jax.random.key(0), shape)
    ours, theirs = dense.Dense(4), nn.Dense(4)
    variables = theirs.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, variables)
    loss = lambda model: lambda v, x: jnp.sum(jnp.sin(model.apply(v, x)) * jnp.arange(4.0))
    got = jax.jit(jax.value_and_grad(loss(ours), (0, 1)))(variables, x)
    want = jax.jit(jax.value_and_grad(loss(theirs), (0, 1)))(variables, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_second_order_gradients_match_lax():
    """The penalty's shape: the norm of the input gradient, differentiated w.r.t. the weights."""
    x = jax.random.normal(jax.random.key(0), (3, 6))
    w1 = jax.random.normal(jax.random.key(1), (6, 5))
    w2 = jax.random.normal(jax.random.key(2), (5, 1))

    def penalty(matmul):
        critic = lambda x, w1, w2: jnp.sum(matmul(jnp.tanh(matmul(x, w1)), w2))
        return lambda w1, w2: jnp.sum((1.0 - jnp.linalg.norm(jax.grad(critic)(x, w1, w2), axis=1)) ** 2)

    got = jax.jit(jax.grad(penalty(dense.matmul), (0, 1)))(w1, w2)
    want = jax.jit(jax.grad(penalty(jnp.matmul), (0, 1)))(w1, w2)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_other_contractions_fall_through_to_lax():
    a, b = jnp.ones((2, 3)), jnp.ones((2, 4))
    np.testing.assert_array_equal(dense.dot_general(a, b, (((0,), (0,)), ((), ()))), a.T @ b)


def test_the_kernel_gradient_is_made_in_the_kernel_layout():
    """The compiled backward pass has no transpose of the kernel gradient (what made the
    'sharded' backend slow on several devices)."""
    x, w = jnp.ones((8, 64)), jnp.ones((64, 16))
    grad = lambda matmul: jax.jit(jax.grad(lambda w: jnp.sum(matmul(x, w)))).lower(w).as_text()
    assert "transpose" in grad(jnp.matmul)   # JAX's own rule: (out, in), then transposed
    assert "transpose" not in grad(dense.matmul)
