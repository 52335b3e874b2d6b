"""A Keras-style layer table: layer, output shape, params; trainable vs non-trainable totals."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gdl_jax.models import conv


@dataclasses.dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    output_shape: tuple
    trainable: int
    non_trainable: int


@dataclasses.dataclass(frozen=True)
class Summary:
    layers: tuple[Layer, ...]

    @property
    def trainable(self) -> int:
        return sum(l.trainable for l in self.layers)

    @property
    def non_trainable(self) -> int:
        return sum(l.non_trainable for l in self.layers)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __str__(self) -> str:
        rows = [("Layer (type)", "Output Shape", "Param #")]
        rows += [(f"{l.name} ({l.kind})", str((None,) + l.output_shape[1:]),
                  f"{l.trainable + l.non_trainable:,}") for l in self.layers]
        w = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "-" * sum(w)
        out = [line, "".join(c.ljust(w[i]) for i, c in enumerate(rows[0])), "=" * sum(w)]
        out += ["".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows[1:]]
        out += ["=" * sum(w), f"Total params: {self.total:,}",
                f"Trainable params: {self.trainable:,}",
                f"Non-trainable params: {self.non_trainable:,}", line]
        return "\n".join(out)


def _count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def summarize(model: nn.Module, input_shape: tuple, **call_kwargs) -> Summary:
    """One row per leaf submodule, in call order, from shape evaluation only (no FLOPs run).

    Trainable = the 'params' collection; non-trainable = every other collection (BatchNorm's
    running statistics), as Keras counts them.
    """
    calls: list[tuple[tuple[str, ...], str, object]] = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and context.module.scope is not None:
            path = tuple(context.module.scope.path)
            if path:
                calls.append((path, type(context.module).__name__, out))
        return out

    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    x = jax.ShapeDtypeStruct(input_shape, jnp.float32)
    with nn.intercept_methods(record), conv.forms("lax"):   # shapes only: no form to time
        variables = jax.eval_shape(lambda x: model.init(rngs, x, **call_kwargs), x)
    leaves = [c for c in calls if not any(o[0][:len(c[0])] == c[0] and o[0] != c[0] for o in calls)]

    def count(collection, path):
        tree = variables.get(collection, {})
        for name in path:
            tree = tree.get(name, {}) if isinstance(tree, dict) else {}
        return _count(tree)

    layers = tuple(
        Layer("/".join(path), kind, tuple(out.shape), count("params", path),
              sum(count(c, path) for c in variables if c != "params"))
        for path, kind, out in leaves)
    return Summary(layers)
