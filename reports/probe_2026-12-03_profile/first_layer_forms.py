"""A thin first layer (the CNN's 3 -> 32, the MNIST AE's 1 -> 32) forward and weight gradient: lax,
the project's im2col (patches (rows, k*k*cin) by concatenate) and a planar im2col (patches
(k*k*cin, rows): the input made channel-major once, each patch row a strided slice); median ms
of 30 jitted calls, and the patches alone.

    python reports/probe_2026-12-03_profile/first_layer_forms.py
"""

from gdl_jax import runtime

runtime.configure(__name__)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _common import case, ms  # noqa: E402
from jax import lax  # noqa: E402

from gdl_jax.models import conv as C  # noqa: E402


def planar_cols(x, kh, kw, s, p):
    """(kh*kw*cin, n*ho*wo) patches, rows in w.reshape(-1, cout)'s order."""
    n, h, w_, cin = x.shape
    ho = (h + sum(p[0]) - kh) // s[0] + 1
    wo = (w_ + sum(p[1]) - kw) // s[1] + 1
    xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*p[0], 0), (*p[1], 0), (0, 0, 0)]).transpose(3, 0, 1, 2)
    rows = [
        lax.slice(xp, (c, 0, t, u), (c + 1, n, t + (ho - 1) * s[0] + 1, u + (wo - 1) * s[1] + 1), (1, 1, s[0], s[1]))
        for t in range(kh)
        for u in range(kw)
        for c in range(cin)
    ]
    return jnp.concatenate(rows, 0).reshape(kh * kw * cin, n * ho * wo), (n, ho, wo)


def planar_fwd(x, w, s, p):
    cols, (n, ho, wo) = planar_cols(x, *w.shape[:2], s, p)
    return lax.dot_general(cols, w.reshape(-1, w.shape[3]), (((0,), (0,)), ((), ()))).reshape(n, ho, wo, -1)


def planar_loss(x, w, dy, s, p):
    cols, (n, ho, wo) = planar_cols(x, *w.shape[:2], s, p)
    y = lax.dot_general(cols, w.reshape(-1, w.shape[3]), (((0,), (0,)), ((), ()))).reshape(n, ho, wo, -1)
    dw = (cols @ dy.reshape(-1, dy.shape[-1])).reshape(w.shape)
    return y, dw


def cur_loss(x, w, dy, s, p):
    y, vjp = jax.vjp(lambda w: C._thin_conv(x, w, s, p), w)
    return y, vjp(dy)[0]


def lax_loss(x, w, dy, s, p):
    y, vjp = jax.vjp(lambda w: C._conv(x, w, s, p), w)
    return y, vjp(dy)[0]


for batch in (32, 128):
    for name, hw, k, cin, cout, st in [
        ("CNN L1 3->32 3x3 s1 32x32", 32, 3, 3, 32, 1),
        ("AE L1 1->32 3x3 s1 28x28", 28, 3, 1, 32, 1),
    ]:
        x, w, dy, s, p = case(batch, hw, k, cin, cout, st)
        ref = jax.jit(lax_loss, static_argnums=(3, 4))(x, w, dy, s, p)
        row = [f"b{batch} {name}"]
        for nm, f in [("lax", lax_loss), ("im2col", cur_loss), ("planar", planar_loss)]:
            jf = jax.jit(f, static_argnums=(3, 4))
            out = jf(x, w, dy, s, p)
            err = max(float(jnp.abs(a - b).max() / jnp.abs(b).max()) for a, b in zip(out, ref))
            assert err < 1e-5, (nm, err)
            row.append(f"{nm} {ms(lambda *a: jf(*a, s, p), x, w, dy, n=30):.2f}")
        jp = jax.jit(lambda x: planar_cols(x, k, k, s, p)[0])
        jc = jax.jit(lambda x: C._im2col(x, k, k, s, p))
        row.append(f"cols: concat {ms(jc, x, n=30):.2f} planar {ms(jp, x, n=30):.2f}")
        print(" | ".join(row), flush=True)
