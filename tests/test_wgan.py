"""Chapter 4, part 2: the Wasserstein loss and WGAN-GP's gradient penalty against independent
computations, the book's WGAN / WGAN-GP counts, the critic update (clipping, n_critic, frozen
critic, second-order gradients through the fast convs), and tiny end-to-end runs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import conv_path

from gdl_jax import losses


def test_wasserstein_loss_is_minus_mean_label_times_score():
    scores = jnp.array([2.0, -1.0, 0.5, 3.0])
    labels = jnp.array([1.0, 1.0, -1.0, -1.0])
    assert float(losses.wasserstein(scores, labels)) == pytest.approx(-(2.0 - 1.0 - 0.5 - 3.0) / 4)
    assert float(losses.wasserstein(scores, -1.0)) == pytest.approx(np.mean([2.0, -1.0, 0.5, 3.0]))


def _batch(seed, n=5, shape=(4, 3, 2)):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return (jax.random.normal(k1, (n, *shape)), jax.random.normal(k2, (n, *shape)),
            jax.random.uniform(k3, (n,)))


def test_penalty_of_a_linear_critic_is_one_minus_its_weight_norm_squared():
    real, fake, alpha = _batch(0)
    w = jax.random.normal(jax.random.key(1), (24,))
    linear = lambda w: lambda x: x.reshape(x.shape[0], -1) @ w
    unit = w / jnp.linalg.norm(w)
    assert float(losses.gradient_penalty(linear(unit), real, fake, alpha)) == pytest.approx(0.0, abs=1e-10)
    want = (1 - float(np.linalg.norm(np.asarray(w)))) ** 2
    for a in (alpha, jnp.zeros(5), jnp.ones(5)):   # whatever alpha is
        assert float(losses.gradient_penalty(linear(w), real, fake, a)) == pytest.approx(want, rel=1e-5)


def test_penalty_of_half_squared_norm_critic_uses_each_images_own_alpha():
    real, fake, alpha = _batch(2)
    critic = lambda x: 0.5 * jnp.sum(x.reshape(x.shape[0], -1) ** 2, axis=1)   # grad at x_hat is x_hat
    r, f, a = (np.asarray(v, np.float64) for v in (real, fake, alpha))
    x_hat = a[:, None, None, None] * r + (1 - a[:, None, None, None]) * f
    want = np.mean((1 - np.linalg.norm(x_hat.reshape(5, -1), axis=1)) ** 2)
    assert float(losses.gradient_penalty(critic, real, fake, alpha)) == pytest.approx(want, rel=1e-5)
    # one alpha per example: a single shared alpha would give another number
    shared = float(losses.gradient_penalty(critic, real, fake, jnp.full(5, alpha[0])))
    assert shared != pytest.approx(want, rel=1e-3)


def test_penalty_rejects_wrong_shapes_and_has_finite_gradients_at_zero():
    real, fake, alpha = _batch(3)
    with pytest.raises(ValueError, match="one alpha per image"):
        losses.gradient_penalty(lambda x: x.sum((1, 2, 3)), real, fake, alpha[:2])
    # a critic whose input gradient is exactly zero: the penalty is exactly 1 whatever s is, and the
    # safe norm keeps its gradient finite, and 0 (a plain norm's gradient at 0 is NaN)
    penalty = lambda s: losses.gradient_penalty(lambda x: s * jnp.zeros(x.shape[0]) + 0 * x.sum((1, 2, 3)),
                                                real, fake, alpha)
    assert float(penalty(1.0)) == 1.0 and float(jax.grad(penalty)(1.0)) == 0.0


@pytest.mark.parametrize("critic, generator, image_shape, counts", [
    # the book's WGAN on CIFAR-10 horses (notebook configuration)
    (dict(filters=(32, 64, 128, 128), kernels=(5, 5, 5, 5), strides=(2, 2, 2, 1), activation="leaky_relu",
          dropout=0.0),
     dict(initial_shape=(4, 4, 128), upsample=(2, 2, 2, 1), filters=(128, 64, 32, 3), kernels=(5, 5, 5, 5),
          strides=(1, 1, 1, 1), activation="leaky_relu", batch_norm_momentum=0.8),
     (32, 32, 3), (670_401, 884_163, 4_544)),
    # the book's WGAN-GP on 64x64 CelebA: Conv2DTranspose (stride 2) generator
    (dict(filters=(64, 128, 256, 512), kernels=(5, 5, 5, 5), strides=(2, 2, 2, 2), activation="leaky_relu",
          dropout=0.0),
     dict(initial_shape=(4, 4, 512), upsample=(1, 1, 1, 1), filters=(256, 128, 64, 3), kernels=(5, 5, 5, 5),
          strides=(2, 2, 2, 2), activation="leaky_relu", batch_norm_momentum=0.9),
     (64, 64, 3), (4_314_753, 5_168_003, 17_280)),
])
def test_wgan_networks_have_the_books_counts(critic, generator, image_shape, counts):
    from gdl_jax.models.gan import Discriminator, Generator
    from gdl_jax.models.summary import summarize

    c, g = summarize(Discriminator(**critic), (1, *image_shape)), summarize(Generator(**generator), (1, 100))
    assert (c.total, g.total, g.non_trainable) == counts
    assert c.non_trainable == 0
    assert g.layers[-1].output_shape[1:] == image_shape


def _tiny_wgan_state(lr=5e-5, seed=0, subpixel=True, compute_dtype="float32"):
    """16x16x2 images; the critic's convs take the strided sub-pixel path (5x5x2 and 3x3x4
    patches) and the im2col path (a 5x5 kernel on a 4x4 map)."""
    from gdl_jax.models.gan import Discriminator, Generator
    from gdl_jax.train import adversarial

    g = Generator(initial_shape=(4, 4, 8), upsample=(2, 2), filters=(8, 2), kernels=(3, 3), strides=(1, 1),
                  activation="leaky_relu", batch_norm_momentum=0.8, subpixel=subpixel)
    c = Discriminator(filters=(4, 8, 8), kernels=(5, 3, 5), strides=(2, 2, 2), activation="leaky_relu", dropout=0.0,
                      subpixel=subpixel)
    return adversarial.GANState.create(g, c, optax.rmsprop(lr), optax.rmsprop(lr), jax.random.key(seed), z_dim=4,
                                       image_shape=(16, 16, 2), compute_dtype=compute_dtype)


def _real(n, seed=7):
    return jax.random.uniform(jax.random.key(seed), (n, 16, 16, 2), minval=-1, maxval=1)


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(bool(jnp.array_equal(x, y)) for x, y in zip(la, lb))


def test_clipping_keeps_every_critic_weight_within_bounds():
    from gdl_jax.train import adversarial

    state = _tiny_wgan_state(lr=0.05)   # steps far larger than the bound
    update = jax.jit(adversarial.critic_update, static_argnums=2)   # one compile: the bound is traced
    clipped, _ = update(state, _real(4), 0, jnp.float32(0.01))
    free, _ = update(state, _real(4), 0, jnp.float32(1e9))
    assert max(float(jnp.abs(w).max()) for w in jax.tree.leaves(clipped.discriminator.params)) <= 0.01
    assert max(float(jnp.abs(w).max()) for w in jax.tree.leaves(free.discriminator.params)) > 0.01


@pytest.mark.parametrize("gp_weight, optimizer_steps_per_update", [(0.0, 2), (10.0, 1)])
def test_critic_updates_n_critic_times_per_generator_update(gp_weight, optimizer_steps_per_update):
    from gdl_jax.train import adversarial

    state = _tiny_wgan_state()
    step = jax.jit(adversarial.wgan_train_step, static_argnames=("n_critic", "clip_value", "gp_weight"))
    batch = (_real(3 * 4), jnp.zeros(12, jnp.int32))
    after, metrics = step(state, batch, n_critic=3, gp_weight=gp_weight)
    assert int(after.discriminator.step) == 3 * optimizer_steps_per_update   # WGAN: real, then fake
    assert int(after.generator.step) == 1 and int(after.step) == 1
    assert {"c_loss", "c_loss_real", "c_loss_fake", "wasserstein_estimate", "g_loss"} <= set(metrics)
    assert ("gradient_penalty" in metrics) == bool(gp_weight)
    # the next step draws new noise: its first critic update sees other fakes than this one's
    assert not _leaves_equal(state.noise("c_noise_0", 4), after.noise("c_noise_0", 4))


def test_wgan_gp_critic_terms_are_the_critics_scores_before_its_update():
    """One optimizer step per WGAN-GP critic update: c_loss_real = -mean critic(real), and the
    Wasserstein estimate = mean critic(real) - mean critic(fake) on the fakes the update drew,
    all with the critic before the update (scored here through the module itself)."""
    from gdl_jax.train import adversarial

    state, real = _tiny_wgan_state(), _real(4)
    _, m = jax.jit(adversarial.critic_update, static_argnums=(2, 3, 4))(state, real, 0, None, 10.0)
    fake = adversarial.generate(state.generator, state.noise("c_noise_0", 4))
    c = state.discriminator
    score = lambda x: np.asarray(c.apply_fn({"params": c.params}, x, train=False), np.float64).mean()
    assert float(m["c_loss_real"]) == pytest.approx(-score(real), rel=1e-4, abs=1e-6)
    assert float(m["wasserstein_estimate"]) == pytest.approx(score(real) - score(fake), rel=1e-4, abs=1e-6)
    assert score(real) != pytest.approx(score(fake), abs=1e-6)   # the check above is not 0 == 0


def test_wgan_gp_penalty_metric_is_unweighted_and_its_weight_steers_the_update():
    """The reported penalty is (1 - ||grad critic(x_hat)||)^2 averaged over the images, computed
    here by hand at the update's own interpolates (its alpha key), for any gp_weight; the weight
    itself changes the step the critic takes."""
    from gdl_jax.train import adversarial

    state, real = _tiny_wgan_state(lr=1e-3), _real(4)
    update = jax.jit(adversarial.critic_update, static_argnums=(2, 3, 4))
    after_1, m_1 = update(state, real, 0, None, 1.0)
    after_10, m_10 = update(state, real, 0, None, 10.0)
    fake = adversarial.generate(state.generator, state.noise("c_noise_0", 4))
    alpha = jax.random.uniform(state.step_rng("c_alpha_0"), (4,))[:, None, None, None]
    x_hat = alpha * real + (1 - alpha) * fake
    c = state.discriminator
    grads = jax.grad(lambda x: c.apply_fn({"params": c.params}, x, train=False).sum())(x_hat)
    norms = np.sqrt((np.asarray(grads, np.float64) ** 2).reshape(4, -1).sum(axis=1))
    penalty = ((1 - norms) ** 2).mean()
    assert penalty > 1e-3   # the comparisons below are not 0 == 0
    assert float(m_1["gradient_penalty"]) == pytest.approx(penalty, rel=1e-4)
    assert float(m_10["gradient_penalty"]) == pytest.approx(penalty, rel=1e-4)
    assert not _leaves_equal(after_1.discriminator.params, after_10.discriminator.params)


def test_wasserstein_generator_update_leaves_the_critic_unchanged():
    from gdl_jax.train import adversarial

    state = _tiny_wgan_state()
    after, metrics = jax.jit(adversarial.generator_update, static_argnums=(1, 2, 3))(state, 4, 0, "wasserstein")
    assert _leaves_equal(after.discriminator, state.discriminator)
    assert not _leaves_equal(after.generator.params, state.generator.params)
    assert set(metrics) == {"g_loss"}


def test_penalty_gradients_through_the_critics_fast_convs_match_lax():
    """Second-order gradients (the penalty's gradient w.r.t. the critic's params) through the
    custom-VJP convolutions equal those through lax's."""
    from gdl_jax.models.gan import Discriminator

    kw = dict(filters=(4, 8, 8), kernels=(5, 3, 5), strides=(2, 2, 2), activation="leaky_relu", dropout=0.0)
    real, fake = _real(3), _real(3, seed=8)
    alpha = jnp.array([0.1, 0.5, 0.9])
    params = Discriminator(**kw).init(jax.random.key(0), real)["params"]

    def grads(subpixel):
        critic = Discriminator(**kw, subpixel=subpixel)
        loss = lambda p: losses.gradient_penalty(lambda x: critic.apply({"params": p}, x), real, fake, alpha)
        return jax.jit(jax.value_and_grad(loss))(params)

    fast, plain = grads(True), grads(False)
    # the penalty's value from per-image gradients (vmap), not the sum trick of losses.gradient_penalty
    critic = Discriminator(**kw, subpixel=False)
    a = alpha[:, None, None, None]
    per_image = jax.vmap(jax.grad(lambda x: jnp.sum(critic.apply({"params": params}, x[None]))))(
        a * real + (1 - a) * fake)
    want = np.mean((1 - np.linalg.norm(np.asarray(per_image, np.float64).reshape(3, -1), axis=1)) ** 2)
    assert float(plain[0]) == pytest.approx(want, rel=1e-4)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    scores = lambda subpixel: lambda x: Discriminator(**kw, subpixel=subpixel).apply({"params": params}, x)
    assert (conv_path(scores(True), real), conv_path(scores(False), real)) == ("custom", "lax")


