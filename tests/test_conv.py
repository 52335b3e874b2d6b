"""The sub-pixel, im2col and space-to-depth forms of convolutions and transposed convolutions equal
lax's, value and gradients (first and second order)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import conv_path
from jax import lax

from gdl_jax import models
from gdl_jax.models import conv

DIMS = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("size, kernel, stride, padding, cin, cout", [
    (32, 3, 2, "SAME", 3, 32),    # the CIFAR CNN's stride-2 layers
    (32, 4, 2, "SAME", 3, 10),    # the small conv net's first layer
    (28, 5, 2, "SAME", 1, 64),    # the GAN discriminator's
    (7, 3, 2, "SAME", 4, 5),      # odd sizes
    (9, 3, 2, "VALID", 2, 3),
    (12, 3, 3, "SAME", 2, 2),     # stride 3
    (8, 3, 1, "SAME", 2, 3),      # stride 1: lax's own path
    (4, 5, 1, "SAME", 8, 8),      # a kernel larger than its input (the GAN discriminator's last conv): im2col
    (3, 5, 2, "SAME", 4, 6),
])
@pytest.mark.parametrize("thin_patch", [0, 10**6])   # the phase path / the im2col path
def test_gradients_match_lax(size, kernel, stride, padding, cin, cout, thin_patch, monkeypatch):
    monkeypatch.setattr(conv, "THIN_PATCH", thin_patch)
    x = jax.random.normal(jax.random.key(0), (2, size, size, cin))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, cin, cout))
    loss = lambda fn: lambda x, w: jnp.sum(jnp.sin(fn(x, w, (stride, stride), padding, dimension_numbers=DIMS)))
    want = jax.jit(jax.value_and_grad(loss(lax.conv_general_dilated), (0, 1)))(x, w)
    got = jax.jit(jax.value_and_grad(loss(conv.conv_general_dilated), (0, 1)))(x, w)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_cnn_train_gradients_do_not_depend_on_the_backward_form():
    x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
    y = jnp.arange(4)
    fast, plain = models.build("cnn"), models.build("cnn", subpixel_backward=False)
    variables = plain.init(jax.random.key(1), x)

    def grads(model):
        def loss(params):
            logits, _ = model.apply({**variables, "params": params}, x, train=True,
                                    rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return jax.jit(jax.grad(loss))(variables["params"])

    for a, b in zip(jax.tree.leaves(grads(fast)), jax.tree.leaves(grads(plain))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # and the two took different paths (a flag that did nothing would pass the check above)
    forward = lambda model: lambda x: model.apply(variables, x, train=False)
    assert (conv_path(forward(fast), x), conv_path(forward(plain), x)) == ("custom", "lax")


@pytest.mark.parametrize("size, kernel, stride, padding", [
    (7, 3, 2, "SAME"), (14, 3, 2, "SAME"), (8, 4, 2, "SAME"), (5, 5, 2, "SAME"),
    (6, 1, 2, "SAME"),    # a phase no kernel tap reaches: zeros
    (4, 2, 3, "VALID"),   # stride 3 with gaps
    (7, 3, 1, "SAME"),
])
@pytest.mark.parametrize("thin_patch", [0, 10**6])
def test_conv_transpose_matches_lax_in_value_and_gradients(size, kernel, stride, padding, thin_patch, monkeypatch):
    """conv_transpose(y, w) is the input-transpose of conv(., w): lax.conv_transpose with
    transpose_kernel=True, and its custom gradients match lax's autodiff."""
    monkeypatch.setattr(conv, "THIN_PATCH", thin_patch)
    cin, cout = 3, 4
    out_hw = (size * stride, size * stride) if padding == "SAME" else ((size - 1) * stride + kernel,) * 2
    pads = tuple(map(tuple, lax.padtype_to_pads(out_hw, (kernel, kernel), (stride, stride), padding)))
    y = jax.random.normal(jax.random.key(0), (2, size, size, cout))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, cin, cout))

    def want_fn(y, w):   # the transpose of the forward conv, by lax's own linear transpose
        return jax.linear_transpose(lambda x: lax.conv_general_dilated(x, w, (stride, stride), pads,
                                                                     dimension_numbers=DIMS),
                                    jnp.zeros((2, *out_hw, cin)))(y)[0]

    got_fn = lambda y, w: conv.conv_transpose(y, w, (stride, stride), pads, out_hw)
    np.testing.assert_allclose(got_fn(y, w), want_fn(y, w), rtol=1e-4, atol=1e-4)
    loss = lambda fn: lambda y, w: jnp.sum(jnp.sin(fn(y, w)))
    got = jax.jit(jax.grad(loss(got_fn), (0, 1)))(y, w)
    want = jax.jit(jax.grad(loss(want_fn), (0, 1)))(y, w)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("thin_patch, mode", [(0, "rule"), (10**6, "rule"), (0, "s2d")])
