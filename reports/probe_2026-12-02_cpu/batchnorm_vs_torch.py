"""flax's BatchNorm (train mode) forward and backward on a CNN-sized activation against
torch's BatchNorm2d (channels_last, 2 threads), with an elementwise op and a reduction as yardsticks.

  python reports/probe_2026-12-02_cpu/batchnorm_vs_torch.py
"""
from gdl_jax import runtime
runtime.configure("__main__")
import time
import jax, jax.numpy as jnp, numpy as np
from jax import lax
import flax.linen as nn
import torch

def med(f, *a, n=30):
    f(*a); f(*a)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(*a); ts.append(time.perf_counter() - t)
    return np.median(ts) * 1e3

shape = (128, 32, 32, 32)
x = jax.random.normal(jax.random.PRNGKey(0), shape)
B = lambda f: (lambda *a: jax.block_until_ready(f(*a)))
ew = jax.jit(lambda x: x * 2 + 1)
red = jax.jit(lambda x: jnp.sum(x, (0, 1, 2)))
bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-3)
v = bn.init(jax.random.PRNGKey(0), x)
def loss(p, x):
    y, _ = bn.apply({"params": p, "batch_stats": v["batch_stats"]}, x, mutable=["batch_stats"])
    return jnp.sum(y * x)
flax_bn = jax.jit(jax.value_and_grad(loss, (0, 1)))
fwd_only = jax.jit(lambda p, x: bn.apply({"params": p, "batch_stats": v["batch_stats"]}, x, mutable=["batch_stats"])[0])
print("elementwise x*2+1   ", round(med(B(ew), x), 2))
print("reduce sum          ", round(med(B(red), x), 2))
print("flax BN fwd         ", round(med(B(fwd_only), v["params"], x), 2))
print("flax BN fwd+bwd     ", round(med(B(flax_bn), v["params"], x), 2))
torch.set_num_threads(2)
tx = torch.randn(128, 32, 32, 32).to(memory_format=torch.channels_last).requires_grad_()
tbn = torch.nn.BatchNorm2d(32, eps=1e-3)
def tstep():
    y = tbn(tx); (y * tx).sum().backward()
print("torch BN fwd+bwd cl ", round(med(tstep), 2))
with torch.no_grad():
    print("torch BN fwd cl     ", round(med(lambda: tbn(tx)), 2))
