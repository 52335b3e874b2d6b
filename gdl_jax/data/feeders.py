"""The training loop's two feeders: a data set held whole on device, or a streamed host source.

Both serve the same loop (gdl_jax.train.loop): for a dispatch of k steps starting at global step
s, `get(s, k)` returns the arrays that jitted dispatch takes, and `batch(args, j)` (traced inside
that jit) builds its j-th batch. The batch order of an epoch is `epoch_permutation(key, epoch)`
for both, so a run sees the same batches whichever feeder serves it, and a resumed run sees the
same batches as an uninterrupted one.

- `DeviceFeeder`: small data sets (MNIST, CIFAR-10) stored uint8 on device; each dispatch gathers
  its batches by index on device. No host work per step.
- `StreamFeeder`: data sets too large for device memory (CelebA). Worker threads decode batches
  up to `prefetch` steps ahead into a bounded queue; after each dispatch the loop calls
  `stage(next_step, next_k)`, which puts the next dispatch's batches on device while the current
  one runs (dispatch is asynchronous).
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gdl_jax import parallel
from gdl_jax.data.pipeline import DeviceData, epoch_permutation, gather_batch, steps_per_epoch, to_float
from gdl_jax.data.sources import ArrayData
from gdl_jax.errors import ConfigError


class Feeder(Protocol):
    """What the loop needs from a feeder."""
    num_examples: int
    steps_per_epoch: int

    def get(self, step: int, k: int) -> tuple:
        """The arguments of the dispatch that runs steps step .. step + k - 1 (one epoch only)."""

    def batch(self, args: tuple, j: int) -> tuple[jax.Array, jax.Array]:
        """Inside jit: (float images, labels) of the dispatch's j-th step, batch-sharded."""

    def stage(self, step: int, k: int) -> None:
        """Prepares get(step, k) ahead of time (may do nothing)."""

    def close(self) -> None:
        """Releases threads and buffers."""