def test_second_order_gradients_match_lax(thin_patch, mode, monkeypatch):
    """A gradient penalty differentiates the input gradient again (WGAN-GP): the custom
    rules must be differentiable and agree with lax."""
    monkeypatch.setattr(conv, "THIN_PATCH", thin_patch)
    monkeypatch.setenv(conv.FORMS_ENV, mode)
    x = jax.random.normal(jax.random.key(0), (2, 12, 12, 3))
    w1 = jax.random.normal(jax.random.key(1), (3, 3, 3, 8)) * 0.3
    w2 = jax.random.normal(jax.random.key(2), (3, 3, 8, 4)) * 0.3

    def penalty(fn):
        def critic(x, w1, w2):
            h = jnp.tanh(fn(x, w1, (2, 2), "SAME", dimension_numbers=DIMS))
            return jnp.sum(fn(h, w2, (2, 2), "SAME", dimension_numbers=DIMS) ** 2)
        return lambda w1, w2: jnp.sum(jax.grad(critic)(x, w1, w2) ** 2)

    got = jax.jit(jax.grad(penalty(conv.conv_general_dilated), (0, 1)))(w1, w2)
    want = jax.jit(jax.grad(penalty(lax.conv_general_dilated), (0, 1)))(w1, w2)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("size, kernel, factor, cin, cout", [
    (7, 5, 2, 6, 8),     # the GAN generator's UpSampling2D + 5x5 conv
    (5, 3, 2, 3, 4),
    (4, 4, 2, 2, 3),     # even kernel: 'same' pads (1, 2)
    (3, 5, 3, 2, 2),     # factor 3
    (6, 1, 2, 3, 5),
])
def test_upsample_conv_matches_upsampling_then_lax(size, kernel, factor, cin, cout):
    from gdl_jax.models.conv import upsample_nearest

    x = jax.random.normal(jax.random.key(0), (2, size, size + 1, cin))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, cin, cout))
    plain = lambda x, w: lax.conv_general_dilated(upsample_nearest(x, factor), w, (1, 1), "SAME",
                                                  dimension_numbers=DIMS)
    loss = lambda fn: lambda x, w: jnp.sum(jnp.sin(fn(x, w)))
    assert conv.upsample_conv(x, w, factor).shape == (2, size * factor, (size + 1) * factor, cout)
    want = jax.jit(jax.value_and_grad(loss(plain), (0, 1)))(x, w)
    got = jax.jit(jax.value_and_grad(loss(lambda x, w: conv.upsample_conv(x, w, factor)), (0, 1)))(x, w)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode, low_res", [("rule", True), ("subpixel", True), ("lax", False),
                                           ("im2col", False), ("s2d", False)])
