"""Convolutions and their transposes in forms that run fast on XLA:CPU: sub-pixel, im2col and
space-to-depth.

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

A strided conv that is not thin, has few input channels and a kernel of whole stride blocks
(sh*sw*cin <= S2D_CHANNELS, e.g. small_conv's 3-channel 4x4 stride-2 first layer) runs forward as
space-to-depth: the input cut into sh x sw blocks of sh*sw*cin channels and a stride-1 conv with
(kh/sh) x (kw/sw) taps (0.95 ms against lax's 1.75 at batch 128, measured on a 2-core Zen 4);
its gradients are the sub-pixel form's.

All of these are differentiable again (reverse over reverse, as a gradient penalty needs).
Parameters and results are those of lax's ops; only the computation changes.

Which form a layer takes ('lax', 'im2col', 'subpixel', 's2d') depends on the mode of `set_forms`
(default: $GDL_JAX_CONV, else 'auto'):
- 'auto': chosen by measurement on this machine, like cuDNN's benchmark mode, for the whole
  train step: the loop (gdl_jax.train.autotune) compiles and times its dispatch under 'rule',
  'lax' and 'layer' once and trains with the fastest; the verdict is cached in
  $GDL_CACHE_DIR/conv_forms.json under the device's model and jaxlib's version. The rules below
  were measured on one CPU and did not carry over to another (a 2-core Zen 5 ran the CNN at
  0.69-0.88x torch with them). Where nothing was timed (outside a train loop: analyses,
  `gdl_jax.load`; several processes), 'auto' is `untuned_mode()`: 'rule' on CPU, lax's own
  convolutions on GPU and TPU, which the tuner also keeps there unless another mode is faster
  by its margin (the rewrites were measured on CPUs only).
- 'layer': each shape's forms timed alone (forward and both gradients, once per shape, cached;
  the weight gradient alone where the weights are differentiated and the input is data, as in a
  first layer, whose input gradient the step never computes). That can flip the verdict (the
  CIFAR CNN's first layer at batch 32 on a Zen 4, forward and weight gradient: lax 2.9-3.7 ms,
  im2col 3.9-4.6; with the input gradient too: im2col 4.3-5.3, lax 6.0-6.3).
  Alone, a layer's fastest form can make a slower step: XLA:CPU fuses a form with its
  neighbours (small_conv at batch 128 on a Zen 4: 7.9 ms/step with each layer's fastest, 5.2
  with the rules), hence 'auto' times whole steps.
- 'rule': the fixed rules above.
- 'untuned': 'auto' without timing anything: `untuned_mode()` (quick runs, tests of behaviour).
- 'lax', 'im2col', 'subpixel', 's2d': that form wherever it applies ('subpixel' and 's2d' are
  lax's for a stride-1 conv; an UpSampling2D + conv, `upsample_conv`, has the 'subpixel' and
  'lax' forms).
Multi-process runs use `untuned_mode()` for 'auto' and 'layer': each process would measure on its
own and could compile a different program.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
import pathlib
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax import lax

from gdl_jax import hardware, runtime
from gdl_jax.errors import ConfigError
from gdl_jax.outputs import atomic_write_text

_DIMS = ("NHWC", "HWIO", "NHWC")
Pads = tuple[tuple[int, int], tuple[int, int]]
S2D_CHANNELS = 16  # 4x4 stride-2 forward at batch 32 (2-core Zen 4): cin 4 0.35 ms vs lax 0.52; cin 8 0.72 vs 0.60
THIN_PATCH = 32  # im2col wins up to here (27: 2.7 -> 1.6 ms for a 1-channel 3x3 layer; 48: slower)


def _is_thin(w: jax.Array) -> bool:
    return w.shape[0] * w.shape[1] * w.shape[2] <= THIN_PATCH


def _use_im2col(x: jax.Array, w: jax.Array) -> bool:
    """A thin patch, or a kernel larger than the input (both slow as XLA:CPU convs)."""
    return _is_thin(w) or w.shape[0] > x.shape[1] or w.shape[1] > x.shape[2]


def _use_s2d(w: jax.Array, strides: tuple[int, int]) -> bool:
    """A strided conv of few input channels (s*s*cin <= S2D_CHANNELS) whose kernel is a whole
    number of stride blocks: space-to-depth gives the conv kernels more channels and no zero taps."""
    (kh, kw, cin, _), (sh, sw) = w.shape, strides
    return max(strides) > 1 and kh % sh == 0 and kw % sw == 0 and sh * sw * cin <= S2D_CHANNELS


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


def _space_to_depth_conv(x, w, strides, pads):
    """conv(x, w, strides, pads) as a stride-1 VALID conv of the space-to-depth input: each
    axis's kernel is zero-padded to a multiple of its stride, the padded input cut into sh x sw
    blocks (sh*sw*cin channels) and the kernel into blocks the same way. A
    3-channel 4x4 stride-2 layer becomes a 12-channel 2x2 one, which the conv kernels handle
    better."""
    (kh, kw, cin, cout), (sh, sw), n = w.shape, strides, x.shape[0]
    ho = (x.shape[1] + sum(pads[0]) - kh) // sh + 1
    wo = (x.shape[2] + sum(pads[1]) - kw) // sw + 1
    bh, bw = -(-kh // sh), -(-kw // sw)                  # kernel taps per axis, in blocks
    lh, lw = sh * (ho - 1 + bh), sw * (wo - 1 + bw)      # padded input extent: whole blocks
    x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (pads[0][0], lh - pads[0][0] - x.shape[1], 0),
                                           (pads[1][0], lw - pads[1][0] - x.shape[2], 0), (0, 0, 0)])
    x = x.reshape(n, lh // sh, sh, lw // sw, sw, cin).transpose(0, 1, 3, 2, 4, 5)
    w = jnp.pad(w, ((0, bh * sh - kh), (0, bw * sw - kw), (0, 0), (0, 0)))
    w = w.reshape(bh, sh, bw, sw, cin, cout).transpose(0, 2, 1, 3, 4, 5)
    return lax.conv_general_dilated(x.reshape(n, lh // sh, lw // sw, sh * sw * cin),
                                    w.reshape(bh, bw, sh * sw * cin, cout), (1, 1), "VALID", dimension_numbers=_DIMS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _s2d_conv(x, w, strides, pads):
    return _space_to_depth_conv(x, w, strides, pads)


def _s2d_conv_fwd(x, w, strides, pads):
    return _s2d_conv(x, w, strides, pads), (x, w)


_s2d_conv.defvjp(_s2d_conv_fwd, _strided_conv_bwd)   # backward as the sub-pixel form's


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


def _lax_conv_transpose(y, w, strides, pads, out_hw):
    """The transpose of lax's conv, by JAX's own linear transpose (gradients by autodiff)."""
    x = jax.ShapeDtypeStruct((y.shape[0], *out_hw, w.shape[2]), y.dtype)
    return jax.linear_transpose(lambda x: _conv(x, w, strides, pads), x)(y)[0]


def conv_transpose(y: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads,
                   out_hw: tuple[int, int]) -> jax.Array:
    """The transpose (w.r.t. its input) of conv(x, w, strides, pads) applied to y, with x of
    spatial size out_hw. y: NHWC with w.shape[3] channels; w: HWIO of that conv. Returns NHWC
    with w.shape[2] channels: Keras' Conv2DTranspose, and a strided conv's input gradient."""
    forms = {"lax": _lax_conv_transpose, "im2col": _thin_conv_transpose, "subpixel": _subpixel_conv_transpose}
    rule = "im2col" if _is_thin(w) else "subpixel"
    form = _choose("conv_transpose", forms, rule, y, w, (strides, pads, out_hw))
    return forms[form](y, w, strides, pads, out_hw)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """Drop-in for `lax.conv_general_dilated` (pass it to `nn.Conv(conv_general_dilated=...)`).

    2-D NHWC convolutions take the form `set_forms` chooses (by rule: im2col + matmul for a
    thin patch or a kernel larger than the input, space-to-depth for a strided one of few input
    channels, else the sub-pixel backward pass for a strided one); every other case is lax's.
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
    forms = {"lax": _conv, "im2col": _thin_conv}
    if max(strides) > 1:
        forms["subpixel"] = _strided_conv
        forms["s2d"] = _s2d_conv
    rule = ("im2col" if _use_im2col(lhs, rhs) else "s2d" if _use_s2d(rhs, strides)
            else "subpixel" if max(strides) > 1 else "lax")
    form = _choose("conv", forms, rule, lhs, rhs, (strides, pads))
    return forms[form](lhs, rhs, strides, pads)


