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


def loss_oscillation(values: Sequence[float], window: int = 25) -> float:
    """How far a loss swings about its trend over the second half of a run: the standard
    deviation of its `window`-step moving average around the straight line fitted to that
    average. Per-step noise averages out and a steady rise (the GAN's generator loss) is the
    trend, so a settled run gives a small number and losses that swing between extremes for
    tens of steps at a time (Fig 4-11) a large one, in the loss's own units."""
    half = np.asarray(values[len(values) // 2:], np.float64)
    if len(half) < 4:
        return 0.0
    w = max(1, min(window, len(half) // 2))
    smooth = np.convolve(half, np.ones(w) / w, mode="valid")
    t = np.arange(len(smooth))
    return float(np.std(smooth - np.polyval(np.polyfit(t, smooth, 1), t)))
