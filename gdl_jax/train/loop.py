"""The one training loop every trainer runs: k steps per dispatch, async metrics, checkpoints.

The hot path stays on device: each dispatch is one jitted call that gathers its own batches
from the on-device data set and runs k train steps unrolled (a rolled `lax.scan` measured ~30x
slower on XLA:CPU, ../shared/PERF_NOTES.md). Per-step metrics stay on device until a log point.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gdl_jax.train.checkpoint import Checkpointer
from gdl_jax.train.metrics import JsonlWriter
from gdl_jax.train.state import TrainState

StepFn = Callable[[Any, Any], tuple[Any, dict]]
BatchFn = Callable[[Any, jax.Array, jax.Array], Any]


def make_dispatch(step_fn: StepFn, batch_fn: BatchFn, k: int) -> Callable:
    """jit((state, data, perm, first_index) -> (state, metrics stacked over k steps)).

    The state buffers are donated: the caller must not reuse the state it passed in.
    """
    def run(state, data, perm, first_index):
        per_step = []
        for j in range(k):  # a Python loop in jit: unrolled
            state, m = step_fn(state, batch_fn(data, perm, first_index + j))
            per_step.append(m)
        return state, jax.tree.map(lambda *xs: jnp.stack(xs), *per_step)

    return jax.jit(run, donate_argnums=0)


@dataclasses.dataclass
class Loop:
    """Runs `step_fn` from state.step to `total_steps`.

    batch_fn(data, perm, index) builds batch `index` of an epoch inside jit; perm_fn(epoch) gives
    the epoch's shuffle order (a pure function of the epoch, so resumes reproduce it).
    on_epoch_end(state, epoch, train_means) returns extra metrics (e.g. test accuracy).
    hooks(step, state) run on the host after each dispatch.
    """
    step_fn: StepFn
    batch_fn: BatchFn
    perm_fn: Callable[[int], jax.Array]
    steps_per_epoch: int
    total_steps: int
    steps_per_dispatch: int
    checkpointer: Checkpointer
    writer: JsonlWriter
    log_every_steps: int = 100
    on_epoch_end: Callable[[Any, int, dict], dict] | None = None
    hooks: Sequence[Callable[[int, Any], None]] = ()

    def __post_init__(self):
        self._dispatch = {k: make_dispatch(self.step_fn, self.batch_fn, k)
                          for k in {1, self.steps_per_dispatch}}

    def _boundary(self, step: int) -> int:
        """The next step at which the loop must stop dispatching: epoch end, checkpoint, or the end."""
        epoch_end = (step // self.steps_per_epoch + 1) * self.steps_per_epoch
        every = self.checkpointer.every_steps
        return min(epoch_end, (step // every + 1) * every, self.total_steps)

    def run(self, state: TrainState, data: Any, history: list[dict]) -> TrainState:
        """history: the step records already logged for this run (empty unless resuming)."""
        step = int(state.step)
        epoch_records = [r for r in history if r.get("kind") == "train"
                         and (r["step"] - 1) // self.steps_per_epoch == step // self.steps_per_epoch]
        pending: list[tuple[int, dict]] = []
        pending_steps = 0
        perm, perm_epoch = None, None
        t_last, step_last = time.perf_counter(), step

        def flush() -> None:
            nonlocal t_last, step_last, pending_steps
            if not pending:
                return
            records = []
            for first, metrics in jax.device_get(pending):
                for j in range(len(next(iter(metrics.values())))):
                    records.append({"step": first + j + 1, "kind": "train",
                                    **{k: float(v[j]) for k, v in metrics.items()}})
            pending.clear()
            pending_steps = 0
            self.writer.write(records)
            epoch_records.extend(records)
            now = time.perf_counter()
            rate = (records[-1]["step"] - step_last) / max(now - t_last, 1e-9)
            logging.info("step %d/%d  %s  (%.1f steps/s)", records[-1]["step"], self.total_steps,
                         "  ".join(f"{k} {v:.4f}" for k, v in records[-1].items()
                                   if k not in ("step", "kind")), rate)
            t_last, step_last = now, records[-1]["step"]

        while step < self.total_steps:
            epoch, index = divmod(step, self.steps_per_epoch)
            if perm_epoch != epoch:
                perm, perm_epoch = self.perm_fn(epoch), epoch
            remaining = self._boundary(step) - step
            while remaining:
                k = self.steps_per_dispatch if remaining >= self.steps_per_dispatch else 1
                state, metrics = self._dispatch[k](state, data, perm, jnp.int32(index))
                pending.append((step, metrics))
                pending_steps += k
                step, index, remaining = step + k, index + k, remaining - k
                for hook in self.hooks:
                    hook(step, state)
                if pending_steps >= self.log_every_steps:
                    flush()
            flush()
            if step % self.steps_per_epoch == 0 and epoch_records:
                means = {k: float(np.mean([r[k] for r in epoch_records]))
                         for k in epoch_records[-1] if k not in ("step", "kind")}
                extra = self.on_epoch_end(state, epoch, means) if self.on_epoch_end else {}
                record = {"step": step, "kind": "epoch", "epoch": epoch + 1,
                          **{f"train_{k}": v for k, v in means.items()}, **extra}
                self.writer.write([record])
                logging.info("epoch %d: %s", epoch + 1, record)
                epoch_records = []
            if self.checkpointer.is_due(step) or step == self.total_steps:
                self.writer.flush()
                self.checkpointer.save(state)
        self.writer.flush()
        self.checkpointer.wait()
        return state
