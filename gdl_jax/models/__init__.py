"""Pure Flax modules, built from a config by name."""

from __future__ import annotations

import flax.linen as nn

from gdl_jax.errors import ConfigError
from gdl_jax.models.classifiers import CNN, MLP, SmallConvNet

MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "small_conv": SmallConvNet, "cnn": CNN}


def build(name: str, **kwargs) -> nn.Module:
    """The module registered as `name`, with keyword overrides of its fields."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad arguments for model {name!r}: {e}") from None
