"""BatchNorm's batch statistics three ways (two reductions, one variadic reduce, two matmuls
with a ones vector), alone and in a BatchNorm + leaky ReLU forward and backward pass.

  python reports/probe_2026-12-02_cpu/batchnorm_stats.py
"""
from gdl_jax import runtime
runtime.configure("__main__")
import time
import jax, jax.numpy as jnp, numpy as np
from jax import lax

def med(f, *a, n=40):
    jax.block_until_ready(f(*a)); jax.block_until_ready(f(*a))
    ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return np.median(ts) * 1e3

def two(x):
    return jnp.mean(x, (0, 1, 2)), jnp.mean(x * x, (0, 1, 2))

def variadic(x):
    n = x.shape[0] * x.shape[1] * x.shape[2]
    s, q = lax.reduce((x, x * x), (jnp.float32(0), jnp.float32(0)),
                      lambda a, b: (a[0] + b[0], a[1] + b[1]), (0, 1, 2))
    return s / n, q / n

def dots(x):
    x2 = x.reshape(-1, x.shape[-1]); n = x2.shape[0]
    o = jnp.ones((n,), x.dtype)
    return (o @ x2) / n, (o @ (x2 * x2)) / n

def bn_train(stats):
    def f(x, g, b):
        m, q = stats(x)
        v = q - m * m
        y = (x - m) * lax.rsqrt(v + 1e-3) * g + b
        return jnp.sum(jnp.where(y > 0, y, 0.01 * y) ** 2)
    return jax.jit(jax.value_and_grad(f, (0, 1, 2)))

for shape in [(128, 32, 32, 32), (128, 16, 16, 64), (32, 32, 32, 32)]:
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    g, b = jnp.ones(shape[-1]), jnp.zeros(shape[-1])
    r = {}
    for name, fn in (("two", two), ("variadic", variadic), ("dots", dots)):
        st = jax.jit(fn)
        full = bn_train(fn)
        r[name] = (med(st, x), med(full, x, g, b))
    ref = jax.jit(two)(x)
    for name, fn in (("variadic", variadic), ("dots", dots)):
        got = jax.jit(fn)(x)
        assert all(np.allclose(a, c, rtol=1e-4, atol=1e-5) for a, c in zip(got, ref)), name
    print(shape, "  ".join(f"{k}: stats {a:.2f} ms, bn fwd+bwd {c:.2f} ms" for k, (a, c) in r.items()), flush=True)
