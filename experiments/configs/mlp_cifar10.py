"""Book 2.1: the MLP on CIFAR-10 (Fig 2-6 summary, Fig 2-7/2-8 accuracy 51.9% / 49.0%, Fig 2-9)."""

from experiments.configs.common import classifier_config


def get_config():
    return classifier_config("mlp", "Fig 2-6, 2-7, 2-8, 2-9")
