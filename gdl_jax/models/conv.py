"""Convolutions and their transposes in forms that run fast on XLA:CPU: sub-pixel and im2col.

XLA:CPU computes a stride-s transposed convolution (the input gradient of a strided conv, and
a ConvTranspose layer's forward pass) as a convolution over a zero-dilated input: a slow path
(21 ms of a 120 ms CNN step at batch 128, measured on a 2-core CPU). The same result is s*s
stride-1 convolutions of the un-dilated input, one per output phase (sub-pixel position) with
only the kernel taps that reach it, interleaved (depth-to-space). The two public functions pair
up so that every direction runs fast:

- a strided conv (`conv_general_dilated`): lax's forward and weight gradient; its input
  gradient is the phase convolutions.
- a transposed conv (`conv_transpose`): the phase convolutions forward; its input gradient is
  the strided conv, its weight gradient lax's strided weight gradient.

A conv whose patch holds few values (kh * kw * cin <= THIN_PATCH, e.g. a 1- or 3-channel first
layer, or the 1-channel output of a decoder seen as a transpose) is a poor fit for the conv
kernels; it runs instead as im2col + matmul, its transpose as matmul + col2im, its weight
gradient as one matmul over the patches. So does a conv whose kernel is larger than its input
(the GAN discriminator's 5x5 conv on 4x4 maps): XLA:CPU takes a slow path there, 200 ms forward
and 194 ms input gradient against 18 ms and 10 ms as im2col (128 -> 128 channels, batch 64,
measured on a 2-core AVX2 CPU).

All of these are differentiable again (reverse over reverse, as a gradient penalty needs).
Parameters and results are those of lax's ops; only the computation changes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")
Pads = tuple[tuple[int, int], tuple[int, int]]
THIN_PATCH = 32  # im2col wins up to here (27: 2.7 -> 1.6 ms for a 1-channel 3x3 layer; 48: slower)


def _is_thin(w: jax.Array) -> bool:
    return w.shape[0] * w.shape[1] * w.shape[2] <= THIN_PATCH


def _use_im2col(x: jax.Array, w: jax.Array) -> bool:
    """A thin patch, or a kernel larger than the input (both slow as XLA:CPU convs)."""
    return _is_thin(w) or w.shape[0] > x.shape[1] or w.shape[1] > x.shape[2]


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


def _im2col(x: jax.Array, kh: int, kw: int, strides: tuple[int, int], pads: Pads) -> jax.Array:
    """(n, ho, wo, kh * kw * cin) patches of conv(x, w, strides, pads), in w.reshape(-1, cout)'s order."""
    (sh, sw), n, cin = strides, x.shape[0], x.shape[3]
    ho = (x.shape[1] + sum(pads[0]) - kh) // sh + 1
    wo = (x.shape[2] + sum(pads[1]) - kw) // sw + 1
    xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)])
    return jnp.concatenate([lax.slice(xp, (0, t, u, 0), (n, t + (ho - 1) * sh + 1, u + (wo - 1) * sw + 1, cin),
                                      (1, sh, sw, 1)) for t in range(kh) for u in range(kw)], axis=-1)


def _col2im(cols: jax.Array, x_shape: tuple[int, ...], kh: int, kw: int, strides: tuple[int, int],
            pads: Pads) -> jax.Array:
    """The transpose of _im2col: each patch value added back where it came from."""
    return jax.linear_transpose(lambda x: _im2col(x, kh, kw, strides, pads),
                                jax.ShapeDtypeStruct(x_shape, cols.dtype))(cols)[0]


