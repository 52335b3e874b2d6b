"""What a oneDNN convolution would buy JAX here: each convolution of the CIFAR CNN and of
small_conv, forward and backward (input and weight gradients; the weight gradient alone for a
first layer), in JAX (the project's 'rule' forms, and lax's own) and in torch (channels_last,
2 threads, whose CPU convolutions are oneDNN's); median ms of 20 calls. The sum over a model's
layers bounds what a custom call into oneDNN could save a step, overheads aside.

    python reports/probe_2026-12-03_profile/conv_vs_torch.py
"""

from gdl_jax import runtime

runtime.configure(__name__)
import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import case, ms  # noqa: E402

from gdl_jax.models import conv as C  # noqa: E402

torch.set_num_threads(2)

LAYERS = {  # name: (input size, kernel, in channels, out channels, stride); SAME padding
    "cnn": [(32, 3, 3, 32, 1), (32, 3, 32, 32, 2), (16, 3, 32, 64, 1), (16, 3, 64, 64, 2)],
    "small_conv": [(32, 4, 3, 10, 2), (16, 3, 10, 20, 2)],
}


def jax_ms(x, w, dy, s, p, first, mode):
    def f(x, w, dy):
        with C.forms(mode):
            y, vjp = jax.vjp(lambda x, w: C.conv_general_dilated(x, w, s, p, dimension_numbers=C._DIMS), x, w)
            dx, dw = vjp(dy)
        return (y, dw) if first else (y, dx, dw)

    jf = jax.jit(f)
    return ms(jf, x, w, dy), np.asarray(jf(x, w, dy)[-1])


def torch_ms(x, w, dy, s, p, first):
    xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    wt = torch.from_numpy(np.array(w)).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    dyt = torch.from_numpy(np.array(dy)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    xt.requires_grad_(not first)
    wt.requires_grad_(True)
    # torch pads symmetrically: where SAME pads more at the end, pad the input first
    (plo, phi), (qlo, qhi) = p
    asymmetric = (plo, qlo) != (phi, qhi)

    def step():
        wt.grad = None
        xp = torch.nn.functional.pad(xt, (qlo, qhi, plo, phi)) if asymmetric else xt
        y = torch.nn.functional.conv2d(xp, wt, stride=s, padding=0 if asymmetric else (plo, qlo))
        y.backward(dyt)

    return ms(step, n=20), wt.grad.permute(2, 3, 1, 0).numpy()


for model, layers in LAYERS.items():
    for batch in (32, 128):
        totals = np.zeros(3)
        for i, (hw, k, cin, cout, st) in enumerate(layers):
            x, w, dy, s, p = case(batch, hw, k, cin, cout, st)
            runs = [jax_ms(x, w, dy, s, p, i == 0, "rule"), jax_ms(x, w, dy, s, p, i == 0, "lax"),
                    torch_ms(x, w, dy, s, p, i == 0)]
            for _, dw in runs[1:]:  # the same weight gradient everywhere (a check of the padding too)
                np.testing.assert_allclose(dw, runs[0][1], rtol=1e-3, atol=1e-3 * np.abs(runs[0][1]).max())
            t = np.array([r[0] for r in runs])
            totals += t
            print(f"{model} b{batch} {cin}->{cout} {k}x{k} s{st} {hw}x{hw}: rule {t[0]:.2f} | lax {t[1]:.2f} | "
                  f"torch {t[2]:.2f}", flush=True)
        print(f"{model} b{batch} all layers: rule {totals[0]:.2f} | lax {totals[1]:.2f} | torch {totals[2]:.2f}",
              flush=True)