FORMS_ENV = "GDL_JAX_CONV"
FORCED = ("lax", "im2col", "subpixel", "s2d")   # modes that force one form wherever it applies
MODES = ("auto", "layer", "rule", "untuned", *FORCED)
_mode: str | None = None                 # set_forms(); None: $GDL_JAX_CONV, else 'auto'
_cache: dict[str, dict] | None = None    # this machine's measurements, as in the cache file
traced = 0                               # convolutions traced so far (those that choose a form)


def check_mode(mode: str) -> str:
    """mode itself; a ConfigError unless it is one of MODES."""
    if mode not in MODES:
        raise ConfigError(f"unknown convolution form mode {mode!r}; expected one of {list(MODES)}")
    return mode


def set_forms(mode: str | None) -> None:
    """Sets how convolutions choose their form (see the module docstring) for what is traced
    from now on; None goes back to $GDL_JAX_CONV, else 'auto'."""
    global _mode
    _mode = mode if mode is None else check_mode(mode)


@contextlib.contextmanager
def forms(mode: str | None) -> Iterator[None]:
    """set_forms(mode) for what is traced inside the block, then the mode before it."""
    before = _mode
    set_forms(mode)
    try:
        yield
    finally:
        set_forms(before)


def forms_mode() -> str:
    """The mode in force: set_forms's, else $GDL_JAX_CONV's, else 'auto'."""
    mode = _mode or os.environ.get(FORMS_ENV) or "auto"
    if mode not in MODES:
        raise ConfigError(f"{FORMS_ENV}={mode!r} is not one of {list(MODES)}")
    return mode


