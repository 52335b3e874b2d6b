"""Chapter 1: Wrodl data, multinomial MLE, smoothing, Naive Bayes, world map, Planet Pixel, tins."""

import collections
import csv
import math
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from gdl_jax.classic import biscuit_tins, planet_pixel, world_map, wrodl
from gdl_jax.classic.categorical import Multinomial, NaiveBayes, log_likelihood
from gdl_jax.errors import ConfigError, DataError

ROOT = pathlib.Path(__file__).resolve().parents[1]

BOOK_ROWS = """Round White ShirtScoopNeck Red ShortHairShortFlat
Round White Overall SilverGray ShortHairFrizzle
Sunglasses White ShirtScoopNeck Blonde ShortHairShortFlat
Round White ShirtScoopNeck Red LongHairStraight
Round White Overall SilverGray NoHair
Blank White Overall Black LongHairStraight
Sunglasses White Overall SilverGray LongHairStraight
Round White ShirtScoopNeck SilverGray ShortHairShortFlat
Round Pink Hoodie SilverGray LongHairStraight
Round PastelOrange ShirtScoopNeck Blonde LongHairStraight"""  # Fig 1-8, its column order
FIG_1_9 = {
    "topType": {"NoHair": 7, "LongHairBun": 0, "LongHairCurly": 1, "LongHairStraight": 23,
                "ShortHairShortWaved": 1, "ShortHairShortFlat": 11, "ShortHairFrizzle": 7},
    "hairColor": {"Black": 7, "Blonde": 6, "Brown": 2, "PastelPink": 3, "Red": 8, "SilverGrey": 24},
    "accessoriesType": {"Blank": 11, "Round": 22, "Sunglasses": 17},
    "clotheType": {"Hoodie": 7, "Overall": 18, "ShirtScoopNeck": 19, "ShirtVNeck": 6},
    "clotheColor": {"Black": 0, "Blue01": 4, "Grey01": 10, "PastelGreen": 5, "PastelOrange": 2,
                    "Pink": 4, "Red": 3, "White": 22},
}
COMBO_1 = ("LongHairStraight", "Red", "Round", "ShirtScoopNeck", "White")
COMBO_2 = ("LongHairStraight", "Red", "Round", "ShirtScoopNeck", "Blue01")


@pytest.fixture(scope="module")
def codes():
    return wrodl.load()


def test_shipped_wrodl_agrees_with_the_book(codes):
    with open(wrodl.CSV_PATH) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50 and codes.shape == (50, 5)
    book = [dict(zip(["accessoriesType", "clotheColor", "clotheType", "hairColor", "topType"], l.split()))
            for l in BOOK_ROWS.splitlines()]
    assert np.array_equal(wrodl.encode(book), codes[:10])
    for feature, counts in FIG_1_9.items():
        assert collections.Counter(r[feature] for r in rows) == collections.Counter(
            {v: n for v, n in counts.items() if n})
    assert int(np.prod(wrodl.CARDINALITIES)) == 4032


def test_multinomial_mle_and_smoothing(codes):
    combos = wrodl.encode([COMBO_1, COMBO_2])
    mle = Multinomial.fit(codes, wrodl.CARDINALITIES)
    np.testing.assert_allclose(mle.prob(combos), [0.04, 0.0], atol=1e-7)
    assert mle.num_free_params == 4031
    smooth = Multinomial.fit(codes, wrodl.CARDINALITIES, pseudocount=1.0)
    unseen = np.setdiff1d(np.arange(4032), np.ravel_multi_index(codes.T, wrodl.CARDINALITIES))
    np.testing.assert_allclose(smooth.theta[unseen], 1 / (50 + 4032), rtol=1e-6)  # one constant
    np.testing.assert_allclose(smooth.prob(combos)[0], 3 / (50 + 4032), rtol=1e-6)
    np.testing.assert_allclose(float(smooth.theta.sum()), 1.0, rtol=1e-5)


