"""What the probes beside this file share: timing in ms, and a convolution case with the weight
gradient forms they compare. Import it after `runtime.configure` (it imports jax)."""

import jax
import jax.numpy as jnp
from jax import lax

from gdl_jax.hardware import median_seconds
from gdl_jax.models import conv as C


def ms(f, *args, n: int = 20) -> float:
    """Median ms of `n` calls of `f(*args)` (a jitted function, or torch work that returns when
    done), after 3 untimed ones (compilation, caches) and the one `median_seconds` adds."""
    call = lambda: jax.block_until_ready(f(*args))  # noqa: E731
    for _ in range(3):
        call()
    return 1e3 * median_seconds(call, n)


def case(batch: int, hw: int, k: int, cin: int, cout: int, stride: int):
    """A SAME-padded k x k convolution's input, weights, output gradient, strides and pads."""
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (batch, hw, hw, cin))
    w = jax.random.normal(key, (k, k, cin, cout))
    s = (stride, stride)
    p = tuple(map(tuple, lax.padtype_to_pads((hw, hw), (k, k), s, "SAME")))
    dy = jax.random.normal(key, C._conv(x, w, s, p).shape)
    return x, w, dy, s, p


def lax_wg(x, w, dy, s, p):
    """lax's weight gradient, as the project's convolutions take it."""
    return C._weight_grad(x, w, s, p, dy)


def im2col_sk(P: int):
    """The weight gradient as im2col patches times dy, the rows cut into P chunks (a batched
    matmul, then a sum over the chunks: split-K)."""

    def f(x, w, dy, s, p):
        cols = C._im2col(x, *w.shape[:2], s, p)
        a = cols.reshape(P, -1, cols.shape[-1])
        b = dy.reshape(P, -1, dy.shape[-1])
        return lax.dot_general(a, b, (((1,), (1,)), ((0,), (0,)))).sum(0).reshape(w.shape)

    return f


def time_weight_grads(label: str, forms: dict, x, w, dy, s, p, n: int) -> str:
    """One line: each form's median ms, each checked against lax's within 1e-5 relative."""
    ref = jax.jit(lax_wg, static_argnums=(3, 4))(x, w, dy, s, p)
    row = [label]
    for name, f in forms.items():
        jf = jax.jit(f, static_argnums=(3, 4))
        g = lambda x, w, dy: jf(x, w, dy, s, p)  # noqa: E731
        err = float(jnp.abs(g(x, w, dy) - ref).max() / jnp.abs(ref).max())
        assert err < 1e-5, (name, err)
        row.append(f"{name} {ms(g, x, w, dy, n=n):.2f}")
    return " | ".join(row)
