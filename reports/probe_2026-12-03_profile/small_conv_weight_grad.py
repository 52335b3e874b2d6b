"""small_conv's two weight gradients: lax's, through the space-to-depth forward, and im2col + a
split-K matmul; median ms of 40 jitted calls, each checked against lax's.

    python reports/probe_2026-12-03_profile/small_conv_weight_grad.py
"""

from gdl_jax import runtime

runtime.configure(__name__)
import jax  # noqa: E402
from _common import case, im2col_sk, lax_wg, time_weight_grads  # noqa: E402

from gdl_jax.models import conv as C  # noqa: E402


def s2d_wg(x, w, dy, s, p):
    return jax.vjp(lambda w: C._space_to_depth_conv(x, w, s, p), w)[1](dy)[0]


forms = {"lax": lax_wg, "s2d": s2d_wg, **{f"im2col_sk{P}": im2col_sk(P) for P in (1, 4, 16, 64)}}
for batch in (32, 128):
    for name, hw, k, cin, cout in [("L1 3->10 4x4 s2 32x32", 32, 4, 3, 10), ("L2 10->20 3x3 s2 16x16", 16, 3, 10, 20)]:
        print(time_weight_grads(f"b{batch} {name}", forms, *case(batch, hw, k, cin, cout, 2), n=40), flush=True)
