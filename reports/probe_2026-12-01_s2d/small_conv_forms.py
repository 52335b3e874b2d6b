"""small_conv's train step (4 steps per dispatch, Adam) with each layer's convolution form forced,
all 12 pairs timed in turn, 25 rounds: `python reports/probe_2026-12-01_s2d/small_conv_forms.py 128`."""

import functools
import sys

from gdl_jax import runtime

runtime.configure()   # the project's default XLA flag, as the binaries set it

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax import lax  # noqa: E402

from experiments import benchmark  # noqa: E402
from gdl_jax.models import conv  # noqa: E402

KERNEL_INIT = nn.initializers.glorot_uniform()
FORMS = {"lax": conv._conv, "sub": conv._strided_conv, "s2d": conv._s2d_conv, "im2col": conv._thin_conv}


def forced(form: str):
    """A conv_general_dilated for nn.Conv that always takes `form`."""
    def conv_fn(lhs, rhs, window_strides, padding, *args, **kwargs):
        pads = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
        return FORMS[form](lhs, rhs, tuple(window_strides), tuple(map(tuple, pads)))
    return conv_fn


class Net(nn.Module):
    """SmallConvNet with each conv's form fixed."""
    form1: str
    form2: str

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(10, (4, 4), 2, padding="SAME", kernel_init=KERNEL_INIT, conv_general_dilated=forced(self.form1))(x)
        x = nn.Conv(20, (3, 3), 2, padding="SAME", kernel_init=KERNEL_INIT, conv_general_dilated=forced(self.form2))(x)
        return nn.Dense(10, kernel_init=KERNEL_INIT)(x.reshape(x.shape[0], -1))


def build(form1: str, form2: str, batch: int, k: int = 4):
    """A function that runs one dispatch of k Adam steps on fixed random data."""
    net = Net(form1, form2)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((k, batch, 32, 32, 3), np.float32))
    y = jnp.asarray(rng.integers(0, 10, (k, batch)))
    params = net.init(jax.random.PRNGKey(0), x[0])
    tx = optax.adam(5e-4)
    state = [params, tx.init(params)]
    loss = lambda p, xb, yb: optax.softmax_cross_entropy_with_integer_labels(net.apply(p, xb), yb).mean()

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def dispatch(p, o, x, y):
        for i in range(k):
            updates, o = tx.update(jax.grad(loss)(p, x[i], y[i]), o, p)
            p = optax.apply_updates(p, updates)
        return p, o

    def run():
        state[0], state[1] = jax.block_until_ready(dispatch(state[0], state[1], x, y))
    return run


if __name__ == "__main__":
    batch = int(sys.argv[1])
    pairs = [(a, b) for a in ("lax", "sub", "s2d", "im2col") for b in ("lax", "sub", "im2col")]
    runs = {pair: build(*pair, batch) for pair in pairs}
    medians, _ = benchmark.time_interleaved(list(runs.values()), warmup=2, iters=25, settle=0)
    ms = {pair: 1e3 * m / 4 for pair, m in zip(pairs, medians)}   # 4 steps per call
    for pair in sorted(pairs, key=ms.get):
        print(f"batch {batch}  conv1 {pair[0]:6s} conv2 {pair[1]:6s} {ms[pair]:.2f} ms/step")
