"""Chapter 2's CIFAR-10 classifiers (book Examples 2-1, Fig 2-13 and Fig 2-17).

Keras defaults are kept where they change the model: glorot-uniform kernels, zero biases,
BatchNormalization(momentum=0.99, epsilon=1e-3), LeakyReLU slope 0.3. Outputs are logits; the
softmax lives in the loss.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from gdl_jax.models import conv
from gdl_jax.models.dense import Dense

KERNEL_INIT = nn.initializers.glorot_uniform()
KERAS_LEAKY_SLOPE = 0.3


class MLP(nn.Module):
    """Flatten, Dense 200 relu, Dense 150 relu, Dense 10: 646,260 params (Fig 2-6)."""
    hidden: Sequence[int] = (200, 150)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        for units in self.hidden:
            x = nn.relu(Dense(units, kernel_init=KERNEL_INIT)(x))
        return Dense(self.num_classes, kernel_init=KERNEL_INIT)(x)


class SmallConvNet(nn.Module):
    """Conv 10 4x4 s2, Conv 20 3x3 s2 (no activation, as in the book), Dense 10: 15,120 params."""
    num_classes: int = 10
    subpixel_backward: bool = True  # convs via gdl_jax.models.conv (the forms it chooses); False: lax's

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv_fn = conv.conv_general_dilated if self.subpixel_backward else None
        x = nn.Conv(10, (4, 4), strides=2, padding="SAME", kernel_init=KERNEL_INIT, conv_general_dilated=conv_fn)(x)
        x = nn.Conv(20, (3, 3), strides=2, padding="SAME", kernel_init=KERNEL_INIT, conv_general_dilated=conv_fn)(x)
        x = x.reshape((x.shape[0], -1))
        return Dense(self.num_classes, kernel_init=KERNEL_INIT)(x)


class CNN(nn.Module):
    """4x [Conv, BatchNorm, LeakyReLU], Dense 128 + BN + LeakyReLU + Dropout, Dense 10.

    592,554 params: 591,914 trainable, 640 BatchNorm statistics (Fig 2-17).
    """
    features: Sequence[int] = (32, 32, 64, 64)
    strides: Sequence[int] = (1, 2, 1, 2)
    dense: int = 128
    dropout: float = 0.5
    num_classes: int = 10
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    subpixel_backward: bool = True  # convs via gdl_jax.models.conv (sub-pixel backward, thin im2col): faster on CPU
    axis_name: str | None = None    # per-device training ('pmap'): BatchNorm statistics averaged over it

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                    epsilon=self.bn_epsilon, axis_name=self.axis_name)
        act = lambda y: nn.leaky_relu(y, KERAS_LEAKY_SLOPE)
        conv_fn = conv.conv_general_dilated if self.subpixel_backward else None
        for f, s in zip(self.features, self.strides):
            x = nn.Conv(f, (3, 3), strides=s, padding="SAME", kernel_init=KERNEL_INIT,
                        conv_general_dilated=conv_fn)(x)
            x = act(norm()(x))
        x = x.reshape((x.shape[0], -1))
        x = act(norm()(Dense(self.dense, kernel_init=KERNEL_INIT)(x)))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return Dense(self.num_classes, kernel_init=KERNEL_INIT)(x)
