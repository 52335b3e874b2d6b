"""One device mesh over every device of every host; the batch axis is sharded over it.

One device is the case n=1 of the same code. Multi-host runs call `initialize_distributed()`
first (jax.distributed reads the coordinator from the cluster environment).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gdl_jax.errors import ConfigError

DATA_AXIS = "data"


def initialize_distributed() -> None:
    """Joins a multi-host job (SLURM, TPU pods, or JAX_COORDINATOR_ADDRESS et al.)."""
    jax.distributed.initialize()


def make_mesh() -> Mesh:
    """A 1-D mesh named 'data' over all devices (global, across hosts)."""
    return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the {n} devices of the mesh")


def put_replicated(tree, mesh: Mesh):
    """Places host arrays (identical on every host) on every device of the mesh."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)
