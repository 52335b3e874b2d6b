"""The book's architectures: exact parameter counts and output shapes (SPEC 2.1-2.4)."""

import jax
import jax.numpy as jnp
import pytest

from gdl_jax import models
from gdl_jax.errors import ConfigError
from gdl_jax.models.summary import summarize


@pytest.mark.parametrize("name, total, trainable", [
    ("mlp", 646_260, 646_260),          # Fig 2-6
    ("small_conv", 15_120, 15_120),     # Fig 2-14
    ("cnn", 592_554, 591_914),          # Fig 2-17
])
def test_parameter_counts_match_the_book(name, total, trainable):
    s = summarize(models.build(name), (1, 32, 32, 3))
    assert (s.total, s.trainable, s.non_trainable) == (total, trainable, total - trainable)
    assert f"Total params: {total:,}" in str(s)


def test_small_conv_shapes_match_fig_2_14():
    s = summarize(models.build("small_conv"), (1, 32, 32, 3))
    assert [l.output_shape for l in s.layers] == [(1, 16, 16, 10), (1, 8, 8, 20), (1, 10)]
    assert [l.trainable for l in s.layers] == [490, 1820, 12810]


def test_cnn_summary_rows_follow_call_order():
    s = summarize(models.build("cnn"), (1, 32, 32, 3))
    kinds = [l.kind for l in s.layers]
    assert kinds[:4] == ["Conv", "BatchNorm", "Conv", "BatchNorm"]
    assert kinds[-2:] == ["Dropout", "Dense"]
    assert [l.trainable for l in s.layers if l.kind == "Conv"] == [896, 9248, 18496, 36928]


def test_cnn_dropout_and_batchnorm_change_only_in_train_mode():
    model = models.build("cnn")
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    v = model.init(jax.random.key(1), x)
    eval1 = model.apply(v, x, train=False)
    eval2 = model.apply(v, x, train=False, rngs={"dropout": jax.random.key(5)})   # a key changes nothing
    assert jnp.array_equal(eval1, eval2)
    train_out, updates = model.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)},
                                     mutable=["batch_stats"])
    assert not jnp.allclose(train_out, eval1)
    other_drop, _ = model.apply(v, x, train=True, rngs={"dropout": jax.random.key(3)}, mutable=["batch_stats"])
    assert not jnp.allclose(other_drop, train_out)   # dropout (BatchNorm alone would give the same)
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), updates["batch_stats"], v["batch_stats"])
    assert all(jax.tree.leaves(moved))


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        models.build("resnet")
    with pytest.raises(ConfigError, match="bad arguments for model 'mlp'"):
        models.build("mlp", filters=3)
