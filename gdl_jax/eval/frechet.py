"""The Frechet distance between two sets of features (FID when the features are InceptionV3's).

    FD = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

of the Gaussians with each set's mean and covariance. The features come from any extractor
(gdl_jax.eval.features); the statistics and the matrix square root are computed on the host in
float64: a float32 covariance of thousands of 2048-d features loses the digits that the
difference of traces above needs. The square root uses symmetric eigendecompositions only:
for PSD S_1 = A^2, the eigenvalues of S_1 S_2 are those of the PSD matrix A S_2 A, so
Tr((S_1 S_2)^(1/2)) is the sum of their square roots, with no complex arithmetic and no
iterative solver.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gdl_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance (unbiased, float64) of `count` feature vectors."""
    mean: np.ndarray
    cov: np.ndarray
    count: int


def feature_statistics(features: np.ndarray) -> FeatureStats:
    """The mean and covariance of (N, d) features, N >= 2."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ConfigError(f"features must be (N >= 2, d), got shape {f.shape}")
    return FeatureStats(f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1]), len(f))


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """The symmetric PSD square root of a symmetric PSD matrix (eigenvalues below 0, from
    rounding, taken as 0)."""
    a = np.asarray(a, np.float64)
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr((s1 s2)^(1/2)) for symmetric PSD s1, s2."""
    a = sqrtm_psd(s1)
    m = a @ np.asarray(s2, np.float64) @ a
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """The Frechet distance between the Gaussians of two feature statistics."""
    if a.mean.shape != b.mean.shape:
        raise ConfigError(f"feature sizes differ: {a.mean.shape[0]} and {b.mean.shape[0]}")
    diff = a.mean - b.mean
    value = diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * trace_sqrt_product(a.cov, b.cov)
    return float(max(value, 0.0))
