"""small_conv's two weight gradients: lax's, through the space-to-depth forward, and im2col + a
split-K matmul; median ms of 40 jitted calls, each checked against lax's.

    python reports/probe_2026-12-03_profile/small_conv_weight_grad.py
"""

from gdl_jax import runtime

runtime.configure(__name__)
import time, numpy as np, jax, jax.numpy as jnp
from jax import lax
from gdl_jax.models import conv as C


def timeit(f, *a, n=40):
    for _ in range(5):
        f(*a).block_until_ready()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f(*a).block_until_ready()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def lax_wg(x, w, dy, s, p):
    return C._weight_grad(x, w, s, p, dy)


def s2d_wg(x, w, dy, s, p):
    return jax.vjp(lambda w: C._space_to_depth_conv(x, w, s, p), w)[1](dy)[0]


def im2col_sk(P):
    def f(x, w, dy, s, p):
        cols = C._im2col(x, *w.shape[:2], s, p)
        a = cols.reshape(P, -1, cols.shape[-1])
        b = dy.reshape(P, -1, dy.shape[-1])
        return lax.dot_general(a, b, (((1,), (1,)), ((0,), (0,)))).sum(0).reshape(w.shape)

    return f


key = jax.random.PRNGKey(0)
for batch in (32, 128):
    for name, hw, k, cin, cout in [("L1 3->10 4x4 s2 32x32", 32, 4, 3, 10), ("L2 10->20 3x3 s2 16x16", 16, 3, 10, 20)]:
        x = jax.random.normal(key, (batch, hw, hw, cin))
        w = jax.random.normal(key, (k, k, cin, cout))
        s = (2, 2)
        p = tuple(map(tuple, lax.padtype_to_pads((hw, hw), (k, k), s, "SAME")))
        dy = jax.random.normal(key, C._conv(x, w, s, p).shape)
        forms = {"lax": lax_wg, "s2d": s2d_wg}
        for P in (1, 4, 16, 64):
            forms[f"im2col_sk{P}"] = im2col_sk(P)
        ref = jax.jit(lax_wg, static_argnums=(3, 4))(x, w, dy, s, p)
        row = [f"b{batch} {name}"]
        for kk, f in forms.items():
            jf = jax.jit(f, static_argnums=(3, 4))
            g = lambda x, w, dy: jf(x, w, dy, s, p)
            err = float(jnp.abs(g(x, w, dy) - ref).max() / jnp.abs(ref).max())
            assert err < 1e-5, (kk, err)
            row.append(f"{kk} {timeit(g, x, w, dy):.3f}")
        print(" | ".join(row), flush=True)