def _patch_weight_grad(cols: jax.Array, dy: jax.Array, w_shape: tuple[int, ...]) -> jax.Array:
    """sum over rows (n, h, w) of cols^T dy, as one matmul with the rows contracted, made in the
    kernel's (patch, out) layout (a transpose after it would sit behind the 'sharded' backend's
    gradient all-reduce; see gdl_jax.models.dense)."""
    rows = lambda a: a.reshape(-1, a.shape[-1])
    return lax.dot_general(rows(cols), rows(dy), (((0,), (0,)), ((), ()))).reshape(w_shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _thin_conv(x, w, strides, pads):
    return _im2col(x, *w.shape[:2], strides, pads) @ w.reshape(-1, w.shape[3])


def _thin_conv_fwd(x, w, strides, pads):
    cols = _im2col(x, *w.shape[:2], strides, pads)
    return cols @ w.reshape(-1, w.shape[3]), (cols, w, x.shape)


def _thin_conv_bwd(strides, pads, res, dy):
    cols, w, x_shape = res
    return (_thin_conv_transpose(dy, w, strides, pads, x_shape[1:3]),
            _patch_weight_grad(cols, dy, w.shape))


_thin_conv.defvjp(_thin_conv_fwd, _thin_conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _thin_conv_transpose(y, w, strides, pads, out_hw):
    x_shape = (y.shape[0], *out_hw, w.shape[2])
    return _col2im(y @ w.reshape(-1, w.shape[3]).T, x_shape, *w.shape[:2], strides, pads)


def _thin_conv_transpose_fwd(y, w, strides, pads, out_hw):
    return _thin_conv_transpose(y, w, strides, pads, out_hw), (y, w)


def _thin_conv_transpose_bwd(strides, pads, out_hw, res, g):
    y, w = res
    return _thin_conv(g, w, strides, pads), _patch_weight_grad(_im2col(g, *w.shape[:2], strides, pads), y, w.shape)


_thin_conv_transpose.defvjp(_thin_conv_transpose_fwd, _thin_conv_transpose_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _strided_conv(x, w, strides, pads):
    return _conv(x, w, strides, pads)


def _strided_conv_fwd(x, w, strides, pads):
    return _strided_conv(x, w, strides, pads), (x, w)


def _strided_conv_bwd(strides, pads, res, dy):
    x, w = res
    return _subpixel_conv_transpose(dy, w, strides, pads, x.shape[1:3]), _weight_grad(x, w, strides, pads, dy)


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _subpixel_conv_transpose(y, w, strides, pads, out_hw):
    return _phase_convs(y, w, strides, pads, out_hw)


def _subpixel_conv_transpose_fwd(y, w, strides, pads, out_hw):
    return _subpixel_conv_transpose(y, w, strides, pads, out_hw), (y, w)


def _subpixel_conv_transpose_bwd(strides, pads, out_hw, res, g):
    # out = C_w^T y with C_w = conv(., w): dy = C_w g, and d/dw <g, C_w^T y> = d/dw <C_w g, y>.
    y, w = res
    return _strided_conv(g, w, strides, pads), _weight_grad(g, w, strides, pads, y)


_subpixel_conv_transpose.defvjp(_subpixel_conv_transpose_fwd, _subpixel_conv_transpose_bwd)


def conv_transpose(y: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads,
                   out_hw: tuple[int, int]) -> jax.Array:
    """The transpose (w.r.t. its input) of conv(x, w, strides, pads) applied to y, with x of
    spatial size out_hw. y: NHWC with w.shape[3] channels; w: HWIO of that conv. Returns NHWC
    with w.shape[2] channels: Keras' Conv2DTranspose, and a strided conv's input gradient."""
    if _is_thin(w):
        return _thin_conv_transpose(y, w, strides, pads, out_hw)
    return _subpixel_conv_transpose(y, w, strides, pads, out_hw)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """Drop-in for `lax.conv_general_dilated` (pass it to `nn.Conv(conv_general_dilated=...)`).

    2-D NHWC convolutions with a thin patch or a kernel larger than the input run as im2col +
    matmul, strided ones take the sub-pixel backward pass; every other case is lax's.
    """
    plain = (lhs.ndim != 4 or any(d != 1 for d in (lhs_dilation or (1,)))
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
    strides, pads = tuple(window_strides), tuple(map(tuple, padding))
    if _use_im2col(lhs, rhs):
        return _thin_conv(lhs, rhs, strides, pads)
    if max(strides) == 1:
        return lax.conv_general_dilated(lhs, rhs, strides, pads, dimension_numbers=_DIMS)
    return _strided_conv(lhs, rhs, strides, pads)


def _upsample_taps(kernel: int, factor: int, pad_lo: int) -> tuple[np.ndarray, int]:
    """For one axis of y = conv(upsample_nearest(x, factor), w) (stride 1, padding pad_lo):
    y[factor * i + a] = sum_o x[i + o] sum_t M[a, o - o_min, t] w[t]. Returns (M, o_min), M of
    shape (factor, offsets, kernel) with 0/1 entries: which taps land on which input pixel."""
    offsets = [(a + t - pad_lo) // factor for a in range(factor) for t in range(kernel)]
    o_min = min(offsets)
    m = np.zeros((factor, max(offsets) - o_min + 1, kernel), np.float32)
    for a in range(factor):
        for t in range(kernel):
            m[a, (a + t - pad_lo) // factor - o_min, t] = 1
    return m, o_min


def upsample_conv(x: jax.Array, w: jax.Array, factor: int = 2) -> jax.Array:
    """conv(upsample_nearest(x, factor), w) with stride 1 and 'same' padding (Keras'
    UpSampling2D + Conv2D), computed on the low-resolution input: the output's factor x factor
    phases are one stride-1 conv of x with kernels summed from w's taps (3x3 instead of 5x5 for
    a 5x5 kernel and factor 2: 0.36x the FLOPs), then depth-to-space. x: NHWC, w: HWIO."""
    (kh, kw, cin, cout), n, h, wd = w.shape, *x.shape[:3]
    (mh, oh), (mw, ow) = _upsample_taps(kh, factor, (kh - 1) // 2), _upsample_taps(kw, factor, (kw - 1) // 2)
    # k[o, p, i, a, b, c] = sum_{t, u} mh[a, o, t] mw[b, p, u] w[t, u, i, c]
    k = jnp.einsum("aot,bpu,tuic->opiabc", mh, mw, w).reshape(mh.shape[1], mw.shape[1], cin, -1).astype(w.dtype)
    pads = ((-oh, oh + mh.shape[1] - 1), (-ow, ow + mw.shape[1] - 1))
    y = conv_general_dilated(x, k, (1, 1), pads, dimension_numbers=_DIMS)
    y = y.reshape(n, h, wd, factor, factor, cout).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(n, h * factor, wd * factor, cout)
