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
    def make(encoder: dict | None = None, decoder: dict | None = None, axis_name: str | None = None) -> nn.Module:
        parts = (Encoder(**_tuples(dict(encoder or {})), variational=variational, axis_name=axis_name),
                 Decoder(**_tuples(dict(decoder or {})), axis_name=axis_name))
        return cls(*parts, axis_name=axis_name) if variational else cls(*parts)
    return make


MODELS = {"mlp": MLP, "small_conv": SmallConvNet, "cnn": CNN,
          "autoencoder": _autoencoder(Autoencoder, False), "vae": _autoencoder(VAE, True),
          "generator": Generator, "discriminator": Discriminator}


# models without BatchNorm or sampled noise: the same code per device and globally
NO_AXIS = ("mlp", "small_conv")


def build(name: str, axis_name: str | None = None, **kwargs) -> nn.Module:
    """The module registered as `name`, with keyword overrides of its fields. axis_name: the
    device axis of per-device training (gdl_jax.parallel's 'pmap' backend), for BatchNorm
    statistics and the VAE's noise."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    if name not in NO_AXIS:
        kwargs["axis_name"] = axis_name
    try:
        return MODELS[name](**_tuples(kwargs))
    except TypeError as e:
        raise ConfigError(f"bad arguments for model {name!r}: {e}") from None


__all__ = ["CNN", "MLP", "VAE", "Autoencoder", "Decoder", "Discriminator", "Encoder", "Generator", "SmallConvNet",
           "MODELS", "build"]
