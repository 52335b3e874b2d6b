"""The CIFAR CNN's 3x3 weight gradients (layers 2-4) four ways, median ms of 20 jitted calls:
lax's, im2col + a split-K matmul (the rows cut into P chunks, a batched matmul, a sum), lax's
per batch chunk summed, and one split-K matmul per kernel tap. Each form is checked against lax's.

    python reports/probe_2026-12-03_profile/weight_grad_forms.py
"""

from gdl_jax import runtime

runtime.configure()  # the XLA flag, without the huge-page restart: as measured
import jax.numpy as jnp  # noqa: E402
from _common import case, im2col_sk, lax_wg, time_weight_grads  # noqa: E402
from jax import lax  # noqa: E402

from gdl_jax.models import conv as C  # noqa: E402


def chunked_lax(P):
    def f(x, w, dy, s, p):
        xs = x.reshape(P, -1, *x.shape[1:])
        dys = dy.reshape(P, -1, *dy.shape[1:])
        return sum(C._weight_grad(xs[i], w, s, p, dys[i]) for i in range(P))

    return f


def taps_sk(P):
    def f(x, w, dy, s, p):
        kh, kw, cin, cout = w.shape
        n, ho, wo = dy.shape[:3]
        xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*p[0], 0), (*p[1], 0), (0, 0, 0)])
        b = dy.reshape(P, -1, cout)
        out = []
        for t in range(kh):
            for u in range(kw):
                xt = lax.slice(
                    xp, (0, t, u, 0), (n, t + (ho - 1) * s[0] + 1, u + (wo - 1) * s[1] + 1, cin), (1, s[0], s[1], 1)
                )
                a = xt.reshape(P, -1, cin)
                out.append(lax.dot_general(a, b, (((1,), (1,)), ((0,), (0,)))).sum(0))
        return jnp.stack(out).reshape(w.shape)

    return f


forms = {
    "lax": lax_wg,
    **{f"im2col_sk{P}": im2col_sk(P) for P in (4, 16)},
    **{f"chunk{P}": chunked_lax(P) for P in (2, 4)},
    **{f"taps_sk{P}": taps_sk(P) for P in (1, 4, 16)},
}
cases = [
    ("L2 32->32 s2 32x32", 32, 32, 32, 2),
    ("L3 32->64 s1 16x16", 16, 32, 64, 1),
    ("L4 64->64 s2 16x16", 16, 64, 64, 2),
]
for batch in (32, 128):
    for name, hw, cin, cout, st in cases:
        print(time_weight_grads(f"b{batch} {name}", forms, *case(batch, hw, 3, cin, cout, st), n=20), flush=True)
