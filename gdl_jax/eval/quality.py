"""Sample quality in a feature space: the Frechet distance and precision / recall of generated
images against real ones, through one feature extractor (gdl_jax.eval.features)."""

from __future__ import annotations

import pathlib
from typing import Callable

import ml_collections
import numpy as np

from gdl_jax.errors import ConfigError
from gdl_jax.eval import frechet
from gdl_jax.eval.precision_recall import precision_recall

K = 3   # precision and recall's neighbours (the k-NN manifold radius)


def wanted(config: ml_collections.ConfigDict) -> bool:
    """Whether the config asks for feature-space metrics: config.quality_features (a classifier
    run's workdir) or config.inception_weights (the FID InceptionV3's weights file)."""
    return bool(config.get("quality_features") or config.get("inception_weights"))


def check(config: ml_collections.ConfigDict) -> None:
    """Fails before training, with a one-line error, on a feature source that cannot be read (a
    classifier run with no config or no checkpoint, an unreadable weights file) or too few
    quality_samples for precision and recall's K neighbours (or none at all, or no
    analysis.nearest_pool: the novelty of samples uses them whether or not features are set)."""
    from gdl_jax.eval import features, inception

    if "quality_samples" in config and not config.quality_samples > 0:
        raise ConfigError(f"quality_samples must be positive, got {config.quality_samples}")
    if config.get("analysis", {}).get("nearest_pool", 1) < 1:   # the training images novelty searches
        raise ConfigError(f"analysis.nearest_pool must be positive, got {config.analysis.nearest_pool}")
    if wanted(config) and not config.get("quality_samples", 0) > K:
        raise ConfigError(f"quality_samples must be more than {K} (precision and recall's neighbours), "
                          f"got {config.get('quality_samples', 0)}")
    if config.get("quality_features"):
        features.classifier_config(config.quality_features)
        checkpoints = pathlib.Path(config.quality_features) / "checkpoints"
        if not checkpoints.is_dir() or not any(p.name.isdigit() for p in checkpoints.iterdir()):
            raise ConfigError(f"quality_features {config.quality_features} has no checkpoint: train that "
                              "classifier first")
    if config.get("inception_weights"):
        inception.load_variables(config.inception_weights)


def metrics_for_config(config: ml_collections.ConfigDict, real: np.ndarray, fake: np.ndarray) -> dict:
    """{'feature_metrics': ...} in the classifier's features (config.quality_features) and
    {'inception_metrics': ...} in InceptionV3's (config.inception_weights), for those set."""
    from gdl_jax.eval.features import ClassifierFeatures
    from gdl_jax.eval.inception import InceptionFeatures

    out = {}
    if config.get("quality_features"):
        out["feature_metrics"] = feature_metrics(ClassifierFeatures.from_workdir(config.quality_features), real, fake)
    if config.get("inception_weights"):
        out["inception_metrics"] = feature_metrics(InceptionFeatures(config.inception_weights), real, fake)
    return out


def feature_metrics(features: Callable[[np.ndarray], np.ndarray], real: np.ndarray, fake: np.ndarray,
                    k: int = K) -> dict:
    """Frechet distance, precision and recall (k-NN manifolds) of `fake` against `real`: float
    images in [0, 1], NHWC, as `features` takes them."""
    f_real, f_fake = features(real), features(fake)
    fd = frechet.frechet_distance(frechet.feature_statistics(f_real), frechet.feature_statistics(f_fake))
    return {"features": getattr(features, "name", type(features).__name__), "real_images": len(real),
            "generated_images": len(fake), "frechet_distance": fd, **precision_recall(f_real, f_fake, k)}
