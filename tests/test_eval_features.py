"""Classifier features for the sample-quality metrics, from a tiny trained classifier run."""

import json
import warnings

import jax
import numpy as np
import pytest

from gdl_jax import data as gdata
from gdl_jax import tasks
from gdl_jax.errors import CheckpointError, ConfigError, DataError
from gdl_jax.eval import features as gfeatures
from gdl_jax.eval.quality import feature_metrics

# One worker runs this module (setup.cfg: --dist loadgroup), so the trained classifier fixtures train once.
pytestmark = pytest.mark.xdist_group("eval_features")


def _train_classifier(config, data_dir, workdir):
    """config (a classifier config) trained for one tiny epoch on the data in data_dir."""
    config.data.data_dir = str(data_dir)
    config.update(batch_size=8, num_epochs=1, steps_per_dispatch=1, log_every_steps=10, checkpoint_every_steps=20,
                  eval_batch_size=16, num_prediction_examples=4)
    tasks.train_and_evaluate(config, workdir)
    return workdir


@pytest.fixture(scope="module")
def classifier_run(cifar_dir, tmp_path_factory):
    from experiments.configs.cnn_cifar10 import get_config

    workdir = _train_classifier(get_config(), cifar_dir, tmp_path_factory.mktemp("classifier"))
    return workdir, gdata.load("cifar10", "test", str(cifar_dir))


def test_features_are_the_input_of_the_last_dense(classifier_run):
    workdir, test = classifier_run
    extractor = gfeatures.ClassifierFeatures.from_workdir(workdir)
    x = test.images[:300].astype(np.float32) / 255   # 40 test images: a zero-padded last batch
    f = extractor(x)
    assert f.shape == (len(x), 128) and extractor.image_shape == (32, 32, 3)
    assert "cnn on cifar10" in extractor.name
    # through the last layer's own params, the features give the model's logits
    from gdl_jax import api, models, parallel
    from gdl_jax.train import runner
    config = api.read_config(workdir)
    model = models.build("cnn")
    state = runner.restore(config, workdir, model, (32, 32, 3), parallel.make_mesh())
    logits = np.asarray(model.apply(state.variables(), x, train=False))
    last = jax.device_get(state.params["Dense_1"])
    np.testing.assert_allclose(f @ last["kernel"] + last["bias"], logits, rtol=1e-4, atol=1e-4)
    # another size is resized to the classifier's input
    assert extractor(x[:3, ::2, ::2]).shape == (3, 128)
    with pytest.raises(DataError, match=r"images must be \(N, H, W, 3\)"):
        extractor(x[..., :1])


def test_feature_metrics_tell_real_from_noise(classifier_run):
    workdir, test = classifier_run
    extractor = gfeatures.ClassifierFeatures.from_workdir(workdir)
    real = test.images.astype(np.float32) / 255
    same = feature_metrics(extractor, real, real)
    assert same["frechet_distance"] < 1e-3
    assert (same["precision"], same["recall"]) == (1.0, 1.0)
    noise = np.random.default_rng(0).uniform(size=real.shape).astype(np.float32)
    far = feature_metrics(extractor, real, noise)
    half = feature_metrics(extractor, real[::2], real[1::2])   # two halves of one data set
    assert far["frechet_distance"] > 3 * half["frechet_distance"]
    assert far["precision"] < half["precision"]


def test_features_need_a_classifier_run(tmp_path, classifier_run):
    with pytest.raises(CheckpointError, match="no config.json"):
        gfeatures.ClassifierFeatures.from_workdir(tmp_path)
    (tmp_path / "config.json").write_text('{"task": "vae", "model": {"name": "vae"}}')
    with pytest.raises(ConfigError, match="features need a classifier run"):
        gfeatures.ClassifierFeatures.from_workdir(tmp_path)
    # a trainer checks its feature source before training: a classifier config, and a checkpoint
    from ml_collections import ConfigDict

    from gdl_jax.eval import quality

    (tmp_path / "config.json").write_text('{"task": "classifier", "model": {"name": "cnn"}}')
    config = ConfigDict({"quality_features": str(tmp_path), "quality_samples": 10})
    with pytest.raises(ConfigError, match="has no checkpoint: train that classifier first"):
        quality.check(config)
    config.quality_features, config.quality_samples = str(classifier_run[0]), 3
    with pytest.raises(ConfigError, match="quality_samples must be more than 3"):
        quality.check(config)
    config.quality_samples = 4
    quality.check(config)