def _tiny_wgan_config(data_dir, gp: bool):
    from experiments.configs import wgan_cifar_horses, wgangp_celeba

    c = (wgangp_celeba if gp else wgan_cifar_horses).get_config()
    c.data.data_dir = str(data_dir)
    c.model.critic.update(filters=(8, 8), kernels=(3, 3), strides=(2, 2))
    c.model.generator.update(initial_shape=(4, 4, 8) if gp else (8, 8, 8), upsample=(1, 1) if gp else (2, 2),
                             filters=(8, 3), kernels=(3, 3), strides=(2, 2) if gp else (1, 1))
    if gp:
        c.data.image_size = 16
        c.data.test_size = 4
        c.analysis.nearest_pool = 6
    c.z_dim = 8
    c.batch_size = 4
    c.n_critic = 2
    c.num_steps = 5
    c.steps_per_dispatch = 1     # one dispatch shape to compile
    c.log_every_steps = 2
    c.checkpoint_every_steps = 3
    c.analysis.sample_steps = (2, 5)
    c.analysis.num_samples = 4
    c.analysis.nearest_samples = 3
    return c


def test_wgan_on_horses_runs_and_writes_its_figures(cifar_dir, tmp_path):
    from gdl_jax import tasks
    from gdl_jax.train.metrics import read_jsonl

    results = tasks.train_and_evaluate(_tiny_wgan_config(cifar_dir, gp=False), tmp_path)
    steps = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]      # 16 horses, 8 per step: 2 steps an epoch
    assert {"c_loss_real", "c_loss_fake", "c_loss", "wasserstein_estimate", "g_loss"} <= set(steps[0])
    assert "gradient_penalty" not in steps[0]
    assert results["model"] == "wgan" and results["sample_steps_saved"] == [2, 5]
    # novelty against the test split's horses (none held out of training)
    assert (results["novelty"]["held_out_images"], results["novelty"]["training_images_searched"]) == (4, 16)
    for name in ("history.png", "fig_4_15_samples_during_training.png", "nearest_training.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_wgan_gp_on_streamed_faces_resumes_to_the_same_result(tmp_path):
    from gdl_jax import tasks
    from tests.test_celeba import write_celeba

    root = write_celeba(tmp_path / "data", n=24)
    config = _tiny_wgan_config(root, gp=True)
    whole = tasks.train_and_evaluate(config, tmp_path / "whole")
    assert whole["model"] == "wgan" and "gradient_penalty" in whole["last_100_steps"]
    for name in ("fig_4_18_samples_during_training.png", "fig_4_19_history.png"):
        assert (tmp_path / "whole" / name).stat().st_size > 0
    assert (whole["novelty"]["held_out_images"], whole["novelty"]["training_images_searched"]) == (4, 6)
    import gdl_jax  # the WGAN-GP's generator loads like the GAN's: faces in [0, 1]

    generator = gdl_jax.load(tmp_path / "whole")
    faces = generator.sample(3, seed=1)
    assert generator.kind == "wgan" and faces.shape == (3, *generator.image_shape) and generator.z_dim == config.z_dim
    assert faces.std() > 0 and np.array_equal(generator.sample(3, seed=1), faces)   # same seed, same faces
    assert not np.array_equal(generator.sample(3, seed=2), faces)

    def kill_at(step, state):
        if step >= 4:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        tasks.train_and_evaluate(config, tmp_path / "killed", hooks=[kill_at])
    assert tasks.train_and_evaluate(config, tmp_path / "killed") == whole


@pytest.mark.parametrize("change, message", [
    ({"clip_value": 0.0, "gp_weight": 0.0}, "needs clip_value > 0 .* or gp_weight > 0"),
    ({"n_critic": 0}, "n_critic must be positive"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"optimizer_kwargs": {"decay": "x"}}, r"bad optimizer_kwargs \{'decay': 'x'\} for 'rmsprop'"),
    ({"quality_samples": 0}, "quality_samples must be positive"),
    ({"analysis.nearest_pool": 0}, "analysis.nearest_pool must be positive"),
    ({"model.critic.kernels": (5, 0, 5, 5)}, r"'discriminator': every value of kernels must be a positive integer"),
    ({"analysis.novelty_held_out": -1}, "analysis.novelty_held_out must be >= 0"),
    ({"model.critic.batch_norm_momentum": 0.9}, "cannot have BatchNorm"),
    ({"model.generator.strides": (2, 1)}, "both upsample > 1 and stride > 1"),
    ({"model.generator.initial_shape": (4, 4, 8)},
     r"generator makes \(16, 16, 3\) images but the data is \(32, 32, 3\)"),
])
def test_bad_wgan_configs_fail_before_writing(cifar_dir, tmp_path, change, message):
    from gdl_jax import tasks
    from gdl_jax.errors import ConfigError

    config = _tiny_wgan_config(cifar_dir, gp=False)
    for key, value in change.items():
        *path, last = key.split(".")
        node = config
        for part in path:
            node = node[part]
        node[last] = value
    with pytest.raises(ConfigError, match=message):
        tasks.train_and_evaluate(config, tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


def test_wgan_gp_step_in_bfloat16_keeps_float32_state_and_tracks_float32():
    """compute_dtype='bfloat16' through the penalty's second-order gradients and the custom
    convolutions: the state stays float32 and the metrics of one step are those of float32 to
    bfloat16's precision."""
    from gdl_jax.train import adversarial

    step = jax.jit(functools.partial(adversarial.wgan_train_step, n_critic=2, gp_weight=10.0))
    out = {d: step(_tiny_wgan_state(compute_dtype=d), (_real(8), jnp.zeros(8, jnp.int32)))
           for d in ("float32", "bfloat16")}
    state, metrics = out["bfloat16"]
    floats = [x.dtype for x in jax.tree.leaves((state, metrics)) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert set(floats) == {jnp.dtype("float32")}
    assert any(float(metrics[k]) != float(out["float32"][1][k]) for k in metrics)   # bfloat16 did compute
    for key in ("c_loss", "gradient_penalty", "g_loss"):
        np.testing.assert_allclose(float(metrics[key]), float(out["float32"][1][key]), rtol=0.05, atol=0.02,
                                   err_msg=key)