def _cache_file() -> pathlib.Path:
    return runtime.cache_dir() / "conv_forms.json"


def machine() -> str:
    """What the cached measurements hold for: the device's model, backend and jaxlib version."""
    return f"{hardware.device_model()} | {jax.default_backend()} | jaxlib {importlib.metadata.version('jaxlib')}"


def cached() -> dict[str, dict]:
    """This machine's measurements so far ({key: entry}, as in $GDL_CACHE_DIR/conv_forms.json)."""
    global _cache
    if _cache is None:
        try:
            _cache = json.loads(_cache_file().read_text()).get(machine(), {})
        except (OSError, ValueError):   # no cache yet, or an unreadable one: measure again
            _cache = {}
    return _cache


def cache(key: str, entry: dict) -> None:
    """Keeps one measurement, in memory and in the cache file (written whole to a temporary file,
    then renamed, so a reader never sees half of it)."""
    cached()[key] = entry
    path = _cache_file()
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    saved.setdefault(machine(), {})[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(saved, indent=1, sort_keys=True))
    except OSError as e:   # a read-only cache dir costs a re-measurement next run, not the run
        logging.warning("could not cache convolution forms in %s: %s", path, e)


def _tracer_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(the tracer types of a gradient being taken, the tracer type of a staged value). JAX has
    no public test of "is this value differentiated", so these are its private types; where
    they move, every layer is timed with both gradients."""
    try:
        from jax._src.interpreters import ad, partial_eval
    except ImportError:
        return (), ()
    grads = tuple(t for t in (getattr(ad, "JVPTracer", None), getattr(ad, "LinearizeTracer", None)) if t)
    staged = getattr(partial_eval, "DynamicJaxprTracer", None)
    return (grads, (staged,)) if grads and staged else ((), ())


_GRAD_TRACERS, _STAGED_TRACERS = _tracer_types()


def _grads_taken(x, w) -> tuple[int, ...]:
    """Which of (input, weights) to time gradients for: (1,) when the weights are a gradient
    tracer and the input plainly is not (a concrete array or a value staged by jit: a first
    layer fed with data), else both (e.g. an input wrapped by vmap, which may hide a gradient)."""
    data = not isinstance(x, jax.core.Tracer) or type(x) in _STAGED_TRACERS
    return (1,) if isinstance(w, _GRAD_TRACERS) and data else (0, 1)


def time_forms(forms: dict[str, Callable], x_shape: tuple, w_shape: tuple, dtype, static: tuple,
               iters: int = 5, argnums: tuple[int, ...] = (0, 1)) -> dict[str, float]:
    """Median ms of each form's forward pass with the gradients w.r.t. `argnums` of (input,
    weights), jitted, on random data of the given shapes."""
    with jax.ensure_compile_time_eval():
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal(x_shape), dtype)
        w = jnp.asarray(rng.standard_normal(w_shape), dtype)
        out = {}
        for name, fn in forms.items():
            step = jax.jit(jax.grad(lambda x, w, fn=fn: 0.5 * jnp.sum(fn(x, w, *static) ** 2), argnums))
            out[name] = 1e3 * hardware.median_seconds(lambda: jax.block_until_ready(step(x, w)), iters)
    return out


def untuned_mode() -> str:
    """The mode 'auto' means where no step was timed, and the one the tuner keeps unless another
    is faster by its margin: 'rule' on CPU, where the rules were measured; 'lax' on GPU and TPU,
    whose convolution libraries are tuned for lax's convolutions. (On GPU/TPU the tuner's cache
    key is the step lowered under 'lax', which a change of the rules leaves alone: clear
    $GDL_CACHE_DIR/conv_forms.json after one.)"""
    return "rule" if jax.default_backend() == "cpu" else "lax"


def _choose(op: str, forms: dict[str, Callable], rule: str, x: jax.Array, w: jax.Array, static: tuple) -> str:
    """The form of one call, by the mode in force (under 'layer', measured once per shape)."""
    global traced
    traced += 1
    mode = forms_mode()
    if mode in ("auto", "untuned") or jax.process_count() > 1 and mode == "layer":   # nothing timed
        mode = untuned_mode()
    if mode in FORCED:
        return mode if mode in forms else "lax"
    if mode == "rule":
        return rule
    argnums = _grads_taken(x, w)
    key = f"{op} x{list(x.shape)} w{list(w.shape)} {json.dumps(static)} {jnp.dtype(x.dtype).name}"
    key += " weight grad only" if argnums == (1,) else ""
    entry = cached().get(key)
    if entry is None or entry.get("form") not in forms:
        ms = time_forms(forms, x.shape, w.shape, x.dtype, static, argnums=argnums)
        entry = {"form": min(ms, key=ms.get), "ms": {k: round(v, 4) for k, v in ms.items()}}
        logging.info("convolution forms for %s: %s -> %s", key,
                     ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()), entry["form"])
        cache(key, entry)
    return entry["form"]


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


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Keras UpSampling2D: every row and column repeated `factor` times (NHWC)."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def upsample_then_conv(x: jax.Array, w: jax.Array, factor: int = 2) -> jax.Array:
    """UpSampling2D then lax's stride-1 'same' conv, as Keras computes it."""
    return lax.conv_general_dilated(upsample_nearest(x, factor), w, (1, 1), "SAME", dimension_numbers=_DIMS)