@pytest.fixture(scope="module")
def mnist_classifier(mnist_dir, tmp_path_factory):
    from experiments.configs.cnn_mnist import get_config

    return _train_classifier(get_config(), mnist_dir, tmp_path_factory.mktemp("mnist_classifier"))


def _check_feature_metrics(m: dict, n: int) -> None:
    assert m["features"].startswith("cnn on mnist")
    assert m["real_images"] == m["generated_images"] == n


def _frechet_low_rank(a: np.ndarray, b: np.ndarray) -> float:
    """The Frechet distance of two feature sets of n samples each, in float64, by a route
    independent of the library's matrix square root: with A, B the centred features,
    Ca = A'A/(n-1) and Cb = B'B/(n-1), the nonzero eigenvalues of Ca Cb are those of
    (A B')(A B')'/(n-1)^2, so tr sqrt(Ca Cb) is the sum of A B''s singular values over n-1 (an
    n x n SVD instead of scipy's 2048 x 2048 sqrtm, which took 7 s per call here)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    assert len(a) == len(b)
    ca, cb = a - a.mean(0), b - b.mean(0)
    trace_root = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / (len(a) - 1)
    trace = ((ca ** 2).sum() + (cb ** 2).sum()) / (len(a) - 1)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + trace - 2 * trace_root)


def test_low_rank_frechet_matches_scipy():
    """The test's own Frechet distance against scipy's sqrtm on a small case."""
    import scipy.linalg

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 30)), rng.normal(1.0, 2.0, size=(12, 30))
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Matrix is singular", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(ca @ cb).real
    want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * root)
    assert _frechet_low_rank(a, b) == pytest.approx(want, rel=1e-6)


def test_vae_and_gan_report_feature_metrics(mnist_classifier, mnist_dir, tmp_path):
    """The classifier's features, and for the VAE InceptionV3's too (random FID weights, saved as
    the .npz a user converts pytorch-fid's into): both reported, on the same images. The VAE's
    numbers equal an independent recomputation from its checkpoint: the samples and held-out
    digits rebuilt as the analysis draws them, the Frechet distance by a low-rank SVD, brute-force precision,
    recall and nearest-image L1."""
    from _inception_reference import random_fid_state_dict
    from conftest import tiny_gan_config, write_quickdraw_cats
    from test_eval_metrics import _brute_force

    from experiments.configs import vae_mnist
    from gdl_jax import api
    from gdl_jax.eval.inception import InceptionFeatures
    from gdl_jax.tasks import autoencoder

    np.savez(tmp_path / "fid.npz", **random_fid_state_dict())
    c = vae_mnist.get_config()
    c.data.data_dir = str(mnist_dir)
    c.update(batch_size=16, num_epochs=1, steps_per_dispatch=1, log_every_steps=4, checkpoint_every_steps=8,
             eval_batch_size=16, quality_features=str(mnist_classifier), quality_samples=6,
             inception_weights=str(tmp_path / "fid.npz"))
    vae = tasks.train_and_evaluate(c, tmp_path / "vae")
    _check_feature_metrics(vae["feature_metrics"], 6)
    fid = vae["inception_metrics"]
    assert fid["features"] == "InceptionV3 FID (fid.npz)" and fid["real_images"] == fid["generated_images"] == 6

    model = api.load(tmp_path / "vae")
    train_set, test, _ = autoencoder.load_data(c)
    rng = np.random.default_rng(c.seed)          # as autoencoder.analyze draws them
    fake = model.decode(rng.normal(size=(6, c.model.encoder.z_dim)))
    held_out = test.images[rng.choice(len(test), 6, replace=False)]   # uint8: novelty's baseline too
    real = held_out / np.float32(255)
    for got, extractor in ((vae["feature_metrics"], gfeatures.ClassifierFeatures.from_workdir(mnist_classifier)),
                           (fid, InceptionFeatures(tmp_path / "fid.npz"))):
        f_real, f_fake = np.asarray(extractor(real)), np.asarray(extractor(fake))
        assert got["frechet_distance"] == pytest.approx(_frechet_low_rank(f_real, f_fake), rel=1e-3, abs=1e-4)
        assert (got["precision"], got["recall"]) == pytest.approx(_brute_force(f_real, f_fake, 3))
    assert fid["frechet_distance"] != vae["feature_metrics"]["frechet_distance"]
    l1 = lambda x: np.abs(x.reshape(len(x), 1, -1) - train_set.images.reshape(1, len(train_set), -1) / 255.0
                          ).mean(-1).min(1)
    nov = vae["novelty"]
    assert nov["nearest_l1_samples"] == pytest.approx(l1(fake).mean(), rel=1e-4)
    assert nov["nearest_l1_held_out"] == pytest.approx(l1(held_out / 255.0).mean(), rel=1e-4, abs=1e-7)

    g = tiny_gan_config(write_quickdraw_cats(tmp_path / "data"))
    g.update(num_steps=6, steps_per_dispatch=1, quality_features=str(mnist_classifier), quality_samples=1000)
    g.analysis.quality_every_steps = 2
    gan = tasks.train_and_evaluate(g, tmp_path / "gan")
    _check_feature_metrics(gan["feature_metrics"], 40)  # every cat
    # tracked during training in the same features, on the same images and latents: the point at
    # the last step is the final number; three points give a rank correlation with the loss
    series = gan["quality_tracking"]["series"]
    assert series["step"] == [2, 4, 6] and len(series["frechet_distance"]) == 3
    assert series["frechet_distance"][-1] == pytest.approx(gan["feature_metrics"]["frechet_distance"], rel=1e-5)
    assert len(set(series["frechet_distance"])) == 3   # the generator changed between the points
    from scipy.stats import spearmanr
    assert gan["quality_tracking"]["spearman_frechet_distance"] == pytest.approx(
        spearmanr(series["loss"], series["frechet_distance"]).statistic)


def test_celeba_attribute_classifier_scores_every_attribute_and_gives_face_features(tmp_path):
    """The multi-label CNN on a tiny CelebA (3 attributes): its test accuracy is the mean over
    test faces and attributes of the sign of its logits matching the labels (recomputed here
    from the checkpoint), beside the majority baseline; its features take 128x128 faces."""
    from experiments.configs.attributes_celeba import get_config
    from gdl_jax import api, models, parallel
    from gdl_jax.tasks import classifier
    from gdl_jax.train import runner
    from tests.test_celeba import ATTRS, write_celeba

    root = write_celeba(tmp_path / "data", n=40)
    config = get_config()
    config.model.num_classes = len(ATTRS)
    config.data.update(image_size=16, test_size=8)
    _train_classifier(config, root, tmp_path / "wd")
    results = json.loads((tmp_path / "wd" / "results.json").read_text())
    train_set, test = classifier.load_data(config)
    assert train_set.labels.shape == (32, 3) and test.labels.shape == (8, 3) and test.class_names == tuple(ATTRS)
    state = runner.restore(config, tmp_path / "wd", models.build("cnn", num_classes=3), (16, 16, 3),
                           parallel.make_mesh())
    logits = np.asarray(state.apply_fn(state.variables(), test.images / np.float32(255), train=False))
    assert results["test_accuracy"] == pytest.approx(((logits > 0) == (test.labels > 0)).mean(), abs=1e-6)
    majority = train_set.labels.mean(0) >= 0.5
    assert results["test_majority_accuracy"] == pytest.approx((test.labels == majority).mean())
    assert api.read_config(tmp_path / "wd").data.name == "celeba"
    extractor = gfeatures.ClassifierFeatures.from_workdir(tmp_path / "wd")
    assert extractor(np.zeros((3, 128, 128, 3), np.float32)).shape == (3, 128)
    config.model.num_classes = 40
    with pytest.raises(ConfigError, match="model.num_classes is 40 but the data has 3 attributes"):
        tasks.train_and_evaluate(config, tmp_path / "wrong")
    config.model.num_classes, config.data.train_subset = 3, 33   # as for data held on device: an error
    with pytest.raises(ConfigError, match="data.train_subset 33 is larger than the 32 training faces"):
        classifier.load_data(config)
    config.data.train_subset = 32
    assert len(classifier.load_data(config)[0]) == 32
