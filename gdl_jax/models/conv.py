"""Strided convolutions whose transposed direction runs as a sub-pixel (stride-1) convolution.

XLA:CPU computes a stride-s transposed convolution (the input gradient of a strided conv, and
a ConvTranspose layer's forward pass) as a convolution over a zero-dilated input: a slow path
(../shared/PERF_NOTES.md). The same result is a stride-1 convolution of the un-dilated input
with s*s phase kernels gathered from the weights, followed by depth-to-space. Parameters and
results are those of the plain convolution; only the backward computation changes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")


def _phase_taps(kernel: int, stride: int, pad_lo: int) -> tuple[int, np.ndarray]:
    """For one spatial axis of a strided conv y[i] = sum_t x[s*i + t - p] w[t]:
    the transposed op is dx[s*m + a] = sum_j dy[m + d0 + j] * w[taps[j, a]].

    Returns (d0, taps) with taps[j, a] = -1 where no weight contributes (a zero tap).
    """
    pairs = [(a, t, (a + pad_lo - t) // stride) for a in range(stride) for t in range(kernel)
             if (a + pad_lo - t) % stride == 0]
    d0 = min(d for *_, d in pairs)
    taps = -np.ones((max(d for *_, d in pairs) - d0 + 1, stride), np.int32)
    for a, t, d in pairs:
        taps[d - d0, a] = t
    return d0, taps


def conv_transpose_subpixel(dy: jax.Array, w: jax.Array, strides: tuple[int, int],
                            pads: tuple[tuple[int, int], ...], out_hw: tuple[int, int]) -> jax.Array:
    """The transpose (w.r.t. its input) of conv(x, w, strides, pads) applied to dy, with x of
    spatial size out_hw. dy: NHWC with w.shape[3] channels; w: HWIO. Returns NHWC, w.shape[2] channels.
    """
    (kh, kw, cin, cout), (sh, sw) = w.shape, strides
    (dh, th), (dw, tw) = (_phase_taps(kh, sh, pads[0][0]), _phase_taps(kw, sw, pads[1][0]))
    mh, mw = -(-out_hw[0] // sh), -(-out_hw[1] // sw)   # phase grid size
    wp = jnp.pad(w, ((0, 1), (0, 1), (0, 0), (0, 0)))   # index -1 -> the zero tap
    k = wp[th[:, None, :, None], tw[None, :, None, :]]  # (Lh, Lw, sh, sw, cin, cout)
    lh, lw = th.shape[0], tw.shape[0]
    k = k.transpose(0, 1, 5, 2, 3, 4).reshape(lh, lw, cout, sh * sw * cin)
    pad = ((0, 0), (-dh, mh + dh + lh - 1 - dy.shape[1]), (-dw, mw + dw + lw - 1 - dy.shape[2]), (0, 0))
    dy = lax.pad(dy, jnp.zeros((), dy.dtype), [(lo, hi, 0) for lo, hi in pad])
    out = lax.conv_general_dilated(dy, k, (1, 1), "VALID", dimension_numbers=_DIMS)
    n = out.shape[0]
    out = out.reshape(n, mh, mw, sh, sw, cin).transpose(0, 1, 3, 2, 4, 5)
    return out.reshape(n, mh * sh, mw * sw, cin)[:, :out_hw[0], :out_hw[1]]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _strided_conv(x, w, strides, pads):
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_DIMS)


def _fwd(x, w, strides, pads):
    return _strided_conv(x, w, strides, pads), (x, w)


def _bwd(strides, pads, res, dy):
    x, w = res
    _, w_vjp = jax.vjp(lambda w: lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_DIMS), w)
    return conv_transpose_subpixel(dy, w, strides, pads, x.shape[1:3]), w_vjp(dy)[0]


_strided_conv.defvjp(_fwd, _bwd)


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
