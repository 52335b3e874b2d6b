"""Strided convolutions and their transposes, computed as stride-1 sub-pixel convolutions.

XLA:CPU computes a stride-s transposed convolution (the input gradient of a strided conv, and
a ConvTranspose layer's forward pass) as a convolution over a zero-dilated input: a slow path
(../shared/PERF_NOTES.md). The same result is s*s stride-1 convolutions of the un-dilated input,
one per output phase (sub-pixel position) with only the kernel taps that reach it, interleaved
(depth-to-space). The two public functions pair up so that every direction runs fast:

- `conv_general_dilated`: a strided conv (lax's forward and weight gradient); its input gradient
  is `conv_transpose`.
- `conv_transpose`: the phase convolutions forward; its input gradient is the strided conv and
  its weight gradient lax's strided weight gradient.

Both are differentiable again (reverse over reverse, as a gradient penalty needs). Parameters and
results are those of lax's ops; only the computation changes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")
Pads = tuple[tuple[int, int], tuple[int, int]]


def _phase_taps(kernel: int, stride: int, pad_lo: int) -> list[tuple[int, list[int]]]:
    """For one spatial axis of a strided conv y[i] = sum_t x[s*i + t - p] w[t]: the transposed
    op is dx[s*m + a] = sum_j dy[m + d_a + j] * w[taps_a[j]]. Returns (d_a, taps_a) per phase a;
    taps_a is empty where no kernel tap reaches phase a."""
    phases = []
    for a in range(stride):
        pairs = sorted(((a + pad_lo - t) // stride, t) for t in range(kernel) if (a + pad_lo - t) % stride == 0)
        phases.append((pairs[0][0] if pairs else 0, [t for _, t in pairs]))
    return phases


def _phase_convs(dy: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads,
                 out_hw: tuple[int, int]) -> jax.Array:
    """The transpose (w.r.t. its input) of conv(x, w, strides, pads) applied to dy, with x of
    spatial size out_hw: one stride-1 VALID conv per output phase, then depth-to-space."""
    (kh, kw, cin, _), (sh, sw) = w.shape, strides
    mh, mw = -(-out_hw[0] // sh), -(-out_hw[1] // sw)   # the phase grid
    n = dy.shape[0]
    rows = []
    for d_a, taps_a in _phase_taps(kh, sh, pads[0][0]):
        cols = []
        for d_b, taps_b in _phase_taps(kw, sw, pads[1][0]):
            if not taps_a or not taps_b:
                cols.append(jnp.zeros((n, mh, mw, cin), dy.dtype))
                continue
            # out[m] = sum_j dy[m + d + j] w[taps[j]]: pad dy so that a VALID conv starts at m + d
            k = w[np.array(taps_a)][:, np.array(taps_b)].transpose(0, 1, 3, 2)
            pad = [(0, 0, 0), (-d_a, mh + d_a + len(taps_a) - 1 - dy.shape[1], 0),
                   (-d_b, mw + d_b + len(taps_b) - 1 - dy.shape[2], 0), (0, 0, 0)]
            x = lax.pad(dy, jnp.zeros((), dy.dtype), pad)
            cols.append(lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=_DIMS))
        rows.append(jnp.stack(cols, 3))                   # (n, mh, mw, sw, cin)
    out = jnp.stack(rows, 2).reshape(n, mh * sh, mw * sw, cin)  # (n, mh, sh, mw, sw, cin) interleaved
    return out[:, :out_hw[0], :out_hw[1]]


def _conv(x, w, strides, pads):
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_DIMS)


def _weight_grad(x, w, strides, pads, dy):
    """d/dw of <dy, conv(x, w)>: lax's weight-gradient convolution."""
    return jax.vjp(lambda w: _conv(x, w, strides, pads), w)[1](dy)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _strided_conv(x, w, strides, pads):
    return _conv(x, w, strides, pads)


def _strided_conv_fwd(x, w, strides, pads):
    return _strided_conv(x, w, strides, pads), (x, w)


def _strided_conv_bwd(strides, pads, res, dy):
    x, w = res
    return conv_transpose(dy, w, strides, pads, x.shape[1:3]), _weight_grad(x, w, strides, pads, dy)


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_transpose(y: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads,
                   out_hw: tuple[int, int]) -> jax.Array:
    """The transpose (w.r.t. its input) of conv(x, w, strides, pads) applied to y, with x of
    spatial size out_hw. y: NHWC with w.shape[3] channels; w: HWIO of that conv. Returns NHWC
    with w.shape[2] channels: Keras' Conv2DTranspose, and a strided conv's input gradient."""
    return _phase_convs(y, w, strides, pads, out_hw)


def _conv_transpose_fwd(y, w, strides, pads, out_hw):
    return conv_transpose(y, w, strides, pads, out_hw), (y, w)


def _conv_transpose_bwd(strides, pads, out_hw, res, g):
    # out = C_w^T y with C_w = conv(., w): dy = C_w g, and d/dw <g, C_w^T y> = d/dw <C_w g, y>.
    y, w = res
    return _strided_conv(g, w, strides, pads), _weight_grad(g, w, strides, pads, y)


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """Drop-in for `lax.conv_general_dilated` (pass it to `nn.Conv(conv_general_dilated=...)`).

    2-D NHWC strided convolutions take the sub-pixel backward pass; every other case is lax's.
    """
    plain = (lhs.ndim != 4 or max(window_strides) == 1 or any(d != 1 for d in (lhs_dilation or (1,)))
             or any(d != 1 for d in (rhs_dilation or (1,))) or feature_group_count != 1
             or batch_group_count != 1 or precision is not None or preferred_element_type is not None
             or lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
             != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DIMS))
    if plain:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, batch_group_count,
                                        precision, preferred_element_type)
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
    return _strided_conv(lhs, rhs, tuple(window_strides), tuple(map(tuple, padding)))
