"""Book 2.2: the two-layer conv net (Fig 2-13, summary Fig 2-14: 15,120 params)."""

from experiments.configs.common import classifier_config


def get_config():
    return classifier_config("small_conv", "Fig 2-13, 2-14")