def _subpixel_upsample_conv(x: jax.Array, w: jax.Array, factor: int) -> jax.Array:
    """The same on the low-resolution input: one stride-1 conv of x whose kernels are summed
    from w's taps per output phase, then depth-to-space."""
    (kh, kw, cin, cout), n, h, wd = w.shape, *x.shape[:3]
    (mh, oh), (mw, ow) = _upsample_taps(kh, factor, (kh - 1) // 2), _upsample_taps(kw, factor, (kw - 1) // 2)
    # k[o, p, i, a, b, c] = sum_{t, u} mh[a, o, t] mw[b, p, u] w[t, u, i, c]
    k = jnp.einsum("aot,bpu,tuic->opiabc", mh, mw, w).reshape(mh.shape[1], mw.shape[1], cin, -1).astype(w.dtype)
    pads = ((-oh, oh + mh.shape[1] - 1), (-ow, ow + mw.shape[1] - 1))
    y = conv_general_dilated(x, k, (1, 1), pads, dimension_numbers=_DIMS)
    y = y.reshape(n, h, wd, factor, factor, cout).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(n, h * factor, wd * factor, cout)


def upsample_conv(x: jax.Array, w: jax.Array, factor: int = 2) -> jax.Array:
    """conv(upsample_nearest(x, factor), w) with stride 1 and 'same' padding (Keras'
    UpSampling2D + Conv2D). x: NHWC, w: HWIO. Its form is the mode's like every conv's:
    'subpixel' (the rule) computes it on the low-resolution input, each output phase's kernel
    summed from the taps that land on the same input pixel (3x3 instead of 5x5 for a 5x5 kernel
    and factor 2: 0.36x the FLOPs); 'lax' upsamples, then runs lax's conv (what GPU and TPU
    take unless a measurement there says otherwise)."""
    forms = {"lax": upsample_then_conv, "subpixel": _subpixel_upsample_conv}
    return forms[_choose("upsample_conv", forms, "subpixel", x, w, (factor,))](x, w, factor)
