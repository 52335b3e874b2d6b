"""Chapter 4 building blocks: the GAN's exact counts, BCE, and the adversarial step's freezing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import conv_path, tiny_gan_config, write_quickdraw_cats

from gdl_jax import losses
from gdl_jax.errors import CheckpointError, ConfigError
from gdl_jax.models.conv import upsample_nearest
from gdl_jax.models.gan import Discriminator, Generator
from gdl_jax.models.summary import summarize
from gdl_jax.train import adversarial


def test_parameter_counts_match_the_book():
    d = summarize(Discriminator(), (1, 28, 28, 1))
    g = summarize(Generator(), (1, 100))
    assert (d.total, d.non_trainable) == (720_833, 0)            # Fig 4-4
    assert (g.total, g.non_trainable) == (844_161, 6_784)        # Fig 4-5
    shapes = [layer.output_shape[1:] for layer in d.layers if "conv" in layer.name]
    assert shapes == [(14, 14, 64), (7, 7, 64), (4, 4, 128), (4, 4, 128)]


def test_generator_output_and_upsampling():
    x = jnp.arange(4.0).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(upsample_nearest(x)[0, :, :, 0],
                                  [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    g = Generator()
    variables = g.init(jax.random.key(0), jnp.zeros((2, 100)))
    images = g.apply(variables, jax.random.normal(jax.random.key(1), (3, 100)))
    assert images.shape == (3, 28, 28, 1) and float(images.min()) < 0 < float(images.max())  # tanh: both signs


def test_fast_conv_forms_give_the_plain_networks_numbers():
    """subpixel (upsample_conv, im2col, sub-pixel input gradients) changes the computation only:
    same params, same generator images and same gradients of the generator's loss through D."""
    z = jax.random.normal(jax.random.key(0), (4, 100))
    g_vars = Generator(subpixel=False).init(jax.random.key(1), z)
    d_vars = Discriminator(subpixel=False).init(jax.random.key(2), jnp.zeros((1, 28, 28, 1)))

    def g_loss(subpixel):
        def loss(g_params):
            images, _ = Generator(subpixel=subpixel).apply({**g_vars, "params": g_params}, z, train=True,
                                                           mutable=["batch_stats"])
            return losses.sigmoid_bce(Discriminator(subpixel=subpixel, dropout=0.0).apply(d_vars, images), 1.0)
        return jax.jit(jax.value_and_grad(loss))(g_vars["params"])

    fast, plain = g_loss(True), g_loss(False)
    assert jax.tree.structure(fast) == jax.tree.structure(plain)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # and the fast side took other paths (a flag that did nothing would pass the checks above): the
    # discriminator's custom-VJP convs; the generator's upsample + conv on the low-resolution input
    scores = lambda subpixel: lambda x: Discriminator(subpixel=subpixel).apply(d_vars, x)
    x = jnp.zeros((4, 28, 28, 1))
    assert (conv_path(scores(True), x), conv_path(scores(False), x)) == ("custom", "lax")
    program = lambda subpixel: str(jax.make_jaxpr(lambda z: Generator(subpixel=subpixel).apply(g_vars, z))(z))
    assert program(True) != program(False)


def test_bce_against_a_hand_computation():
    logits = jnp.array([-3.0, -0.5, 0.0, 2.0, 9.0])
    labels = jnp.array([0.0, 1.0, 1.0, 0.0, 1.0])
    p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    want = -np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p))
    np.testing.assert_allclose(losses.sigmoid_bce(logits, labels), want, rtol=1e-6)
    np.testing.assert_allclose(losses.sigmoid_bce(logits, 1.0), -np.mean(np.log(p)), rtol=1e-6)
    assert float(losses.binary_accuracy(logits, labels)) == pytest.approx(2 / 5)


def _tiny_state(seed=0):
    g = Generator(initial_shape=(2, 2, 8), upsample=(2, 2), filters=(8, 1), kernels=(3, 3), strides=(1, 1))
    d = Discriminator(filters=(8, 8), kernels=(3, 3), strides=(2, 2), dropout=0.2)
    return adversarial.GANState.create(g, d, optax.rmsprop(4e-4, eps=1e-7), optax.rmsprop(8e-4, eps=1e-7),
                                       jax.random.key(seed), z_dim=4, image_shape=(8, 8, 1))


