"""Median ms of a conv's weight gradient: lax's (an XLA convolution) against im2col patches^T @ dy
(one matmul, gdl_jax.models.conv._patch_weight_grad), and their relative difference.

  python reports/probe_2026-12-02_cpu/patch_weight_grad.py
"""
from gdl_jax import runtime
runtime.configure("__main__")
import sys, time
import jax, jax.numpy as jnp, numpy as np
from jax import lax
from gdl_jax.models import conv as C

def med(f, *a, n=30):
    jax.block_until_ready(f(*a)); jax.block_until_ready(f(*a))
    ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return np.median(ts) * 1e3

cases = [  # name, H, cin, cout, k, stride
    ("cnn1 32->32 s2", 32, 32, 32, 3, 2),
    ("cnn2 32->64 s1", 16, 32, 64, 3, 1),
    ("cnn3 64->64 s2", 16, 64, 64, 3, 2),
    ("sc2 10->20 s2", 16, 10, 20, 3, 2),
    ("ae enc 32->64 s2", 28, 32, 64, 3, 2),
    ("gan d 64->64 5x5 s2", 14, 64, 64, 5, 2),
]
for b in (32, 128):
    for name, H, cin, cout, k, s in cases:
        x = jax.random.normal(jax.random.PRNGKey(0), (b, H, H, cin))
        w = jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, cout)) * 0.1
        pads = tuple(map(tuple, lax.padtype_to_pads((H, H), (k, k), (s, s), "SAME")))
        y = C._conv(x, w, (s, s), pads)
        dy = jax.random.normal(jax.random.PRNGKey(2), y.shape)
        f_lax = jax.jit(lambda x, dy: C._weight_grad(x, w, (s, s), pads, dy))
        f_pat = jax.jit(lambda x, dy: C._patch_weight_grad(C._im2col(x, k, k, (s, s), pads), dy, w.shape))
        a, p = f_lax(x, dy), f_pat(x, dy)
        err = float(jnp.max(jnp.abs(a - p)) / jnp.max(jnp.abs(a)))
        print(f"b{b:4d} {name:22s} lax {med(f_lax, x, dy):7.2f} ms  patches {med(f_pat, x, dy):7.2f} ms  relerr {err:.1e}", flush=True)
