"""Book 2.3: the CNN with BatchNorm and Dropout (Fig 2-17 summary, Fig 2-18 test accuracy 71.5%, Fig 2-19)."""

from experiments.configs.common import classifier_config


def get_config():
    return classifier_config("cnn", "Fig 2-17, 2-18, 2-19")