class StreamSource(Protocol):
    """A random-access data set on the host: `load` decodes the images of some indices."""

    def __len__(self) -> int: ...

    def load(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (len(indices), H, W, C)."""


class ArraySource:
    """An `ArrayData` seen as a stream source (tests and small data sets)."""

    def __init__(self, data: ArrayData):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def load(self, indices: np.ndarray) -> np.ndarray:
        return self.data.images[indices]


class DeviceFeeder:
    """Batches gathered on device from a data set held whole on device."""

    def __init__(self, data: DeviceData, shuffle_key: jax.Array, batch_size: int, mesh: Mesh,
                 value_range: tuple[float, float] = (0.0, 1.0)):
        self.data, self.batch_size, self.mesh, self.value_range = data, batch_size, mesh, value_range
        self.num_examples = int(data.images.shape[0])
        self.steps_per_epoch = steps_per_epoch(self.num_examples, batch_size)
        self._perm = jax.jit(lambda e: epoch_permutation(shuffle_key, e, self.num_examples))
        self._epoch, self._epoch_perm = None, None

    def get(self, step: int, k: int) -> tuple:
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._epoch_perm = epoch, self._perm(epoch)
        return self.data, self._epoch_perm, jnp.int32(index)

    def batch(self, args: tuple, j: int) -> tuple[jax.Array, jax.Array]:
        data, perm, first = args
        return gather_batch(data, perm, first + j, self.batch_size, self.mesh, self.value_range)

    def stage(self, step: int, k: int) -> None:
        pass

    def close(self) -> None:
        pass


class StreamFeeder:
    """Batches decoded on the host by worker threads and put on device one dispatch ahead.

    Decoding runs in `workers` threads, or with `processes` in as many spawned processes: Pillow
    holds the GIL for part of each image, so threads stop scaling at about one core's worth
    (measured on a 16-core host: 2,707 faces/s with 2 threads, 2,063 with 8; 10,454 with 8
    processes). Each host decodes only its own rows of every global batch (its share of the
    mesh's devices), so a multi-host run reads each image once. `labels` (optional, per example)
    go along with the images; without them the labels are zeros.
    """

    def __init__(self, source: StreamSource, shuffle_key: jax.Array, batch_size: int, mesh: Mesh,
                 value_range: tuple[float, float] = (0.0, 1.0), labels: np.ndarray | None = None,
                 workers: int = 2, prefetch: int = 8, processes: bool = False):
        if workers <= 0 or prefetch <= 0:
            raise ConfigError(f"stream workers and prefetch must be positive, got {workers} and {prefetch}")
        parallel.check_batch_size(batch_size, mesh)
        self.source, self.batch_size, self.mesh, self.value_range = source, batch_size, mesh, value_range
        self.num_examples = len(source)
        self.steps_per_epoch = steps_per_epoch(self.num_examples, batch_size)
        self.labels = (np.zeros(self.num_examples, np.int32) if labels is None
                       else np.asarray(labels, np.int32))
        # the epoch orders are computed on the host's CPU device: on an accelerator they would queue
        # behind the running dispatch and stall the decode queue once an epoch (threefry gives the
        # same bits on every backend, so the order is the device feeder's)
        try:
            self._key = jax.device_put(jax.device_get(shuffle_key), jax.devices("cpu")[0])
        except RuntimeError:   # JAX_PLATFORMS without cpu: the default device it is
            self._key = shuffle_key
        self._perms: dict[int, np.ndarray] = {}
        self._rows = _process_rows(batch_size, mesh)
        self._sharding = NamedSharding(mesh, P(None, parallel.DATA_AXIS))   # (k, batch, ...)
        if processes:  # spawned, not forked: the parent runs JAX's threads
            self._pool = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"), initializer=_set_worker_source,
                initargs=(source,))
            self._decode = _worker_load
        else:
            self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="gdl-feeder")
            self._decode = source.load
        self._prefetch = prefetch
        # (step, (decode future, labels)) for the next `prefetch` steps, oldest first
        self._queue: collections.deque[tuple[int, tuple[concurrent.futures.Future, np.ndarray]]] = \
            collections.deque()
        self._next_submit = 0
        self._staged: tuple[tuple[int, int], tuple] | None = None
        # the last dispatch served: asked for again (the convolution-form timing, then the loop's
        # first dispatch) it is served again instead of restarting the decode queue there
        self._served: tuple[tuple[int, int], tuple] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        """The epoch's order, computed by the same function as on device (kept for 2 epochs), on the
        CPU device."""
        if epoch not in self._perms:
            self._perms = {e: p for e, p in self._perms.items() if e == epoch - 1}
            self._perms[epoch] = np.asarray(jax.device_get(
                epoch_permutation(self._key, epoch, self.num_examples)))
        return self._perms[epoch]

    def _indices(self, step: int) -> np.ndarray:
        """This process's example indices for global step `step`."""
        epoch, index = divmod(step, self.steps_per_epoch)
        batch = self._permutation(epoch)[index * self.batch_size:(index + 1) * self.batch_size]
        return batch[self._rows]

    def _submit(self) -> None:
        """Queues the decode of step `_next_submit` (indices computed here, on the caller's thread)."""
        idx = self._indices(self._next_submit)
        self._queue.append((self._next_submit, (self._pool.submit(self._decode, idx), self.labels[idx])))
        self._next_submit += 1

    def _take(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The host batch of `step` from the prefetch queue (restarted there if it is elsewhere)."""
        if not self._queue or self._queue[0][0] != step:
            for _, (future, _) in self._queue:
                future.cancel()
            self._queue.clear()
            self._next_submit = step
        while len(self._queue) < self._prefetch:
            self._submit()
        _, (future, labels) = self._queue.popleft()
        self._submit()
        return future.result(), labels

    def _put(self, step: int, k: int) -> tuple:
        host = [self._take(s) for s in range(step, step + k)]
        images = np.stack([h[0] for h in host])
        labels = np.stack([h[1] for h in host])
        return tuple(jax.make_array_from_process_local_data(self._sharding, x) for x in (images, labels))

    def stage(self, step: int, k: int) -> None:
        self._staged = ((step, k), self._put(step, k))

    def get(self, step: int, k: int) -> tuple:
        staged, self._staged = self._staged, None
        if staged is not None and staged[0] == (step, k):
            self._served = staged
        elif self._served is None or self._served[0] != (step, k):
            self._served = ((step, k), self._put(step, k))
        return self._served[1]

    def batch(self, args: tuple, j: int) -> tuple[jax.Array, jax.Array]:
        images, labels = args
        sharding = parallel.batch_sharded(self.mesh)
        return (jax.lax.with_sharding_constraint(to_float(images[j], self.value_range), sharding),
                jax.lax.with_sharding_constraint(labels[j], sharding))

    def close(self) -> None:
        for _, (future, _) in self._queue:
            future.cancel()
        self._queue.clear()
        self._staged = self._served = None
        self._pool.shutdown(wait=True, cancel_futures=True)


_WORKER_SOURCE: StreamSource | None = None


WATCH_PARENT_S = 1.0   # how often a decode process checks that the training process is alive


def _set_worker_source(source: StreamSource) -> None:
    """Runs once in each decode process: the source it serves. It ignores SIGINT: a terminal's
    Ctrl-C reaches it too, and the training process, not its decoders, decides how to stop (its
    loop saves a checkpoint first; closing the feeder ends the decoders). It exits when the
    training process is gone: one killed outright (SIGKILL, the OOM killer) never closes its
    feeder, and an idle decoder would wait on its queue for ever."""
    global _WORKER_SOURCE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_SOURCE = source
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_PARENT_S)
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="gdl-watch-parent").start()


def _worker_load(idx: np.ndarray) -> np.ndarray:
    return _WORKER_SOURCE.load(idx)


def _process_rows(batch_size: int, mesh: Mesh) -> np.ndarray:
    """The rows of a global batch that this process's devices hold (all of them on one host)."""
    devices = mesh.devices.reshape(-1)
    per_device = batch_size // len(devices)
    mine = [i for i, d in enumerate(devices) if d.process_index == jax.process_index()]
    return np.concatenate([np.arange(i * per_device, (i + 1) * per_device) for i in mine])


def feed_batches(feeder: Feeder, step: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The k batches a feeder serves from `step`, as host arrays (to inspect or compare feeders)."""
    args = feeder.get(step, k)
    fn = jax.jit(lambda a: [feeder.batch(a, j) for j in range(k)])
    return [tuple(np.asarray(x) for x in b) for b in jax.device_get(fn(args))]

