"""Median ms of a stride-2 conv's weight gradient: lax's (a window-dilated conv) against one
stride-1 weight gradient per input phase, and their relative difference.

  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution python stride2_weight_grad.py 128
"""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gdl_jax.hardware import median_seconds

D = ("NHWC", "HWIO", "NHWC")
def t(f, *a):
    """Median ms of f(*a) over 30 calls after a warm-up one."""
    return 1e3 * median_seconds(lambda: jax.block_until_ready(f(*a)), 30)



def conv(x, w, s, pads):
    return lax.conv_general_dilated(x, w, (s, s), pads, dimension_numbers=D)

def lax_wgrad(x, dy, w_shape, s, pads):
    return jax.vjp(lambda w: conv(x, w, s, pads), jnp.zeros(w_shape, x.dtype))[1](dy)[0]

def phase_wgrad(x, dy, w_shape, s, pads):
    kh, kw = w_shape[:2]
    oh, ow = dy.shape[1:3]
    # pad so that xp[s*i + t] is the tap-t input of output i
    need_h, need_w = s * (oh - 1) + kh, s * (ow - 1) + kw
    xp = jnp.pad(x, ((0, 0), (pads[0][0], max(0, need_h - x.shape[1] - pads[0][0])),
                     (pads[1][0], max(0, need_w - x.shape[2] - pads[1][0])), (0, 0)))[:, :need_h, :need_w]
    rows = []
    for a in range(s):
        cols = []
        for b in range(s):
            la, lb = len(range(a, kh, s)), len(range(b, kw, s))
            xab = xp[:, a::s, b::s][:, :oh + la - 1, :ow + lb - 1]
            cols.append(jax.vjp(lambda w: lax.conv_general_dilated(xab, w, (1, 1), "VALID", dimension_numbers=D),
                                jnp.zeros((la, lb) + tuple(w_shape[2:]), x.dtype))[1](dy)[0])
        rows.append(cols)
    out = jnp.zeros(w_shape, x.dtype)
    for a in range(s):
        for b in range(s):
            out = out.at[a::s, b::s].set(rows[a][b])
    return out

B = int(sys.argv[1])
cases = [("cnn L2", 32, 32, 32, 3), ("cnn L4", 16, 64, 64, 3), ("ae enc 64 s2 28", 28, 32, 64, 3),
         ("gan D 5x5 s2 28", 28, 64, 64, 5), ("faces enc 32 s2 64", 64, 32, 64, 3)]
rng = np.random.default_rng(0)
res = {}
for name, h, ci, co, k in cases:
    x = jnp.asarray(rng.standard_normal((B, h, h, ci)), jnp.float32)
    pads = lax.padtype_to_pads((h, h), (k, k), (2, 2), "SAME")
    y = conv(x, jnp.zeros((k, k, ci, co)), 2, pads)
    dy = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
    f1 = jax.jit(lambda x, dy: lax_wgrad(x, dy, (k, k, ci, co), 2, pads))
    f2 = jax.jit(lambda x, dy: phase_wgrad(x, dy, (k, k, ci, co), 2, pads))
    err = float(jnp.max(jnp.abs(f1(x, dy) - f2(x, dy))) / jnp.max(jnp.abs(f1(x, dy))))
    res[name] = dict(lax=round(t(f1, x, dy), 2), phase=round(t(f2, x, dy), 2), rel_err=err)
print(B, json.dumps(res))
