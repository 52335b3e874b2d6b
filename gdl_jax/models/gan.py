"""Chapter 4's GAN: the discriminator and generator of the book's Quick Draw GAN (Fig 4-4, 4-5).

Configurable as the book's GAN class: conv filters, kernels, strides, activation, dropout and
optional BatchNorm; the generator's UpSampling2D (nearest, x2) + stride-1 conv blocks. Keras
conventions: 'same' padding, BatchNorm epsilon 1e-3 with the given momentum, weights drawn from
N(0, 0.02) as the book's GAN initialises them. The discriminator returns logits (the book's
sigmoid lives in the loss, `losses.sigmoid_bce`, which is the numerically stable form).

With `subpixel` (the default) the layers take the forms `gdl_jax.models.conv` chooses, same params
and numbers: the discriminator's convs `conv.conv_general_dilated` (on CPU by rule im2col for the
1-channel first conv, sub-pixel input gradients for the strided ones, which the generator's update
goes through), each UpSampling2D + conv `conv.upsample_conv` (on CPU by rule one conv on the
low-resolution input, 0.36x the FLOPs for 5x5 kernels; on GPU/TPU lax's). Without it, lax's
convolutions everywhere.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gdl_jax.errors import ConfigError
from gdl_jax.models import conv
from gdl_jax.models.autoencoder import ConvTranspose
from gdl_jax.models.dense import Dense

GAN_INIT = nn.initializers.normal(0.02)
ACTIVATIONS = {"relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, 0.2), "tanh": jnp.tanh}


class UpsampleConv(nn.Module):
    """UpSampling2D(factor) then a stride-1 'same' Conv2D; params as nn.Conv's (kernel, bias).
    subpixel: in the form conv.upsample_conv chooses; else upsampling then lax's conv."""
    features: int
    kernel_size: int
    factor: int = 2
    subpixel: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", GAN_INIT, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.subpixel:
            return conv.upsample_conv(x, kernel, self.factor) + bias
        return conv.upsample_then_conv(x, kernel, self.factor) + bias


class Discriminator(nn.Module):
    """Convs (activation; BatchNorm after every conv but the first when batch_norm_momentum is set;
    dropout) -> Flatten -> Dense(1) logits."""
    filters: Sequence[int] = (64, 64, 128, 128)
    kernels: Sequence[int] = (5, 5, 5, 5)
    strides: Sequence[int] = (2, 2, 2, 1)
    activation: str = "relu"
    dropout: float = 0.4
    batch_norm_momentum: float | None = None
    subpixel: bool = True
    axis_name: str | None = None  # per-device training ('pmap'): BatchNorm statistics averaged over it

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv_fn = conv.conv_general_dilated if self.subpixel else lax.conv_general_dilated
        for i, (f, k, s) in enumerate(zip(self.filters, self.kernels, self.strides)):
            x = nn.Conv(f, (k, k), strides=s, padding="SAME", kernel_init=GAN_INIT,
                        conv_general_dilated=conv_fn, name=f"discriminator_conv_{i}")(x)
            if self.batch_norm_momentum and i > 0:
                x = nn.BatchNorm(use_running_average=not train, momentum=self.batch_norm_momentum, epsilon=1e-3,
                                 axis_name=self.axis_name)(x)
            x = ACTIVATIONS[self.activation](x)
            if self.dropout:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = x.reshape((x.shape[0], -1))
        return Dense(1, kernel_init=GAN_INIT, name="discriminator_output")(x)[:, 0]


class Generator(nn.Module):
    """Dense -> BatchNorm -> activation -> Reshape -> [UpSampling2D] Conv (BatchNorm, activation)
    ... -> Conv -> tanh: an image in [-1, 1]. A layer with stride > 1 (and no upsampling) is the
    book's Conv2DTranspose, as in the WGAN-GP's generator."""
    initial_shape: Sequence[int] = (7, 7, 64)
    upsample: Sequence[int] = (2, 2, 1, 1)
    filters: Sequence[int] = (128, 64, 64, 1)
    kernels: Sequence[int] = (5, 5, 5, 5)
    strides: Sequence[int] = (1, 1, 1, 1)
    activation: str = "relu"
    batch_norm_momentum: float | None = 0.9
    dropout: float = 0.0
    subpixel: bool = True
    axis_name: str | None = None  # per-device training ('pmap'): BatchNorm statistics averaged over it

    def _norm(self, x, train: bool):
        if self.batch_norm_momentum:
            x = nn.BatchNorm(use_running_average=not train, momentum=self.batch_norm_momentum, epsilon=1e-3,
                             axis_name=self.axis_name)(x)
        return x

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
        x = Dense(int(np.prod(self.initial_shape)), kernel_init=GAN_INIT)(z)
        x = ACTIVATIONS[self.activation](self._norm(x, train))
        x = x.reshape((x.shape[0], *self.initial_shape))
        if self.dropout:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        last = len(self.filters) - 1
        for i, (f, k, s, up) in enumerate(zip(self.filters, self.kernels, self.strides, self.upsample)):
            name = f"generator_conv_{i}"
            if up > 1 and s == 1:
                x = UpsampleConv(f, k, up, self.subpixel, name=name)(x)
            elif up > 1:
                raise ConfigError(f"generator layer {i}: upsample {up} with stride {s}; use one or the other")
            elif s > 1:  # the book's Conv2DTranspose, 'same': the size times s
                x = ConvTranspose(f, (k, k), (s, s), self.subpixel, GAN_INIT, name=name)(x)
            else:
                x = nn.Conv(f, (k, k), padding="SAME", kernel_init=GAN_INIT, name=name)(x)
            x = ACTIVATIONS[self.activation](self._norm(x, train)) if i < last else jnp.tanh(x)
        return x
