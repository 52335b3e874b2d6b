"""Pure Flax modules, built from a config by name."""

from __future__ import annotations

import flax.linen as nn

from gdl_jax.errors import ConfigError
from gdl_jax.models.autoencoder import VAE, Autoencoder, Decoder, Encoder
from gdl_jax.models.classifiers import CNN, MLP, SmallConvNet
from gdl_jax.models.gan import Discriminator, Generator


def _tuples(kwargs: dict) -> dict:
    """Config lists -> tuples (module fields must be hashable)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def _autoencoder(cls, variational: bool):
    def make(encoder: dict | None = None, decoder: dict | None = None) -> nn.Module:
        return cls(Encoder(**_tuples(dict(encoder or {})), variational=variational),
                   Decoder(**_tuples(dict(decoder or {}))))
    return make


MODELS = {"mlp": MLP, "small_conv": SmallConvNet, "cnn": CNN,
          "autoencoder": _autoencoder(Autoencoder, False), "vae": _autoencoder(VAE, True),
          "generator": Generator, "discriminator": Discriminator}


def build(name: str, **kwargs) -> nn.Module:
    """The module registered as `name`, with keyword overrides of its fields."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    try:
        return MODELS[name](**_tuples(kwargs))
    except TypeError as e:
        raise ConfigError(f"bad arguments for model {name!r}: {e}") from None


__all__ = ["CNN", "MLP", "VAE", "Autoencoder", "Decoder", "Discriminator", "Encoder", "Generator", "SmallConvNet",
           "MODELS", "build"]