def test_upsample_conv_takes_the_form_of_the_mode(mode, low_res, monkeypatch):
    """UpSampling2D + conv follows the mode like every conv: the sub-pixel form (a 3x3 kernel to
    4x the channels on the 7x7 input) by rule and when forced, else the upsampled 14x14 input
    through lax's 5x5 conv (what GPU/TPU take untuned); both equal Keras' in values."""
    from gdl_jax.models.conv import upsample_nearest

    monkeypatch.setenv(conv.FORMS_ENV, mode)
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 6))
    w = jax.random.normal(jax.random.key(1), (5, 5, 6, 8))
    text = str(jax.make_jaxpr(lambda x, w: conv.upsample_conv(x, w))(x, w))
    assert ("f32[3,3,6,32]" in text) is low_res and ("f32[2,14,14,6]" in text) is not low_res
    want = lax.conv_general_dilated(upsample_nearest(x), w, (1, 1), "SAME", dimension_numbers=DIMS)
    np.testing.assert_allclose(conv.upsample_conv(x, w), want, rtol=1e-4, atol=1e-4)


def test_upsample_conv_is_lax_where_nothing_was_timed_off_cpu(monkeypatch):
    monkeypatch.setenv(conv.FORMS_ENV, "untuned")
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    x, w = jnp.ones((2, 7, 7, 6)), jnp.ones((5, 5, 6, 8))
    assert "f32[2,14,14,6]" in str(jax.make_jaxpr(lambda x, w: conv.upsample_conv(x, w))(x, w))


@pytest.mark.parametrize("mode", ["lax", "im2col", "subpixel", "s2d"])
def test_every_forced_form_equals_lax_in_value_and_gradients(mode, monkeypatch):
    """The forms a mode can force, on a strided conv, a stride-1 conv and a transposed conv;
    where a form does not apply (stride 1 for 'subpixel' and 's2d', a transpose for 's2d'),
    lax's conv runs."""
    monkeypatch.setenv(conv.FORMS_ENV, mode)
    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 4))
    w = jax.random.normal(jax.random.key(1), (3, 3, 4, 5))
    pads = ((1, 1), (1, 1))
    cases = [(lambda x, w: conv.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=DIMS),
              lambda x, w: lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=DIMS), x),
             (lambda x, w: conv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DIMS),
              lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DIMS), x),
             (lambda y, w: conv.conv_transpose(y, w, (2, 2), pads, (9, 9)),
              lambda y, w: conv._lax_conv_transpose(y, w, (2, 2), pads, (9, 9)),
              jax.random.normal(jax.random.key(2), (2, 5, 5, 5)))]
    picks = []
    choose = conv._choose
    monkeypatch.setattr(conv, "_choose", lambda *a: picks.append(choose(*a)) or picks[-1])
    for got_fn, _, inp in cases:
        jax.make_jaxpr(got_fn)(inp, w)
    assert picks == {"lax": ["lax", "lax", "lax"], "im2col": ["im2col", "im2col", "im2col"],
                     "subpixel": ["subpixel", "lax", "subpixel"], "s2d": ["s2d", "lax", "lax"]}[mode]
    runs = ["lax" if p == "lax" else "custom" for p in picks]   # the pick is what runs
    assert [conv_path(got_fn, inp, w) for got_fn, _, inp in cases] == runs
    for got_fn, want_fn, inp in cases:
        loss = lambda fn: lambda a, w: jnp.sum(jnp.sin(fn(a, w)))
        got = jax.jit(jax.value_and_grad(loss(got_fn), (0, 1)))(inp, w)
        want = jax.jit(jax.value_and_grad(loss(want_fn), (0, 1)))(inp, w)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size, kernel, stride, padding, cin", [
    (32, 4, 2, "SAME", 3),    # the small conv net's first layer: the rule's space-to-depth case
    (7, 4, 2, "SAME", 2),     # odd size
    (9, 3, 2, "VALID", 2),    # an odd kernel: zero taps pad it to 4
    (9, 4, 2, "VALID", 2),    # the last input row reaches no output: cropped, not padded
    (12, 3, 3, "SAME", 1),    # stride 3
    (6, 5, 2, "SAME", 2),     # a kernel of 5 taps, 3 blocks of 2
])
def test_space_to_depth_matches_lax_in_value_and_gradients(size, kernel, stride, padding, cin):
    x = jax.random.normal(jax.random.key(0), (2, size, size + 1, cin))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, cin, 5))
    pads = tuple(map(tuple, lax.padtype_to_pads(x.shape[1:3], w.shape[:2], (stride, stride), padding)))
    loss = lambda fn: lambda x, w: jnp.sum(jnp.sin(fn(x, w, (stride, stride), pads)))
    text = str(jax.make_jaxpr(conv._s2d_conv, static_argnums=(2, 3))(x, w, (stride, stride), pads))
    assert text.count("conv_general_dilated") == 1 and "window_strides=(1, 1)" in text   # not lax's strided conv
    got = jax.jit(jax.value_and_grad(loss(conv._s2d_conv), (0, 1)))(x, w)
    want = jax.jit(jax.value_and_grad(loss(conv._conv), (0, 1)))(x, w)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    fwd = jax.jit(lambda x, w: conv._space_to_depth_conv(x, w, (stride, stride), pads))   # the form itself
    np.testing.assert_allclose(fwd(x, w), conv._conv(x, w, (stride, stride), pads), rtol=1e-4, atol=1e-4)