def test_naive_bayes_reproduces_fig_1_9_and_the_worked_probability(codes):
    nb = NaiveBayes.fit(codes, wrodl.CARDINALITIES)
    assert nb.num_free_params == 7 + 6 + 3 + 4 + 8 - 5 == 23
    for k, (feature, counts) in enumerate(FIG_1_9.items()):
        np.testing.assert_allclose(nb.marginal(k), np.array(list(counts.values())) / 50, atol=1e-7)
    p1, p2 = np.asarray(nb.prob(wrodl.encode([COMBO_1, COMBO_2])))
    assert p1 == pytest.approx(0.46 * 0.16 * 0.44 * 0.38 * 0.44, rel=1e-5)
    assert round(float(p1), 4) == 0.0054
    assert p2 == pytest.approx(0.46 * 0.16 * 0.44 * 0.38 * 0.08, rel=1e-5)  # the book's 0.00098


def test_log_likelihoods_match_counting(codes):
    n_combo = collections.Counter(map(tuple, codes.tolist()))
    want = sum(n * math.log(n / 50) for n in n_combo.values())
    assert log_likelihood(Multinomial.fit(codes, wrodl.CARDINALITIES), codes) == pytest.approx(want, rel=1e-5)
    want_nb = sum(math.log(np.mean(codes[:, k] == codes[i, k])) for i in range(50) for k in range(5))
    assert log_likelihood(NaiveBayes.fit(codes, wrodl.CARDINALITIES), codes) == pytest.approx(want_nb, rel=1e-5)


def test_sampling_frequencies_converge_to_the_parameters(codes):
    nb = NaiveBayes.fit(codes, wrodl.CARDINALITIES)
    samples = np.asarray(nb.sample(jax.random.PRNGKey(0), 100_000))
    for k, card in enumerate(wrodl.CARDINALITIES):
        freq = np.bincount(samples[:, k], minlength=card) / len(samples)
        np.testing.assert_allclose(freq, nb.marginal(k), atol=0.006)
    assert not np.any(samples[:, 0] == wrodl.FEATURES["topType"].index("LongHairBun"))  # theta 0
    mle = Multinomial.fit(codes, wrodl.CARDINALITIES)
    drawn = np.asarray(mle.sample(jax.random.PRNGKey(1), 50_000))
    combo = np.all(drawn == wrodl.encode([COMBO_1])[0], axis=1).mean()
    assert combo == pytest.approx(0.04, abs=0.004)
    assert {tuple(r) for r in drawn.tolist()} <= set(map(tuple, codes.tolist()))  # MLE copies data


@pytest.mark.parametrize("rows, message", [
    ([("LongHairStraight", "Green", "Round", "ShirtScoopNeck", "White")], "unknown hairColor 'Green'"),
    ([("LongHairStraight", "Red", "Round", "ShirtScoopNeck")], "has 4 features; expected 5"),
    ([], "no observations"),
])
def test_bad_wrodl_input(rows, message):
    with pytest.raises(DataError, match=message):
        wrodl.encode(rows)


def test_bad_codes():
    with pytest.raises(DataError, match="outside 0..2"):
        NaiveBayes.fit(np.array([[0, 3]]), (2, 3))
    with pytest.raises(DataError, match="expected 2 features"):
        Multinomial.fit(np.zeros((4, 3), int), (2, 3))
    with pytest.raises(DataError, match="non-empty"):
        NaiveBayes.fit(np.zeros((0, 2), int), (2, 3))


def test_world_map_box_mle_and_verdicts():
    mask = world_map.land_mask()
    assert world_map.is_land(np.array([[2.35, 48.85], [-30.0, 30.0], [134.0, -25.0]]), mask).tolist() == [
        True, False, True]  # Paris, mid-Atlantic, central Australia
    data = np.asarray(world_map.sample_data(jax.random.PRNGKey(0), 200, mask))
    assert world_map.is_land(data, mask).all()
    box = world_map.BoxModel.fit(data)
    np.testing.assert_allclose(box.low, data.min(0))
    np.testing.assert_allclose(box.high, data.max(0))
    # uniform on the box: every point inside has density 1 / area
    np.testing.assert_allclose(box.log_prob(data), -np.log(np.prod(data.max(0) - data.min(0))), rtol=1e-5)
    bigger = world_map.BoxModel(low=box.low - 1, high=box.high + 1)
    assert float(box.log_prob(data).sum()) > float(bigger.log_prob(data).sum())  # tightest is the MLE
    assert np.isneginf(float(box.log_prob(np.array([[box.high[0] + 1, 0.0]]))[0]))
    samples = np.array([[-30.0, 30.0], data[0] + 0.1, [134.0, -25.0]])
    far = data[np.linalg.norm(data - samples[2], axis=1) > 5]
    assert world_map.judge(samples, np.vstack([data[:1], far]), 5.0, mask) == [
        world_map.RULE_1, world_map.RULE_2, world_map.SUCCESS]
    with pytest.raises(ConfigError, match="min_distance"):
        world_map.judge(samples, data, -1.0)