def _same(a, b) -> bool:
    """Every array leaf equal (static fields such as apply_fn are not compared)."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(bool(jnp.array_equal(x, y)) for x, y in zip(la, lb))


def test_each_update_leaves_the_other_network_unchanged():
    state = _tiny_state()
    real = jax.random.uniform(jax.random.key(5), (6, 8, 8, 1), minval=-1, maxval=1)
    after_d, metrics = jax.jit(adversarial.discriminator_update)(state, real)
    assert _same(after_d.generator, state.generator)
    assert not _same(after_d.discriminator.params, state.discriminator.params)
    assert int(after_d.discriminator.step) == 2                      # real, then fake
    assert set(metrics) == {"d_loss_real", "d_loss_fake", "d_loss", "d_acc_real", "d_acc_fake"}
    # the real half's loss and accuracy: the discriminator before its update, scored here with the
    # update's dropout key, -log sigmoid(s) = log(1 + e^-s) by hand
    d = state.discriminator
    s = np.asarray(d.apply_fn(d.variables(), real, train=True, mutable=["batch_stats"],
                              rngs={"dropout": state.step_rng("d_dropout_real")})[0], np.float64)
    assert float(metrics["d_loss_real"]) == pytest.approx(np.log1p(np.exp(-s)).mean(), rel=1e-5)
    assert float(metrics["d_acc_real"]) == pytest.approx((s > 0).mean())
    m = {k: float(v) for k, v in metrics.items()}
    assert m["d_loss"] == pytest.approx((m["d_loss_real"] + m["d_loss_fake"]) / 2)
    after_g, metrics = jax.jit(adversarial.generator_update, static_argnums=1)(state, 6)
    assert _same(after_g.discriminator, state.discriminator)
    assert not _same(after_g.generator.params, state.generator.params)
    assert not _same(after_g.generator.batch_stats, state.generator.batch_stats)
    assert set(metrics) == {"g_loss", "g_acc"}


def test_gan_steps_are_deterministic_and_move_samples_toward_the_data():
    """Real images are a fixed bright square on a dark ground; after a few hundred steps the
    generated images' mean pixel is much nearer the data's than at the start."""
    real = -np.ones((16, 8, 8, 1), np.float32)
    real[:, 2:6, 2:6] = 1.0
    step = jax.jit(adversarial.gan_train_step)

    def run(n, seed=0):
        state, metrics = _tiny_state(seed), None
        for _ in range(n):
            state, metrics = step(state, (jnp.asarray(real), jnp.zeros(16, jnp.int32)))
        return state, metrics

    def gap(state):
        samples = adversarial.generate(state.generator, jax.random.normal(jax.random.key(9), (64, 4)))
        return float(jnp.abs(samples.mean(0) - real.mean(0)).mean())

    start, _ = run(0)
    a, ma = run(300)
    b, mb = run(300)
    assert _same(a, b) and jax.tree.map(float, ma) == jax.tree.map(float, mb)
    assert int(a.step) == 300 and int(a.generator.step) == 300 and int(a.discriminator.step) == 600
    assert gap(a) < 0.5 * gap(start), (gap(start), gap(a))


@pytest.mark.parametrize("shape", [(6, 6, 1), (80, 70, 3)])   # 16,800 values: the images-minor form
def test_nearest_l1_matches_brute_force(shape):
    from gdl_jax import eval as geval
    from gdl_jax.eval import neighbours

    assert (np.prod(shape) > neighbours.LONG_ROW) == (shape[0] == 80)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (50, *shape), dtype=np.uint8)
    samples = np.stack([data[17] / 127.5 - 1, data[3] / 127.5 - 1 + 0.01, rng.uniform(-1, 1, shape)])
    index, distance = geval.nearest_l1(samples, data, scale=2 / 255, offset=-1.0, chunk=16)
    real = data.astype(np.float64) * 2 / 255 - 1
    brute = np.array([[np.mean(np.abs(s - r)) for r in real] for s in samples])
    np.testing.assert_array_equal(index, brute.argmin(1))
    np.testing.assert_allclose(distance, brute.min(1), atol=1e-5)
    assert index[0] == 17 and index[1] == 3


def test_gan_run_writes_the_analysis_and_resumes_to_the_same_result(tmp_path):
    import json

    from gdl_jax import tasks
    from gdl_jax.train.metrics import read_jsonl

    config = tiny_gan_config(write_quickdraw_cats(tmp_path / "data"))
    whole = tasks.train_and_evaluate(config, tmp_path / "whole")
    records = read_jsonl(tmp_path / "whole" / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, 13))
    assert {"d_loss_real", "d_loss_fake", "d_acc_real", "d_acc_fake", "g_loss", "g_acc"} <= set(steps[0])
    # 5 steps an epoch, 2 per dispatch: dispatches end at 2, 4, 5, 7, 9, 10, 12
    assert whole["sample_steps_saved"] == [2, 9, 12] and len(whole["nearest_l1"]) == 3
    for name in ("fig_4_8_history.png", "fig_4_9_samples_during_training.png", "fig_4_10_nearest_training.png",
                 "samples.png"):
        assert (tmp_path / "whole" / name).stat().st_size > 0
    assert json.loads((tmp_path / "whole" / "results.json").read_text()) == whole
    # quality every 3 steps, measured at the first dispatch end at or past each multiple
    tracking = whole["quality_tracking"]
    assert tracking["loss"] == "g_loss" and tracking["series"]["step"] == [4, 7, 9, 12]
    g_loss = {r["step"]: r["g_loss"] for r in steps}
    np.testing.assert_allclose(tracking["series"]["loss"], [np.mean([g_loss[s] for s in range(t - 2, t + 1)])
                                                            for t in (4, 7, 9, 12)])
    assert tracking["series"]["diversity"][-1] == pytest.approx(whole["sample_diversity"])
    assert (tmp_path / "whole" / "loss_vs_quality.png").stat().st_size > 0
    # gdl_jax.load: the generator at the last checkpoint draws the run's last saved samples
    import jax

    import gdl_jax
    from gdl_jax.tasks import gan

    generator = gdl_jax.load(tmp_path / "whole")
    assert (generator.kind, generator.encodes, generator.image_shape) == ("gan", False, (28, 28, 1))
    z_fixed = jax.random.normal(jax.random.PRNGKey(gan.SAMPLE_SEED), (config.analysis.num_samples, config.z_dim))
    with np.load(tmp_path / "whole" / "samples" / "target_12.npz") as saved:
        np.testing.assert_allclose(generator.decode(np.asarray(z_fixed)), (saved["images"] + 1) / 2, atol=1e-5)
    # the latent explorer over it: the generator's image for a latent, no encoding
    from gdl_jax.explore import Explorer, core
    from tests.test_explore import pixels

    explorer = Explorer(generator)
    z = np.asarray(z_fixed[0]).tolist()
    np.testing.assert_array_equal(pixels(explorer.decode(z)["png"]), core.to_uint8(generator.decode(z))[..., 0])
    assert explorer.info()["plane"] is None and not explorer.info()["encodes"]
    with pytest.raises(ConfigError, match="a gan generator has no attribute vectors"):
        explorer.decode(z, {"Smiling": 1.0})

    def kill_at(step, state):
        if step >= 8:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        tasks.train_and_evaluate(config, tmp_path / "killed", hooks=[kill_at])
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["5"]
    resumed = tasks.train_and_evaluate(config, tmp_path / "killed")
    assert resumed == whole
    assert read_jsonl(tmp_path / "killed" / "metrics.jsonl") == records
    for t in (2, 8, 12):
        with np.load(tmp_path / "killed" / "samples" / f"target_{t}.npz") as a, \
                np.load(tmp_path / "whole" / "samples" / f"target_{t}.npz") as b:
            np.testing.assert_array_equal(a["images"], b["images"])
            assert int(a["step"]) == int(b["step"])


def test_gan_novelty_against_drawings_held_out_of_training(tmp_path):
    """Quick Draw has no test split: analysis.novelty_held_out drawings leave training (seeded)
    and are the novelty baseline. The reported distances equal a brute-force recomputation from
    the loaded generator, the held-out drawings and the ones it trained on."""
    import gdl_jax
    from gdl_jax import tasks
    from gdl_jax.tasks import gan
    from gdl_jax.train import runner

    config = tiny_gan_config(write_quickdraw_cats(tmp_path / "data"))
    config.update(num_steps=2, steps_per_dispatch=1)
    config.analysis.update(sample_steps=(2,), quality_every_steps=0, novelty_held_out=8)
    nov = tasks.train_and_evaluate(config, tmp_path / "run")["novelty"]
    assert (nov["held_out_images"], nov["training_images_searched"]) == (8, 32)
    kept, held = runner.load_splits(config, ("train", "test"), held_out=8)
    every = np.fromfile(tmp_path / "data" / "quickdraw" / "cats40.bin", np.uint8).reshape(40, -1)
    index = {row.tobytes(): i for i, row in enumerate(every)}
    kept_i = {index[x.tobytes()] for x in kept.images}
    held_i = {index[x.tobytes()] for x in held.images}
    assert len(kept_i) == 32 and len(held_i) == 8 and not kept_i & held_i

    z = jax.random.normal(jax.random.PRNGKey(gan.SAMPLE_SEED + 3), (8, config.z_dim))
    samples = gdl_jax.load(tmp_path / "run").decode(np.asarray(z)).reshape(8, -1) * 2 - 1
    train_px = kept.images.reshape(32, -1) * (2 / 255) - 1
    held_px = held.images.reshape(8, -1) * (2 / 255) - 1
    nearest = lambda x: np.abs(x[:, None] - train_px[None]).mean(-1).min(1)
    assert nov["nearest_l1_samples"] == pytest.approx(nearest(samples).mean(), rel=1e-5)
    assert nov["nearest_l1_held_out"] == pytest.approx(nearest(held_px).mean(), rel=1e-5)
    assert nov["ratio"] == pytest.approx(nearest(samples).mean() / nearest(held_px).mean(), rel=1e-5)
    with pytest.raises(ConfigError, match="holding out 40 of its 40 training examples leaves none"):
        runner.load_splits(config, ("train", "test"), held_out=40)
    config.data.train_subset = 33
    with pytest.raises(ConfigError, match="larger than the 32 training examples left after 8 held out"):
        runner.load_splits(config, ("train", "test"), held_out=8)
    # the held-out count decides the training set: a resume must keep it (only without a test split)
    assert "analysis.novelty_held_out" in runner.identity_keys(config)
    config.data.name = "cifar10/horse"
    assert "analysis.novelty_held_out" not in runner.identity_keys(config)
    config.data.name = "quickdraw/cat"
    config.data.train_subset = 0
    config.analysis.novelty_held_out = 4
    with pytest.raises(CheckpointError, match="analysis.novelty_held_out: 8 there, 4 now"):
        tasks.train_and_evaluate(config, tmp_path / "run")


def test_loss_quality_tracking_against_hand_computations():
    """window_means and rank_correlation (Spearman) against numpy by hand; a loss that falls with
    the nearest-image distance tracks quality (+1), one that rises and falls again does not."""
    from gdl_jax import eval as geval

    steps = np.arange(1, 11)
    values = steps * 10.0
    np.testing.assert_allclose(geval.window_means(steps, values, [3, 10, 20], 2), [25.0, 95.0, np.nan])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))   # ranks (no ties)
    assert geval.rank_correlation(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    assert geval.rank_correlation(x, np.exp(x)) == pytest.approx(1.0)
    assert geval.rank_correlation(x, -x ** 3) == pytest.approx(-1.0)
    assert geval.rank_correlation([1, 2], [3, 4]) is None and geval.rank_correlation([1, 1, 1], [1, 2, 3]) is None
    # a window with no logged step (NaN) leaves its pair out instead of making the result NaN
    assert geval.rank_correlation([np.nan, 1, 2, 3], [9, 1, 2, 3]) == pytest.approx(1.0)
    assert geval.rank_correlation([np.nan, np.nan, 1, 2], [1, 2, 3, 4]) is None

    quality = [{"step": t, "nearest_l1": 1.0 / t, "diversity": 1 - 1.0 / t} for t in (10, 20, 30, 40)]
    log_steps = np.arange(1, 41)
    falling = geval.loss_tracks_quality(log_steps, 5.0 / log_steps, quality, 10)
    assert falling["points"] == 4 and falling["spearman_nearest_l1"] == pytest.approx(1.0)
    assert falling["spearman_diversity"] == pytest.approx(-1.0)
    np.testing.assert_allclose(falling["series"]["loss"], [np.mean(5.0 / np.arange(t - 9, t + 1))
                                                           for t in (10, 20, 30, 40)])
    hump = geval.loss_tracks_quality(log_steps, -np.abs(log_steps - 25.0), quality, 10)
    assert abs(hump["spearman_nearest_l1"]) < 0.5
    assert "spearman_frechet_distance" not in falling and "frechet_distance" not in falling["series"]
    # a Frechet distance in every record (a classifier's features) is tracked too: here it falls
    # with the loss except for one swap of ranks, Spearman's 1 - 6 * 2 / (4 * 15) = 0.8
    with_fd = [{**q, "frechet_distance": fd} for q, fd in zip(quality, (40.0, 20.0, 30.0, 10.0))]
    tracked = geval.loss_tracks_quality(log_steps, 5.0 / log_steps, with_fd, 10)
    assert tracked["spearman_frechet_distance"] == pytest.approx(0.8)
    assert tracked["series"]["frechet_distance"] == [40.0, 20.0, 30.0, 10.0]
    assert "spearman_frechet_distance" not in geval.loss_tracks_quality(log_steps, 5.0 / log_steps,
                                                                        with_fd[:3] + quality[3:], 10)


def test_failure_mode_numbers():
    from gdl_jax import eval as geval
    from gdl_jax.tasks import gan

    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (20, 4, 4, 1))
    np.testing.assert_allclose(geval.mean_pairwise_l1(real[:2]), np.abs(real[0] - real[1]).mean())
    flat = real.reshape(20, -1)
    brute = np.mean([np.abs(flat[i] - flat[j]).mean() for i in range(20) for j in range(20) if i != j])
    np.testing.assert_allclose(geval.mean_pairwise_l1(real), brute)
    collapsed = np.repeat(real[:1], 20, axis=0) + rng.normal(0, 0.01, (20, 4, 4, 1))
    t = np.arange(1000)
    noise = rng.normal(0, 0.3, 1000)
    rising = [{"d_loss": 0.3 + n / 3, "g_loss": 1 + 2.5 * i / 1000 + n} for i, n in zip(t, noise)]   # Fig 4-8
    swinging = [{"d_loss": 0.05 + 0.02 * n, "g_loss": 9 + 8 * np.sign(np.sin(i / 15)) + n}            # Fig 4-11
                for i, n in zip(t, noise)]
    other = rng.uniform(-0.5, 0.5, (20, 4, 4, 1))   # half the spread of `real`: diversity about 1/2
    healthy = gan.failure_numbers(rising, other, real)
    assert healthy["sample_diversity"] == pytest.approx(geval.mean_pairwise_l1(other) / brute)
    assert 0.4 < healthy["sample_diversity"] < 0.6
    assert healthy["loss_oscillation"]["g_loss"] < 0.15 and healthy["loss_oscillation"]["d_loss"] < 0.05
    assert gan.failure_numbers(rising, collapsed, real)["sample_diversity"] < 0.05
    assert gan.failure_numbers(swinging, real, real)["loss_oscillation"]["g_loss"] > 5


def test_generator_steps_run_several_generator_updates():
    state = _tiny_state()
    real = jnp.zeros((4, 8, 8, 1))
    after, _ = jax.jit(adversarial.gan_train_step, static_argnames="generator_steps")(
        state, (real, jnp.zeros(4, jnp.int32)), generator_steps=3)
    assert int(after.generator.step) == 3 and int(after.discriminator.step) == 2 and int(after.step) == 1


def test_frozen_discriminator_stops_learning_at_its_step(tmp_path):
    """d_freeze_step: the discriminator's learning rate drops to 0 at that step (Fig 4-12's
    recipe), the generator goes on learning."""
    from gdl_jax import parallel
    from gdl_jax.tasks import gan

    config = tiny_gan_config(tmp_path)
    config.d_freeze_step = 1
    state = gan.initial_state(config, (28, 28, 1), parallel.make_mesh())
    step = jax.jit(adversarial.gan_train_step)
    real = (jax.random.uniform(jax.random.key(3), (8, 28, 28, 1), minval=-1, maxval=1), jnp.zeros(8, jnp.int32))
    first, _ = step(state, real)
    second, _ = step(first, real)
    assert not _same(first.discriminator.params, state.discriminator.params)
    assert _same(second.discriminator.params, first.discriminator.params)
    assert not _same(second.generator.params, first.generator.params)
