"""Statistics of a latent space: how Gaussian it is, attribute directions, sample quality."""

from __future__ import annotations

import numpy as np
from scipy import stats


def gaussianity(z: np.ndarray) -> dict[str, list[float]]:
    """Per latent dimension: mean, std, and the Kolmogorov-Smirnov distance to N(0, 1)."""
    return {"mean": z.mean(0).tolist(), "std": z.std(0).tolist(),
            "ks_to_standard_normal": [float(stats.kstest(z[:, d], "norm").statistic) for d in range(z.shape[1])]}


def attribute_vectors(z: np.ndarray, attributes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per attribute, mean z of the examples with it minus mean z of those without (book 3.6).

    z: (N, d) codes; attributes: (N, A) of +1 / -1. Returns the (A, d) vectors and the (A,)
    counts of examples with each attribute; an attribute that every example has (or none has)
    gets a zero vector.
    """
    has = np.asarray(attributes) > 0
    counts = has.sum(0)
    with_ = (has.T.astype(np.float64) @ z) / np.maximum(counts, 1)[:, None]
    without = ((~has).T.astype(np.float64) @ z) / np.maximum(len(z) - counts, 1)[:, None]
    defined = (counts > 0) & (counts < len(z))
    return np.where(defined[:, None], with_ - without, 0.0).astype(np.float32), counts


def sample_latents(rng: np.random.Generator, z: np.ndarray, variational: bool, n: int) -> np.ndarray:
    """Random latent points as the book draws them: N(0, I) for the VAE; for the AE, whose code
    distribution is undefined, uniform over the bounding box of the encoded test set."""
    if variational:
        return rng.normal(size=(n, z.shape[1]))
    return rng.uniform(z.min(0), z.max(0), size=(n, z.shape[1]))


def nearest_real_mse(samples: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per sample, the mean squared pixel error to its nearest real image: a score of how poorly
    formed a generated image is (one that looks like no real digit is far from all of them)."""
    a = samples.reshape(len(samples), -1).astype(np.float64)
    b = real.reshape(len(real), -1).astype(np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(sq.min(1), 0) / a.shape[1]


def worst_separated(points: np.ndarray, scores: np.ndarray, n: int, min_distance: float) -> np.ndarray:
    """Indices of the n highest-scoring points, each at least min_distance from those chosen
    before it (so a figure shows n different places, not one spot n times)."""
    chosen: list[int] = []
    for i in np.argsort(scores)[::-1]:
        if all(np.linalg.norm(points[i] - points[j]) >= min_distance for j in chosen):
            chosen.append(int(i))
        if len(chosen) == n:
            break
    return np.array(chosen)