def test_space_to_depth_with_unequal_strides_kernels_and_explicit_pads():
    """Each axis on its own: strides (2, 3), a 4x3 kernel, a negative (cropping) low pad."""
    x = jax.random.normal(jax.random.key(0), (2, 11, 13, 2))
    w = jax.random.normal(jax.random.key(1), (4, 3, 2, 3))
    pads = ((-1, 2), (1, 0))
    loss = lambda fn: lambda x, w: jnp.sum(jnp.sin(fn(x, w, (2, 3), pads)))
    got = jax.jit(jax.value_and_grad(loss(conv._s2d_conv), (0, 1)))(x, w)
    want = jax.jit(jax.value_and_grad(loss(conv._conv), (0, 1)))(x, w)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_small_conv_first_layer_takes_space_to_depth_under_the_rules(monkeypatch):
    """Under 'rule' the net's jaxpr holds the 12-channel 2x2 kernel; under 'lax' it does not."""
    net = models.build("small_conv")
    x = jnp.zeros((2, 32, 32, 3))
    params = net.init(jax.random.key(0), x)
    for mode, present in (("rule", True), ("lax", False)):
        monkeypatch.setenv(conv.FORMS_ENV, mode)
        text = str(jax.make_jaxpr(lambda p: net.apply(p, x))(params))
        assert ("f32[2,2,12,10]" in text) is present, mode


def test_rule_takes_space_to_depth_only_for_few_channels_and_whole_blocks():
    assert conv._use_s2d(jnp.ones((4, 4, 3, 10)), (2, 2))        # small_conv's first layer: 12 channels
    assert not conv._use_s2d(jnp.ones((4, 4, 8, 32)), (2, 2))    # 32 channels: lax is faster
    assert not conv._use_s2d(jnp.ones((3, 3, 3, 32)), (2, 2))    # an odd kernel
    assert not conv._use_s2d(jnp.ones((4, 4, 3, 10)), (1, 1))    # stride 1


def test_layer_mode_measures_once_keeps_the_fastest_and_caches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(conv.FORMS_ENV, "layer")
    monkeypatch.setattr(conv, "_cache", None)
    x, w = jnp.ones((2, 8, 8, 8)), jnp.ones((3, 3, 8, 8))
    f = lambda x, w: conv.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=DIMS)

    calls = []
    real_time_forms = conv.time_forms

    def fake_times(forms, *args, **kwargs):   # the real measurement runs; the verdict is staged
        calls.append(sorted(forms))
        assert set(real_time_forms(forms, *args, iters=1)) == set(forms)   # each form timed
        return {"lax": 3.0, "im2col": 1.0, "subpixel": 2.0, "s2d": 4.0}

    monkeypatch.setattr(conv, "time_forms", fake_times)
    assert conv_path(f, x, w) == "custom"     # im2col, the 'fastest'
    assert calls == [["im2col", "lax", "s2d", "subpixel"]]
    [(key, entry)] = json.loads((tmp_path / "conv_forms.json").read_text())[conv.machine()].items()
    assert key.startswith("conv x[2, 8, 8, 8] w[3, 3, 8, 8]") and entry["form"] == "im2col"

    monkeypatch.setattr(conv, "_cache", None)   # a new process: the file answers, nothing is timed
    monkeypatch.setattr(conv, "time_forms", lambda *a, **k: pytest.fail("measured again"))
    assert conv_path(f, x, w) == "custom"
    conv.cached()[key]["form"] = "lax"          # a cached 'lax' verdict is taken as it is
    assert conv_path(f, x, w) == "lax"


