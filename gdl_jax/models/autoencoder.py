"""Chapter 3's encoder, decoder, autoencoder and VAE (book Examples 3-1..3-3, Fig 3-16/3-17).

Configurable as in the book's Autoencoder class: conv filters, kernels and strides, z_dim, and
optional BatchNorm + Dropout(0.25) after each conv. Keras conventions are kept (glorot-uniform,
LeakyReLU 0.3, BatchNorm momentum 0.99 / eps 1e-3, 'same' padding).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gdl_jax import parallel
from gdl_jax.models import conv
from gdl_jax.models.classifiers import KERAS_LEAKY_SLOPE, KERNEL_INIT
from gdl_jax.models.dense import Dense


class ConvTranspose(nn.Module):
    """Keras' Conv2DTranspose(padding='same'): the transpose of a 'same' conv, output = input x stride.

    The kernel has nn.ConvTranspose(transpose_kernel=True)'s shape and meaning,
    (kh, kw, features, in_features), so the parameter counts are Keras'. With `subpixel`, it runs
    as `conv.conv_transpose` (stride-1 phase convs forward, a strided conv backward: fast on
    XLA:CPU); otherwise as lax.conv_transpose. Both give the same numbers.
    """
    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    subpixel: bool = True
    kernel_init: nn.initializers.Initializer = KERNEL_INIT

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, self.features, x.shape[-1]))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        out_hw = (x.shape[1] * self.strides[0], x.shape[2] * self.strides[1])
        if self.subpixel:
            pads = lax.padtype_to_pads(out_hw, self.kernel_size, self.strides, "SAME")
            y = conv.conv_transpose(x, kernel, self.strides, tuple(map(tuple, pads)), out_hw)
        else:
            y = lax.conv_transpose(x, kernel, self.strides, "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"), transpose_kernel=True)
        return y + bias


def _block(x, layer: nn.Module, use_batch_norm: bool, dropout: float, train: bool, axis_name: str | None):
    x = layer(x)
    if use_batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3, axis_name=axis_name)(x)
    x = nn.leaky_relu(x, KERAS_LEAKY_SLOPE)
    if dropout:
        x = nn.Dropout(dropout, deterministic=not train)(x)
    return x


class Encoder(nn.Module):
    """Convs -> Flatten -> Dense z_dim (autoencoder) or Dense mu, Dense log_var (variational)."""
    filters: Sequence[int] = (32, 64, 64, 64)
    kernels: Sequence[int] = (3, 3, 3, 3)
    strides: Sequence[int] = (1, 2, 2, 1)
    z_dim: int = 2
    use_batch_norm: bool = False
    dropout: float = 0.0
    variational: bool = False
    subpixel: bool = True  # convs via gdl_jax.models.conv (sub-pixel backward, thin im2col): faster on CPU
    axis_name: str | None = None  # per-device training ('pmap'): BatchNorm statistics averaged over it

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False):
        for f, k, s in zip(self.filters, self.kernels, self.strides):
            layer = nn.Conv(f, (k, k), strides=s, padding="SAME", kernel_init=KERNEL_INIT,
                            conv_general_dilated=conv.conv_general_dilated if self.subpixel else None)
            x = _block(x, layer, self.use_batch_norm, self.dropout, train, self.axis_name)
        x = x.reshape((x.shape[0], -1))
        if not self.variational:
            return Dense(self.z_dim, kernel_init=KERNEL_INIT, name="encoder_output")(x)
        mu = Dense(self.z_dim, kernel_init=KERNEL_INIT, name="mu")(x)
        log_var = Dense(self.z_dim, kernel_init=KERNEL_INIT, name="log_var")(x)
        return mu, log_var


class Decoder(nn.Module):
    """Dense -> Reshape -> ConvTransposes (LeakyReLU, optional BN + Dropout) -> sigmoid."""
    shape_before_flattening: Sequence[int] = (7, 7, 64)
    filters: Sequence[int] = (64, 64, 32, 1)
    kernels: Sequence[int] = (3, 3, 3, 3)
    strides: Sequence[int] = (1, 2, 2, 1)
    use_batch_norm: bool = False
    dropout: float = 0.0
    subpixel: bool = True
    axis_name: str | None = None  # per-device training ('pmap'): BatchNorm statistics averaged over it

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
        x = Dense(int(np.prod(self.shape_before_flattening)), kernel_init=KERNEL_INIT)(z)
        x = x.reshape((x.shape[0], *self.shape_before_flattening))
        last = len(self.filters) - 1
        for i, (f, k, s) in enumerate(zip(self.filters, self.kernels, self.strides)):
            layer = ConvTranspose(f, (k, k), (s, s), self.subpixel, name=f"decoder_conv_t_{i}")
            if i < last:
                x = _block(x, layer, self.use_batch_norm, self.dropout, train, self.axis_name)
            else:
                x = nn.sigmoid(layer(x))
        return x


def reparameterize(key: jax.Array, mu: jax.Array, log_var: jax.Array, axis_name: str | None = None) -> jax.Array:
    """z = mu + exp(log_var / 2) * eps, eps ~ N(0, I): a sample of N(mu, exp(log_var))
    that is differentiable in mu and log_var. Per device (axis_name), eps is this device's rows
    of the global batch's draw."""
    eps = parallel.global_draw(lambda k, shape: jax.random.normal(k, shape, mu.dtype), key, mu.shape, axis_name)
    return mu + jnp.exp(log_var / 2) * eps


class Autoencoder(nn.Module):
    """x -> z -> x_hat (book 3.1)."""
    encoder: Encoder
    decoder: Decoder

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.decoder(self.encoder(x, train), train)


class VAE(nn.Module):
    """x -> (mu, log_var) -> z (sampled with the 'latent' rng stream) -> x_hat (book 3.3, 3.4).
    axis_name: per-device training ('pmap') draws z's noise for the global batch; inference
    (train=False) is always global code."""
    encoder: Encoder
    decoder: Decoder
    axis_name: str | None = None

    def __call__(self, x: jax.Array, train: bool = False):
        mu, log_var = self.encoder(x, train)
        z = reparameterize(self.make_rng("latent"), mu, log_var, self.axis_name if train else None)
        return self.decoder(z, train), mu, log_var
