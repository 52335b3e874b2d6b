"""Numbers that detect a GAN's two failure modes (book Fig 4-11, 4-12) from its samples and its
logged losses."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def mean_pairwise_l1(images: np.ndarray) -> float:
    """Mean L1 distance (per pixel) over all pairs of distinct images."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    d = np.abs(flat[:, None] - flat[None]).mean(-1)
    return float(d.sum() / (len(flat) * (len(flat) - 1)))


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