def test_layer_mode_times_a_first_layer_without_its_input_gradient(tmp_path, monkeypatch):
    """A conv fed with data (its weights differentiated, its input not) is timed forward and
    weight gradient only, under its own cache key; one whose input is differentiated, with both."""
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(conv.FORMS_ENV, "layer")
    monkeypatch.setattr(conv, "_cache", None)
    x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((4, 4, 3, 8))
    loss = lambda x, w: jnp.sum(conv.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=DIMS) ** 2)
    timed = []
    real_time_forms = conv.time_forms

    def recording(forms, *args, argnums=(0, 1), **kwargs):
        times = real_time_forms(forms, *args, iters=1, argnums=argnums)
        timed.append(argnums)
        return times

    monkeypatch.setattr(conv, "time_forms", recording)
    jax.jit(jax.grad(loss, 1))(x, w)            # a first layer: only the weights' gradient
    jax.jit(jax.grad(loss, (0, 1)))(x, w)       # the input differentiated too (a critic's penalty)
    assert timed == [(1,), (0, 1)]
    keys = sorted(json.loads((tmp_path / "conv_forms.json").read_text())[conv.machine()])
    assert keys[0].endswith("float32") and keys[1].endswith("float32 weight grad only")

    timed.clear()
    monkeypatch.setattr(conv, "_cache", {})     # forget the verdicts: each trace below measures
    jax.jit(loss)(x, w)                         # no gradient at all: both, as before
    # vmap inside grad wraps a differentiated input, which may hide a gradient: both
    jax.grad(lambda x, w: jax.vmap(lambda xi: loss(xi, w))(x[None]).sum(), (0, 1))(x, w)
    assert timed == [(0, 1)]                    # the second found the first's entry


def test_unknown_form_mode_is_a_config_error(monkeypatch):
    from gdl_jax.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown convolution form mode 'fast'"):
        conv.set_forms("fast")
    monkeypatch.setenv(conv.FORMS_ENV, "cudnn")
    with pytest.raises(ConfigError, match="GDL_JAX_CONV='cudnn' is not one of"):
        conv.forms_mode()


def test_model_init_times_no_forms_and_gives_the_same_variables_in_every_mode(tmp_path, monkeypatch):
    """Initialising (and the layer table's shapes) run lax's convs: 'layer' would otherwise time
    every conv at the sample's batch of 1, which training never runs; the variables are those of
    any mode."""
    from gdl_jax.models.summary import summarize
    from gdl_jax.train.state import TrainState

    net = models.build("small_conv")
    x = jnp.zeros((1, 32, 32, 3))
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))   # no verdicts cached: 'layer' would time
    monkeypatch.setattr(conv, "_cache", None)
    monkeypatch.setattr(conv, "time_forms", lambda *a, **k: pytest.fail("timed forms at init"))
    variables = {}
    for mode in ("layer", "rule", "subpixel"):
        monkeypatch.setenv(conv.FORMS_ENV, mode)
        variables[mode] = TrainState.create(net, optax.adam(1e-3), jax.random.key(0), x).params
        assert summarize(net, x.shape).total == 15_120
    for mode in ("rule", "subpixel"):
        jax.tree.map(np.testing.assert_array_equal, variables[mode], variables["layer"])
