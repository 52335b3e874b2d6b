"""Median ms of one convolution's forward pass, its weight gradient, and a stride-1 conv back to
the input channels (the form of an input gradient), for the CIFAR-10 CNN's layer shapes.

Run it twice to compare XLA's own convolutions with YNNPACK's (jaxlib's default):
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution python conv_directions.py 32
  python conv_directions.py 32
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


B = int(sys.argv[1])
shapes = [(32, 32, 32, 32, 1), (32, 32, 32, 32, 2), (16, 16, 32, 64, 1), (16, 16, 64, 64, 2)]
rng = np.random.default_rng(0)
res = {}
for h, w_, ci, co, s in shapes:
    x = jnp.asarray(rng.standard_normal((B, h, w_, ci)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, ci, co)), jnp.float32)
    fwd = jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (s, s), "SAME", dimension_numbers=D))
    y = fwd(x, w)
    wg = jax.jit(lambda x, y: jax.vjp(
        lambda w: lax.conv_general_dilated(x, w, (s, s), "SAME", dimension_numbers=D), w)[1](y)[0])
    # stride-1 conv with co->ci (input grad form for stride 1)
    wt = jnp.asarray(rng.standard_normal((3, 3, co, ci)), jnp.float32)
    ig = jax.jit(lambda y, wt: lax.conv_general_dilated(y, wt, (1, 1), "SAME", dimension_numbers=D))
    res[f"{ci}->{co} s{s} {h}x{w_}"] = dict(fwd=t(fwd, x, w), wgrad=t(wg, x, y), igrad_s1=t(ig, y, wt))
print(json.dumps(res))
