"""Median ms of a conv's weight gradient: lax's against one [N, cin]^T @ [N, cout] matmul per
kernel tap (two layouts), and their relative differences.

  python reports/probe_2026-12-02_cpu/tap_weight_grad.py
"""
from gdl_jax import runtime
runtime.configure("__main__")
import time
import jax, jax.numpy as jnp, numpy as np
from jax import lax
from gdl_jax.models import conv as C

def med(f, *a, n=20):
    jax.block_until_ready(f(*a)); jax.block_until_ready(f(*a))
    ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return np.median(ts) * 1e3

def taps_dot(x, dy, k, s, pads, wshape):
    n, ho, wo, cout = dy.shape
    cin = x.shape[3]
    xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)])
    out = []
    for t in range(k):
        for u in range(k):
            xs = lax.slice(xp, (0, t, u, 0), (n, t + (ho - 1) * s + 1, u + (wo - 1) * s + 1, cin), (1, s, s, 1))
            out.append(lax.dot_general(xs, dy, (((0, 1, 2), (0, 1, 2)), ((), ()))))
    return jnp.stack(out).reshape(wshape)

def taps_dot_hi(x, dy, k, s, pads, wshape):
    """dy as [N, cout]; each tap of x as [N, cin]: x_tap^T @ dy."""
    n, ho, wo, cout = dy.shape
    cin = x.shape[3]
    xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)])
    d2 = dy.reshape(-1, cout)
    xs = [lax.slice(xp, (0, t, u, 0), (n, t + (ho - 1) * s + 1, u + (wo - 1) * s + 1, cin), (1, s, s, 1)).reshape(-1, cin)
          for t in range(k) for u in range(k)]
    return jnp.stack([x_.T @ d2 for x_ in xs]).reshape(wshape)

cases = [("cnn1 32->32 s2", 32, 32, 32, 3, 2), ("cnn2 32->64 s1", 16, 32, 64, 3, 1),
         ("cnn3 64->64 s2", 16, 64, 64, 3, 2), ("ae enc 32->64 s2", 28, 32, 64, 3, 2)]
for b in (32, 128):
    for name, H, cin, cout, k, s in cases:
        x = jax.random.normal(jax.random.PRNGKey(0), (b, H, H, cin))
        w = jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, cout)) * 0.1
        pads = tuple(map(tuple, lax.padtype_to_pads((H, H), (k, k), (s, s), "SAME")))
        dy = jax.random.normal(jax.random.PRNGKey(2), C._conv(x, w, (s, s), pads).shape)
        f_lax = jax.jit(lambda x, dy: C._weight_grad(x, w, (s, s), pads, dy))
        f_t = jax.jit(lambda x, dy: taps_dot(x, dy, k, s, pads, w.shape))
        f_t2 = jax.jit(lambda x, dy: taps_dot_hi(x, dy, k, s, pads, w.shape))
        a = f_lax(x, dy)
        e1 = float(jnp.max(jnp.abs(a - f_t(x, dy))) / jnp.max(jnp.abs(a)))
        e2 = float(jnp.max(jnp.abs(a - f_t2(x, dy))) / jnp.max(jnp.abs(a)))
        print(f"b{b:4d} {name:18s} lax {med(f_lax, x, dy):7.2f}  tapdots {med(f_t, x, dy):7.2f} ({e1:.0e})  tapdotsT {med(f_t2, x, dy):7.2f} ({e2:.0e})", flush=True)
