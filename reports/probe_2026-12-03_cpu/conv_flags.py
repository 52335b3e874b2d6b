"""Times one 3x3 SAME convolution's forward pass, input gradient and weight gradient (median of 15
jitted calls, ms) under whatever XLA_FLAGS the environment sets, and lists the custom calls in
each compiled program (a library that took the convolution over would show as one).

    XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=-individual_convolution --xla_cpu_use_onednn=true" \
        python conv_flags.py BATCH SIZE CIN COUT STRIDE
"""
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

N, H, CI, CO, S = (int(a) for a in sys.argv[1:6])
x = jax.random.normal(jax.random.PRNGKey(0), (N, H, H, CI))
w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, CI, CO)) * 0.1


def conv(x, w):
    return lax.conv_general_dilated(x, w, (S, S), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


dy = jnp.ones_like(conv(x, w))
fns = {"fwd": jax.jit(conv),
       "dx": jax.jit(lambda x, w: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0]),
       "dw": jax.jit(lambda x, w: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0])}
out = {}
for name, f in fns.items():
    text = f.lower(x, w).compile().as_text()
    calls = sorted({line.split("custom_call_target=")[1].split(",")[0]
                    for line in text.splitlines() if "custom_call_target" in line})
    f(x, w).block_until_ready()
    times = []
    for _ in range(15):
        t = time.perf_counter()
        f(x, w).block_until_ready()
        times.append(time.perf_counter() - t)
    out[name] = {"ms": round(sorted(times)[7] * 1e3, 2), "custom_calls": calls}
print(os.environ.get("XLA_FLAGS", ""), json.dumps(out))
