"""The book's CNN (2.3) trained on MNIST digits: the feature extractor of the sample-quality
metrics for 28x28 greyscale images (MNIST, Quick Draw), gdl_jax.eval.features."""

from experiments.configs.common import classifier_config


def get_config():
    c = classifier_config("cnn", "features for the Frechet distance of 28x28 greyscale samples")
    c.data.name = "mnist"
    c.num_epochs = 3
    return c
