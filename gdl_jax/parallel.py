"""Data parallelism: one device mesh over every device of every host, the batch axis sharded
over it, and two backends that run the same step code on it.

- 'sharded' (default): the step is global code under jit; the batch arrives sharded over the
  mesh and the compiler inserts the collectives (GSPMD).
- 'pmap': the step runs as per-device code with the axis name `DATA_AXIS` (`jax.shard_map`
  over the same mesh, which is what `jax.pmap` is built on in this JAX): gradients, BatchNorm
  statistics and metrics are averaged with `lax.pmean` explicitly, as in the flax imagenet
  example.

Step functions take `axis_name` (None under 'sharded') and call `mean`, `device_key` and
`global_draw`, which do nothing when it is None: one step code, and one device is the case n=1.
Random draws that a step makes per example (latent noise, the penalty's alpha) are drawn for
the whole global batch and sliced, so a run on n devices draws what one device would; dropout
masks come from a per-device key. Multi-host runs call `initialize_distributed()` first
(jax.distributed reads the coordinator from the cluster environment).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gdl_jax.errors import ConfigError

DATA_AXIS = "data"
BACKENDS = ("sharded", "pmap")


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Joins a multi-host job: with the three arguments, or (None) from the cluster's environment
    (SLURM, Open MPI, TPU pods, or JAX_COORDINATOR_ADDRESS et al.), as jax.distributed reads it."""
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_writer() -> bool:
    """Whether this process writes a run's files (config, metrics, figures, results): process 0
    only, so that the processes of a multi-host run write each file once. (Every process takes
    part in computations and in orbax's checkpoint saves.)"""
    return jax.process_index() == 0


def raise_on_every_process(error: Exception | None) -> None:
    """Raises `error` where it was met. In a multi-host run, where process 0 alone checked something
    (the workdir), the other processes raise too, a ConfigError that points at process 0's
    message, instead of waiting at the next collective for a process that has gone."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        if int(multihost_utils.broadcast_one_to_all(np.int32(error is not None))) and error is None:
            raise ConfigError("process 0 refused this run; its error says why")
    if error is not None:
        raise error


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh named 'data' over all devices (global, across hosts), or over the first
    `num_devices` of them (to compare device counts in one process; a single process only)."""
    if num_devices is not None:
        if not 1 <= num_devices <= jax.device_count():
            raise ConfigError(f"num_devices must be 1 to {jax.device_count()} (the devices here), got {num_devices}")
        if jax.process_count() > 1 and num_devices != jax.device_count():
            raise ConfigError("a multi-host run uses every device of every host; num_devices cannot pick some")
    return Mesh(np.asarray(jax.devices()[:num_devices]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """A whole copy on every device of the mesh (params, optimizer state, data held on device)."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Split on the first (batch) axis over the mesh's data axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """A ConfigError unless the batch splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the {n} devices of the mesh")


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Places host arrays (identical on every host) on every device of the mesh."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def check_backend(backend: str) -> None:
    """A ConfigError naming the valid data-parallel backends for any other."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown parallel backend {backend!r}; expected one of {list(BACKENDS)}")


def axis_name(backend: str) -> str | None:
    """The device axis name step code and models see: DATA_AXIS under 'pmap', None under 'sharded'."""
    check_backend(backend)
    return DATA_AXIS if backend == "pmap" else None


def data_parallel(step_fn: Callable, backend: str, mesh: Mesh) -> Callable:
    """step_fn(state, batch, axis_name=...) as the loop calls it, (state, batch) -> (state,
    metrics) on a replicated state and a batch sharded over the mesh on its first axis.
    Under 'pmap' the per-device step must return the same state and metrics on every device
    (everything it computes from its rows averaged over the devices)."""
    name = axis_name(backend)
    if name is None:
        def sharded_step(state, batch):
            # the mesh in context while tracing: global_draw shards its draws over it
            with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
                return step_fn(state, batch)
        return sharded_step
    # check_vma=False: pmap's semantics, where a gradient is this device's own until the step
    # averages it (with the check, JAX would sum every parameter's gradient over the devices itself)
    return jax.shard_map(lambda state, batch: step_fn(state, batch, axis_name=name), mesh=mesh,
                         in_specs=(P(), P(name)), out_specs=(P(), P()), check_vma=False)


def mean(tree: Any, axis_name: str | None) -> Any:
    """The mean of every leaf over the devices (per-device code); the tree itself when axis_name is None."""
    return tree if axis_name is None else lax.pmean(tree, axis_name)


def device_key(key: jax.Array, axis_name: str | None) -> jax.Array:
    """A key of this device's own (per-device code, e.g. for dropout); `key` when axis_name is None."""
    return key if axis_name is None else jax.random.fold_in(key, lax.axis_index(axis_name))


def global_draw(sample: Callable[[jax.Array, tuple], jax.Array], key: jax.Array, shape: tuple[int, ...],
                axis_name: str | None) -> jax.Array:
    """sample(key, shape) for this device's rows of the whole batch's draw: the draw for
    shape[0] x devices rows, sliced at this device's (per-device code), so that n devices draw
    what one device would for the global batch. When axis_name is None, sample(key, shape),
    sharded on its first axis over the data axis of the mesh in context ('sharded' steps trace
    with theirs): a draw left replicated makes everything computed from it (a GAN's fakes) run
    whole on every device."""
    if axis_name is None:
        x = sample(key, shape)
        mesh = jax.sharding.get_abstract_mesh()
        if not mesh.empty and DATA_AXIS in mesh.axis_names:
            x = lax.with_sharding_constraint(x, P(DATA_AXIS))
        return x
    n = shape[0]
    full = sample(key, (n * lax.axis_size(axis_name), *shape[1:]))
    return lax.dynamic_slice_in_dim(full, lax.axis_index(axis_name) * n, n)
