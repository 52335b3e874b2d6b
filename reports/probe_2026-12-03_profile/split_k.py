"""A weight gradient's matmul alone: (N, M)^T @ (N, K) with N long, contracted whole or as P
chunks (a batched matmul, then a sum); median ms of 25 calls and GFLOP/s.

    python reports/probe_2026-12-03_profile/split_k.py
"""

from gdl_jax import runtime

runtime.configure()  # the XLA flag, without the huge-page restart: as measured
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _common import ms  # noqa: E402


def plain(a, b):
    return jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())))


def splitk(p):
    def f(a, b):
        n = a.shape[0]
        a3 = a.reshape(p, n // p, a.shape[1])
        b3 = b.reshape(p, n // p, b.shape[1])
        return jax.lax.dot_general(a3, b3, (((1,), (1,)), ((0,), (0,)))).sum(0)

    return f


def splitk_outer(p):
    # rows interleaved: row r goes to chunk r % p (no data movement needed either)
    def f(a, b):
        n = a.shape[0]
        a3 = a.reshape(n // p, p, a.shape[1])
        b3 = b.reshape(n // p, p, b.shape[1])
        return jax.lax.dot_general(a3, b3, (((0,), (0,)), ((1,), (1,)))).sum(0)

    return f


key = jax.random.PRNGKey(0)
for n, m, k in [
    (128 * 16 * 16, 288, 32),
    (128 * 16 * 16, 288, 64),
    (128 * 8 * 8, 576, 64),
    (32 * 16 * 16, 288, 32),
    (128 * 32 * 32, 27, 32),
]:
    a = jax.random.normal(key, (n, m))
    b = jax.random.normal(key, (n, k))
    fl = 2 * n * m * k
    ref = jax.jit(plain)(a, b)
    row = [f"N={n} M={m} K={k}"]
    t = ms(jax.jit(plain), a, b, n=25)
    row.append(f"plain {t:.2f}ms {fl / t / 1e6:.0f}GF/s")
    for p in [2, 4, 8, 16, 32, 64]:
        f = jax.jit(splitk(p))
        err = float(jnp.abs(f(a, b) - ref).max() / jnp.abs(ref).max())
        t = ms(f, a, b, n=25)
        row.append(f"p{p} {t:.2f} ({fl / t / 1e6:.0f}) e{err:.0e}")
    print(" | ".join(row), flush=True)
