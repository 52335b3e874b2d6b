"""The sample-quality metrics of gdl_jax.eval against independent computations."""

import numpy as np
import pytest
import scipy.linalg

from gdl_jax.errors import ConfigError
from gdl_jax.eval import frechet
from gdl_jax.eval import precision_recall as pr


def _spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d


def test_sqrtm_psd_matches_scipy_and_squares_back():
    rng = np.random.default_rng(0)
    for a in (_spd(rng, 20), _spd(rng, 20, rank=5)):   # full rank, and singular
        root = frechet.sqrtm_psd(a)
        np.testing.assert_allclose(root @ root, a, atol=1e-10)
        np.testing.assert_allclose(root, root.T, atol=1e-12)
        assert np.linalg.eigvalsh(root).min() > -1e-7
    full = _spd(rng, 20)
    np.testing.assert_allclose(frechet.sqrtm_psd(full), scipy.linalg.sqrtm(full).real, atol=1e-8)


def test_trace_sqrt_product_matches_scipy():
    rng = np.random.default_rng(1)
    s1, s2 = _spd(rng, 30), _spd(rng, 30)
    expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert frechet.trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(2).normal(size=(500, 16)) * 3 + 7
    s = frechet.feature_statistics(f)
    assert frechet.frechet_distance(s, s) < 1e-9 * np.trace(s.cov)
    # and not by the clamp at 0: the trace term itself equals Tr(cov) (Tr((C C)^(1/2)) = Tr(C))
    assert frechet.trace_sqrt_product(s.cov, s.cov) == pytest.approx(np.trace(s.cov), rel=1e-9)


def test_frechet_distance_closed_form_for_two_gaussians():
    rng = np.random.default_rng(3)
    d = 8
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # exact statistics: general covariances against scipy's square root of the product
    s1, s2 = _spd(rng, d), _spd(rng, d)
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    got = frechet.frechet_distance(frechet.FeatureStats(mu1, s1, 0), frechet.FeatureStats(mu2, s2, 0))
    assert got == pytest.approx(expected, rel=1e-9)
    # diagonal covariances: ||mu1 - mu2||^2 + sum (sigma1 - sigma2)^2
    sig1, sig2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    closed = (mu1 - mu2) @ (mu1 - mu2) + ((sig1 - sig2) ** 2).sum()
    got = frechet.frechet_distance(frechet.FeatureStats(mu1, np.diag(sig1**2), 0),
                                   frechet.FeatureStats(mu2, np.diag(sig2**2), 0))
    assert got == pytest.approx(closed, rel=1e-9)
    # and from samples: within sampling error of the closed form
    n = 200_000
    a = frechet.feature_statistics(mu1 + sig1 * rng.normal(size=(n, d)))
    b = frechet.feature_statistics(mu2 + sig2 * rng.normal(size=(n, d)))
    assert frechet.frechet_distance(a, b) == pytest.approx(closed, rel=0.02)


def test_frechet_bad_shapes_are_clear_errors():
    with pytest.raises(ConfigError, match="features must be"):
        frechet.feature_statistics(np.zeros((1, 4)))
    s4 = frechet.feature_statistics(np.random.default_rng(0).normal(size=(10, 4)))
    s5 = frechet.feature_statistics(np.random.default_rng(0).normal(size=(10, 5)))
    with pytest.raises(ConfigError, match="feature sizes differ: 4 and 5"):
        frechet.frechet_distance(s4, s5)


def _brute_force(real, fake, k):
    """Precision and recall with the full distance matrices in float64 numpy."""
    def radii(x):
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        return np.sort(d, 1)[:, k]

    def covered(q, p, r):
        return (np.sqrt(((q[:, None] - p[None]) ** 2).sum(-1)) <= r[None]).any(1).mean()

    real, fake = real.astype(np.float64), fake.astype(np.float64)
    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def test_precision_recall_matches_brute_force():
    rng = np.random.default_rng(4)
    # sizes that are not multiples of the block, and two sets that overlap in part
    real = rng.normal(size=(700, 6)).astype(np.float32)
    fake = (rng.normal(size=(530, 6)) * 1.3 + 0.8).astype(np.float32)
    got = pr.precision_recall(real, fake, k=3)
    p, r = _brute_force(real, fake, 3)
    assert 0.05 < p < 0.95 and 0.05 < r < 0.95          # a case where both can be wrong either way
    assert got["precision"] == pytest.approx(p, abs=2 / len(fake))   # float32 ties at a ball's edge
    assert got["recall"] == pytest.approx(r, abs=2 / len(real))


def test_precision_recall_on_constructed_clouds():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(400, 4)).astype(np.float32)
    assert pr.precision_recall(a, a) == {"precision": 1.0, "recall": 1.0, "k": 3}
    far = a + 100
    assert pr.precision_recall(a, far) == {"precision": 0.0, "recall": 0.0, "k": 3}
    # mode collapse: real data in two clusters, samples only in one
    two = np.concatenate([a, a[::-1] + 50])
    one = rng.normal(size=(400, 4)).astype(np.float32)
    got = pr.precision_recall(two, one)
    assert got["precision"] > 0.9 and 0.35 < got["recall"] < 0.55


def test_precision_recall_bad_input():
    x = np.zeros((10, 3), np.float32)
    with pytest.raises(ConfigError, match="one d"):
        pr.precision_recall(x, np.zeros((10, 4), np.float32))
    with pytest.raises(ConfigError, match="k must be in"):
        pr.precision_recall(x, x, k=10)


def test_novelty_tells_copies_from_new_images():
    from gdl_jax.eval import novelty

    rng = np.random.default_rng(6)
    train = rng.integers(0, 256, (300, 6, 6, 1), dtype=np.uint8)
    held_out = rng.integers(0, 256, (100, 6, 6, 1), dtype=np.uint8)
    fresh = rng.integers(0, 256, (100, 6, 6, 1), dtype=np.uint8) / 255.0      # new draws from the data's law
    copies = train[:100] / 255.0 + rng.normal(0, 0.01, (100, 6, 6, 1))         # training images, barely changed
    new = novelty(fresh, train, held_out, scale=1 / 255)
    copied = novelty(copies, train, held_out, scale=1 / 255)
    assert 0.9 < new["ratio"] < 1.1 and new["copies"] < 0.05
    assert copied["ratio"] < 0.1 and copied["copies"] == 1.0
    # the held-out baseline by hand: each held-out image's nearest training image, mean L1
    d = np.abs(held_out[:, None].astype(float) - train[None].astype(float)).mean((2, 3, 4)) / 255
    assert new["nearest_l1_held_out"] == pytest.approx(d.min(1).mean(), rel=1e-5)
    assert (new["held_out_images"], new["training_images_searched"]) == (100, 300)


def test_latent_gaussianity_per_dimension():
    """Mean, std and the KS distance to N(0, 1) per dimension: near 0 for standard normal draws,
    sup |Phi(x - 1) - Phi(x)| = Phi(0.5) - Phi(-0.5) = 0.383 for draws shifted by 1, and 0.5 for
    a dimension stuck at 0."""
    from scipy.stats import norm

    from gdl_jax.eval.latent import gaussianity

    z = np.random.default_rng(5).normal(size=(20000, 3))
    z[:, 1] += 1
    z[:, 2] = 0
    g = gaussianity(z)
    assert g["mean"] == pytest.approx([0, 1, 0], abs=0.03) and g["std"] == pytest.approx([1, 1, 0], abs=0.03)
    assert g["ks_to_standard_normal"] == pytest.approx([0, 2 * norm.cdf(0.5) - 1, 0.5], abs=0.015)
