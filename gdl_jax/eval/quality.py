"""Sample quality in a feature space: the Frechet distance and precision / recall of generated
images against real ones, through one feature extractor (gdl_jax.eval.features)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from gdl_jax.eval import frechet
from gdl_jax.eval.precision_recall import precision_recall


def metrics_for(feature_workdir: str, real: np.ndarray, fake: np.ndarray) -> dict:
    """feature_metrics with the features of the classifier trained in `feature_workdir` (a
    trainer's config.quality_features)."""
    from gdl_jax.eval.features import ClassifierFeatures
    return feature_metrics(ClassifierFeatures.from_workdir(feature_workdir), real, fake)


def feature_metrics(features: Callable[[np.ndarray], np.ndarray], real: np.ndarray, fake: np.ndarray,
                    k: int = 3) -> dict:
    """Frechet distance, precision and recall (k-NN manifolds) of `fake` against `real`: float
    images in [0, 1], NHWC, as `features` takes them."""
    f_real, f_fake = features(real), features(fake)
    fd = frechet.frechet_distance(frechet.feature_statistics(f_real), frechet.feature_statistics(f_fake))
    return {"features": getattr(features, "name", type(features).__name__), "real_images": len(real),
            "generated_images": len(fake), "frechet_distance": fd, **precision_recall(f_real, f_fake, k)}
