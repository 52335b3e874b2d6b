"""The explicit train state: one pytree of everything a run needs to continue."""

from __future__ import annotations

import zlib
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from gdl_jax import parallel
from gdl_jax.errors import ConfigError
from gdl_jax.models import conv


class TrainState(struct.PyTreeNode):
    """step, params, batch_stats, opt_state and the run's root rng; apply_fn and tx are static."""
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
               sample_input: jax.Array, compute_dtype: str = "float32") -> "TrainState":
        """Initialises the model's variables from `rng` and the optimizer state from the params;
        the model computes in `compute_dtype` (see `mixed_precision`). The init pass runs lax's
        convolutions: the variables do not depend on the forms, and under 'layer' every conv of
        the sample's shape would be timed for nothing."""
        init_rng, run_rng = jax.random.split(rng)
        streams = {"params": init_rng, "dropout": jax.random.fold_in(init_rng, 1),
                   "latent": jax.random.fold_in(init_rng, 2)}
        with conv.forms("lax"):
            variables = model.init(streams, sample_input, train=False)
        params = variables["params"]
        return cls(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                   batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
                   rng=run_rng, apply_fn=mixed_precision(model.apply, compute_dtype), tx=tx)

    def apply_gradients(self, grads, batch_stats) -> "TrainState":
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)

    def descend(self, loss_fn: Callable[[Any], tuple[jax.Array, tuple[Any, dict]]],
                axis_name: str | None = None) -> tuple["TrainState", jax.Array, Any]:
        """One optimizer step down loss_fn(params) -> (loss, (aux, mutated)): the gradients
        averaged over the devices (per-device code), the BatchNorm statistics from `mutated`
        (kept when it has none). Returns the new state, this device's loss and aux."""
        (loss, (aux, mutated)), grads = jax.value_and_grad(loss_fn, has_aux=True)(self.params)
        state = self.apply_gradients(parallel.mean(grads, axis_name), mutated.get("batch_stats", self.batch_stats))
        return state, loss, aux

    def variables(self, params=None) -> dict:
        """The model's variables for apply: `params` (default: the state's) and batch_stats."""
        return {"params": self.params if params is None else params, "batch_stats": self.batch_stats}

    def step_rng(self, name: str) -> jax.Array:
        """A key for this step only: a pure function of (root rng, step, name)."""
        return step_key(self.rng, self.step, name)


COMPUTE_DTYPES = ("float32", "bfloat16")


def check_compute_dtype(compute_dtype: str) -> str:
    """compute_dtype itself; a ConfigError unless it is one of COMPUTE_DTYPES."""
    if compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"compute_dtype must be one of {list(COMPUTE_DTYPES)}, got {compute_dtype!r}")
    return compute_dtype


def mixed_precision(apply_fn: Callable, compute_dtype: str) -> Callable:
    """apply_fn computing in `compute_dtype`: float32 params and floating inputs are cast to it on
    the way in, floating outputs back to float32 on the way out. The params, their gradients
    (through the casts), the optimizer state, BatchNorm's running statistics (flax reduces them
    in float32) and every loss stay float32; only the forward and backward passes run in
    bfloat16. 'float32' returns apply_fn itself."""
    if check_compute_dtype(compute_dtype) == "float32":
        return apply_fn
    dtype = jnp.dtype(compute_dtype)
    cast = lambda tree, to: jax.tree.map(lambda x: x.astype(to) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)

    def apply(variables, *args, **kwargs):
        variables = {**variables, "params": cast(variables["params"], dtype)}
        return cast(apply_fn(variables, *cast(args, dtype), **kwargs), jnp.float32)
    return apply


def step_key(rng: jax.Array, step: jax.Array, name: str) -> jax.Array:
    """The key of stream `name` at `step`: a pure function of (root rng, step, name), so a
    resumed run draws the same numbers."""
    return jax.random.fold_in(jax.random.fold_in(rng, step), zlib.crc32(name.encode()))
