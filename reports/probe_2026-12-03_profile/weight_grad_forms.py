"""The CIFAR CNN's 3x3 weight gradients (layers 2-4) four ways, median ms of 20 jitted calls:
lax's, im2col + a split-K matmul (the rows cut into P chunks, a batched matmul, a sum), lax's
per batch chunk summed, and one split-K matmul per kernel tap. Each form is checked against lax's.

    python reports/probe_2026-12-03_profile/weight_grad_forms.py
"""

from gdl_jax import runtime

runtime.configure()  # the XLA flag, without the huge-page restart: as measured
import time, numpy as np, jax, jax.numpy as jnp
from jax import lax
from gdl_jax.models import conv as C


def timeit(f, *a, n=20):
    for _ in range(3):
        f(*a).block_until_ready()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f(*a).block_until_ready()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def lax_wg(x, w, dy, s, p):
    return C._weight_grad(x, w, s, p, dy)


def im2col_sk(P):
    def f(x, w, dy, s, p):
        cols = C._im2col(x, *w.shape[:2], s, p)
        a = cols.reshape(P, -1, cols.shape[-1])
        b = dy.reshape(P, -1, dy.shape[-1])
        return lax.dot_general(a, b, (((1,), (1,)), ((0,), (0,)))).sum(0).reshape(w.shape)

    return f


def chunked_lax(P):
    def f(x, w, dy, s, p):
        xs = x.reshape(P, -1, *x.shape[1:])
        dys = dy.reshape(P, -1, *dy.shape[1:])
        return sum(C._weight_grad(xs[i], w, s, p, dys[i]) for i in range(P))

    return f


def taps_sk(P):
    def f(x, w, dy, s, p):
        kh, kw, cin, cout = w.shape
        n, ho, wo = dy.shape[:3]
        xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*p[0], 0), (*p[1], 0), (0, 0, 0)])
        b = dy.reshape(P, -1, cout)
        out = []
        for t in range(kh):
            for u in range(kw):
                xt = lax.slice(
                    xp, (0, t, u, 0), (n, t + (ho - 1) * s[0] + 1, u + (wo - 1) * s[1] + 1, cin), (1, s[0], s[1], 1)
                )
                a = xt.reshape(P, -1, cin)
                out.append(lax.dot_general(a, b, (((1,), (1,)), ((0,), (0,)))).sum(0))
        return jnp.stack(out).reshape(w.shape)

    return f


key = jax.random.PRNGKey(0)
cases = [
    ("L2 32->32 s2 32x32", 32, 32, 32, 2),
    ("L3 32->64 s1 16x16", 16, 32, 64, 1),
    ("L4 64->64 s2 16x16", 16, 64, 64, 2),
]
for batch in (32, 128):
    for name, hw, cin, cout, st in cases:
        x = jax.random.normal(key, (batch, hw, hw, cin))
        w = jax.random.normal(key, (3, 3, cin, cout))
        s = (st, st)
        p = tuple(map(tuple, lax.padtype_to_pads((hw, hw), (3, 3), s, "SAME")))
        dy = jax.random.normal(key, C._conv(x, w, s, p).shape)
        forms = {"lax": lax_wg}
        for P in (4, 16):
            forms[f"im2col_sk{P}"] = im2col_sk(P)
        for P in (2, 4):
            forms[f"chunk{P}"] = chunked_lax(P)
        for P in (1, 4, 16):
            forms[f"taps_sk{P}"] = taps_sk(P)
        ref = jax.jit(lax_wg, static_argnums=(3, 4))(x, w, dy, s, p)
        row = [f"b{batch} {name}"]
        for k, f in forms.items():
            jf = jax.jit(f, static_argnums=(3, 4))
            g = lambda x, w, dy: jf(x, w, dy, s, p)
            err = float(jnp.abs(g(x, w, dy) - ref).max() / jnp.abs(ref).max())
            assert err < 1e-5, (k, err)
            row.append(f"{k} {timeit(g, x, w, dy):.2f}")
        print(" | ".join(row), flush=True)
