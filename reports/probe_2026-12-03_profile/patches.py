"""Building im2col patches for the CNN's 32 -> 32 stride-2 layer at batch 128 (128 x 16 x 16 x 288
floats, 38 MB) several ways, against a plain elementwise pass of the same size; median ms of 20
calls. Run with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 for the numbers in the README.

    python reports/probe_2026-12-03_profile/patches.py
"""

from gdl_jax import runtime

runtime.configure(__name__)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _common import ms  # noqa: E402
from jax import lax  # noqa: E402

key = jax.random.PRNGKey(0)
x = jax.random.normal(key, (128, 32, 32, 32))
dy = jax.random.normal(key, (128, 16, 16, 32))
big = jax.random.normal(key, (128, 16, 16, 288))
print("copy 37MB (x*2)", ms(jax.jit(lambda a: a * 2), big))


def slices(x):
    xp = lax.pad(x, 0.0, [(0, 0, 0), (0, 1, 0), (0, 1, 0), (0, 0, 0)])
    return [lax.slice(xp, (0, t, u, 0), (128, t + 31, u + 31, 32), (1, 2, 2, 1)) for t in range(3) for u in range(3)]


f = jax.jit(lambda x: jnp.stack(slices(x), 0))
print("stack axis0", ms(f, x))
f = jax.jit(lambda x: jnp.stack(slices(x), -2))
print("stack axis -2", ms(f, x))
f = jax.jit(lambda x: jnp.concatenate(slices(x), -1))
print("concat -1", ms(f, x))
f = jax.jit(lambda x: slices(x)[4] * 1)
print("one slice", ms(f, x))
f = jax.jit(lambda x: sum(slices(x)))
print("sum of 9 slices", ms(f, x))


def s2d(x):
    xp = lax.pad(x, 0.0, [(0, 0, 0), (0, 2, 0), (0, 2, 0), (0, 0, 0)])  # 34 -> 17 blocks
    xb = xp.reshape(128, 17, 2, 17, 2, 32)
    return jnp.stack(
        [xb[:, t // 2 : t // 2 + 16, t % 2, u // 2 : u // 2 + 16, u % 2] for t in range(3) for u in range(3)], 0
    )


f = jax.jit(s2d)
print("s2d stack axis0", ms(f, x))
g = jax.jit(
    lambda x, dy: lax.dot_general(
        jnp.stack(slices(x), 0).reshape(9, -1, 32), dy.reshape(-1, 32), (((1,), (0,)), ((), ()))
    )
)
print("stack0 + batched dot", ms(g, x, dy))
