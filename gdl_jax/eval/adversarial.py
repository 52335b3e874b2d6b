"""Numbers about a GAN's training from its samples and its logged losses: the two failure modes
(book Fig 4-11, 4-12), and how well a loss tracks sample quality (book 4.4's claim for the
Wasserstein loss)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.stats

from gdl_jax.errors import DataError


def mean_pairwise_l1(images: np.ndarray) -> float:
    """Mean L1 distance (per pixel) over all pairs of distinct images (DataError for fewer than 2)."""
    if len(images) < 2:
        raise DataError(f"a mean pairwise distance needs 2 images or more, got {len(images)}")
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    total = sum(np.abs(flat[i + 1:] - flat[i]).mean(-1).sum() for i in range(len(flat) - 1))  # one row at a time
    return float(2 * total / (len(flat) * (len(flat) - 1)))


def sample_diversity(samples: np.ndarray, real: np.ndarray) -> float:
    """Mean pairwise L1 of generated images over that of as many real ones, on one pixel scale:
    ~1 when samples vary as much as the data, near 0 under mode collapse."""
    return mean_pairwise_l1(samples) / mean_pairwise_l1(real)


def loss_oscillation(values: Sequence[float], short: int = 25, long: int = 200, skip: float = 0.1) -> float:
    """How far a loss swings about its own trend: the standard deviation of its `short`-step
    moving average minus its `long`-step moving average, over the run after its first `skip`
    fraction. Per-step noise averages out in the short average and a steady rise (the GAN's
    generator loss) is in both, so a settled run gives a small number and a loss that swings
    between extremes for tens of steps at a time (Fig 4-11) a large one, in the loss's units."""
    v = np.asarray(values[int(len(values) * skip):], np.float64)
    long = min(long, len(v) // 2)
    short = min(short, long)
    if long < 2:
        return 0.0
    trend = np.convolve(v, np.ones(long) / long, mode="valid")
    local = np.convolve(v, np.ones(short) / short, mode="valid")[long - short:]   # both end at the same step
    return float(np.std(local - trend))


def window_means(steps: Sequence[int], values: Sequence[float], at: Sequence[int], window: int) -> np.ndarray:
    """For each step t of `at`, the mean of the values logged at steps in (t - window, t] (NaN if none)."""
    steps, values = np.asarray(steps), np.asarray(values, np.float64)
    out = []
    for t in at:
        inside = (steps > t - window) & (steps <= t)
        out.append(values[inside].mean() if inside.any() else np.nan)
    return np.asarray(out)


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation of x and y over the pairs where both are numbers (None when it
    is undefined: fewer than 3 such pairs or a constant series)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(scipy.stats.spearmanr(x, y).statistic)


def loss_tracks_quality(steps: Sequence[int], loss: Sequence[float], quality: Sequence[dict],
                        window: int) -> dict:
    """Does a logged loss track sample quality over a run (the book's claim for the Wasserstein
    estimate, against the GAN's generator loss)? quality: records {"step", "nearest_l1",
    "diversity"} measured during training, and "frechet_distance" where every record has it (a
    classifier's features). At each, the loss's mean over the `window` steps up to it;
    Spearman's correlation of that with each measure over the records. A loss that falls as
    samples improve correlates positively with the nearest-training-image distance (which falls
    as samples look like data) and with the Frechet distance (which falls as their features'
    statistics near the data's), and negatively with diversity (which rises from a blank
    start)."""
    at = [q["step"] for q in quality]
    means = window_means(steps, loss, at, window)
    measures = ["nearest_l1", "diversity"] + (["frechet_distance"] if quality and all(
        "frechet_distance" in q for q in quality) else [])
    series = {"step": at, "loss": [float(m) for m in means], **{m: [q[m] for q in quality] for m in measures}}
    return {"points": len(at), **{f"spearman_{m}": rank_correlation(means, series[m]) for m in measures},
            "series": series}