def test_planet_pixel_naive_bayes_fails_as_in_the_book():
    images = planet_pixel.make_dataset(jax.random.PRNGKey(0), 600)
    assert images.shape == (600, 32, 32) and images.dtype == np.uint8
    model = planet_pixel.fit_pixel_naive_bayes(images[:500], pseudocount=0.01)
    samples = planet_pixel.sample_images(model, jax.random.PRNGKey(1), 50)

    def isolated(x):  # pixels whose colour matches neither horizontal neighbour
        return np.mean((x[:, :, 1:-1] != x[:, :, :-2]) & (x[:, :, 1:-1] != x[:, :, 2:]))
    assert isolated(samples) > 5 * isolated(images)  # no coherent blocks of colour
    heldout = planet_pixel.log_likelihood_per_pixel(model, images[500:])
    train, held = images[:500].reshape(500, -1), images[500:].reshape(100, -1)   # recomputed in numpy
    counts = np.stack([np.bincount(col, minlength=256) for col in train.T]) + 0.01
    p = counts / counts.sum(1, keepdims=True)
    assert heldout == pytest.approx(np.mean(np.log(p[np.arange(held.shape[1]), held])), rel=1e-5)
    unsmoothed = planet_pixel.fit_pixel_naive_bayes(images[:5], pseudocount=0.0)
    assert planet_pixel.log_likelihood_per_pixel(unsmoothed, images[500:]) == -np.inf


def test_biscuit_tins_map_latents_to_images():
    imgs = np.asarray(biscuit_tins.generate(np.array([[0.3, 0.5], [0.8, 0.5], [0.5, 0.8]]), 32))
    assert imgs.shape == (3, 32, 32) and imgs[:, 0, 0].tolist() == [1.0, 1.0, 1.0]   # white background
    # tin 0 (height 0.3, width 0.5): the lid at its top (row 20, y = 0.645), the body shaded as a
    # cylinder lower down (row 26, column 15: u = (15/31 - 0.5) / 0.25 across the tin)
    assert imgs[0, 20, 15] == pytest.approx(0.85)
    assert imgs[0, 26, 15] == pytest.approx(0.35 + 0.45 * (1 - ((15 / 31 - 0.5) / 0.25) ** 2), rel=1e-6)
    rows = lambda im: int(np.sum((im < 0.99).any(axis=1)))
    cols = lambda im: int(np.sum((im < 0.99).any(axis=0)))
    assert rows(imgs[1]) > rows(imgs[0]) and cols(imgs[2]) > cols(imgs[0])  # taller, wider
    with pytest.raises(ConfigError, match=r"must lie in \[0.2, 0.9\]"):
        biscuit_tins.generate(np.array([[1.5, 0.5]]))
    with pytest.raises(ConfigError, match=r"\(N, 2\)"):
        biscuit_tins.generate(np.zeros((2, 3)))


def test_chapter_1_binaries(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.wrodl", f"--workdir={tmp_path}"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0.46 x 0.16 x 0.44 x 0.38 x 0.44 = 0.0054" in proc.stdout
    assert (tmp_path / "fig_1_10_naive_bayes_styles.png").stat().st_size > 0
    bad = subprocess.run([sys.executable, "-m", "experiments.wrodl", f"--workdir={tmp_path}",
                          f"--data={tmp_path}/missing.csv"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: cannot read Wrodl data")
