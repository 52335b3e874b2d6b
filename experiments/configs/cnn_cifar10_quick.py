"""The README's default job: the book's CNN for one epoch on CIFAR-10 (a few minutes on 2 CPU cores)."""

from experiments.configs.cnn_cifar10 import get_config as cnn_config


def get_config():
    c = cnn_config()
    c.figure = "Fig 2-17, 2-19 (one epoch)"
    c.num_epochs = 1
    return c
