"""Pure Flax modules, built from a config by name."""

from __future__ import annotations

import numbers

import flax.linen as nn

from gdl_jax.errors import ConfigError
from gdl_jax.models.autoencoder import VAE, Autoencoder, Decoder, Encoder
from gdl_jax.models.classifiers import CNN, MLP, SmallConvNet
from gdl_jax.models.gan import ACTIVATIONS, Discriminator, Generator


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


# the fields of a module that give one value per layer (zip would silently drop a longer list's rest)
PER_LAYER = {Encoder: ("filters", "kernels", "strides"), Decoder: ("filters", "kernels", "strides"),
             CNN: ("features", "strides"), Discriminator: ("filters", "kernels", "strides"),
             Generator: ("upsample", "filters", "kernels", "strides")}


# sizes that must be positive integers: lists (per layer, or a shape) and single values
SIZE_LISTS = ("filters", "kernels", "strides", "upsample", "features", "hidden", "shape_before_flattening",
              "initial_shape")
SIZES = ("z_dim", "num_classes", "dense")


def _is_size(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0


def check(module: nn.Module, name: str) -> None:
    """ConfigError for per-layer lists of different lengths, a size (filters, kernel, stride,
    z_dim...) that is not a positive integer, a dropout rate outside [0, 1) or an unknown
    activation; the parts of an autoencoder too."""
    fields = PER_LAYER.get(type(module), ())
    for f in fields:
        if not isinstance(getattr(module, f), (tuple, list)):
            raise ConfigError(f"model {name!r}: {f} must be a list, one value per layer; got {getattr(module, f)!r}")
    for f in SIZE_LISTS:
        values = getattr(module, f, None)
        if isinstance(values, (tuple, list)) and not all(_is_size(v) for v in values):
            raise ConfigError(f"model {name!r}: every value of {f} must be a positive integer; got {tuple(values)}")
    for f in SIZES:
        if hasattr(module, f) and not _is_size(getattr(module, f)):
            raise ConfigError(f"model {name!r}: {f} must be a positive integer; got {getattr(module, f)!r}")
    dropout = getattr(module, "dropout", 0.0)
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ConfigError(f"model {name!r}: dropout must be in [0, 1); got {dropout!r}")
    lengths = {f: len(getattr(module, f)) for f in fields}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"model {name!r}: one value per layer in each of {', '.join(fields)}; got lengths "
                          + ", ".join(f"{f} {n}" for f, n in lengths.items()))
    activation = getattr(module, "activation", None)
    if activation is not None and activation not in ACTIVATIONS:
        raise ConfigError(f"model {name!r}: unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    for part in ("encoder", "decoder"):
        if isinstance(getattr(module, part, None), nn.Module):
            check(getattr(module, part), f"{name}.{part}")


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
        module = MODELS[name](**_tuples(kwargs))
    except TypeError as e:
        raise ConfigError(f"bad arguments for model {name!r}: {e}") from None
    check(module, name)
    return module


def from_config(model_config, axis_name: str | None = None) -> nn.Module:
    """The module a config's `model` section describes: `name`, and every other key as a field (an
    autoencoder's: its `encoder` and `decoder` sections)."""
    return build(model_config.name, axis_name, **{k: v for k, v in model_config.items() if k != "name"})


__all__ = ["CNN", "MLP", "VAE", "Autoencoder", "Decoder", "Discriminator", "Encoder", "Generator", "SmallConvNet",
           "MODELS", "build", "check", "from_config"]
