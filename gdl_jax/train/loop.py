"""The one training loop every trainer runs: k steps per dispatch, async metrics, checkpoints.

Each dispatch is one jitted call that runs k train steps unrolled (a rolled `lax.scan` over the
same steps measured ~30x slower on XLA:CPU) on the batches a feeder (gdl_jax.data.feeders) gives
it: gathered on device from a data set held there, or streamed from the host and put on device
one dispatch ahead. Per-step metrics stay on device until a log point.

Ctrl-C (SIGINT) or `kill` (SIGTERM) while the loop runs stops it once the dispatches in flight
end (at most MAX_IN_FLIGHT: the loop lets no longer queue build up) with a checkpoint of the
step reached (`Stopped`): no finished step is lost, and the resumed run gives the uninterrupted
run's numbers (it dispatches at the same steps). A second Ctrl-C acts at once. In a
multi-process run the signals keep their default effect (the processes would have to agree on
the step), and it resumes from its last periodic checkpoint.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import os
import pathlib
import signal
import threading
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gdl_jax.data.feeders import Feeder
from gdl_jax.errors import Stopped
from gdl_jax.models import conv
from gdl_jax.outputs import atomic_write_text
from gdl_jax.train import autotune
from gdl_jax.train.checkpoint import Checkpointer
from gdl_jax.train.metrics import JsonlWriter
from gdl_jax.train.state import TrainState

# Dispatches queued before the loop waits for the oldest: it bounds a stop's wait. Measured on a
# 2-core Zen 4 (book MLP and CNN, CIFAR-10, batch 32): 8 runs even with no cap, 2 cost the CNN 17%.
MAX_IN_FLIGHT = 8
StepFn = Callable[[Any, Any], tuple[Any, dict]]
BatchFn = Callable[[tuple, int], Any]


def make_dispatch(step_fn: StepFn, batch_fn: BatchFn, k: int) -> Callable:
    """jit((state, *args) -> (state, metrics stacked over k steps)); batch_fn(args, j) builds
    step j's batch from the dispatch's arguments (a feeder's `batch`).

    The state buffers are donated: the caller must not reuse the state it passed in.
    """
    def run(state, *args):
        per_step = []
        for j in range(k):  # a Python loop in jit: unrolled
            state, m = step_fn(state, batch_fn(args, j))
            per_step.append(m)
        return state, jax.tree.map(lambda *xs: jnp.stack(xs), *per_step)

    return jax.jit(run, donate_argnums=0)


def pace(steps_per_s: float) -> str:
    """The rate as people read it: steps/s, or s/step under one step a second (0.1 steps/s
    would hide the difference between 7 and 13 s a step)."""
    return f"{steps_per_s:.1f} steps/s" if steps_per_s >= 1 else f"{1 / max(steps_per_s, 1e-9):.1f} s/step"


def eta(steps_left: int, steps_per_s: float) -> str:
    """Time left at this rate, as h:mm:ss."""
    return str(datetime.timedelta(seconds=round(steps_left / max(steps_per_s, 1e-9))))


class _StopRequests:
    """While in use, SIGINT and SIGTERM record a request to stop (`signum`) instead of ending the
    process. The first SIGINT gives SIGINT's handler back, so that a second Ctrl-C acts at once;
    SIGTERM keeps asking for the same stop (a report and its row both killed must not cut the
    row's checkpoint short; SIGKILL stops at once). Only on the main thread of a single-process
    run (handlers go on the main thread only), and only for a signal with its default handler:
    one ignored (a background job's SIGINT) or handled by the caller keeps that handler."""

    def __init__(self):
        self.signum: int | None = None
        self._before: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread() and jax.process_count() == 1:
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                    self._before[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum, frame) -> None:
        again = self.signum is not None
        self.signum = self.signum or signum
        if signum == signal.SIGINT:
            signal.signal(signum, self._before[signum])
        if not again:
            try:   # stderr's reader may be gone (a `| tee` the same Ctrl-C ended): stop all the same
                os.write(2, f"{signal.Signals(signum).name}: stopping once the dispatches in flight end, "
                            "with a checkpoint "
                            f"({'Ctrl-C again' if signum == signal.SIGINT else 'SIGKILL'} stops at once)\n".encode())
            except OSError:
                pass

    def __exit__(self, *exc) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)


@dataclasses.dataclass
class Loop:
    """Runs `step_fn` from state.step to `total_steps` on the batches of `feeder`.

    A dispatch never crosses an epoch end or a checkpoint step. on_epoch_end(state, epoch,
    train_means) returns extra metrics (e.g. test accuracy); it also runs at the last step when
    that ends an epoch early, so every run ends evaluated.
    hooks(step, state) run on the host after each dispatch.
    forms_record: where the 'auto' convolution mode chosen for this run is kept (the run's
    workdir), so that a resume computes with the forms the run started with.
    """
    step_fn: StepFn
    feeder: Feeder
    total_steps: int
    steps_per_dispatch: int
    checkpointer: Checkpointer
    writer: JsonlWriter
    log_every_steps: int = 100
    on_epoch_end: Callable[[Any, int, dict], dict] | None = None
    hooks: Sequence[Callable[[int, Any], None]] = ()
    forms_record: pathlib.Path | None = None

    def __post_init__(self):
        self.steps_per_epoch = self.feeder.steps_per_epoch
        self._dispatch = {k: make_dispatch(self.step_fn, self.feeder.batch, k)
                          for k in {1, self.steps_per_dispatch}}

    def _boundary(self, step: int) -> int:
        """The next step at which the loop must stop dispatching: epoch end, checkpoint, or the end."""
        epoch_end = (step // self.steps_per_epoch + 1) * self.steps_per_epoch
        every = self.checkpointer.every_steps
        return min(epoch_end, (step // every + 1) * every, self.total_steps)

    def _steps_in_dispatch(self, step: int) -> int:
        """k of the dispatch that starts at `step`: the configured k, or 1 to land on a boundary."""
        return self.steps_per_dispatch if self._boundary(step) - step >= self.steps_per_dispatch else 1

    def run(self, state: TrainState, history: list[dict]) -> TrainState:
        """history: the step records already logged for this run (empty unless resuming).

        Under the 'auto' convolution form mode (gdl_jax.models.conv), the mode that runs this
        loop's dispatch fastest here is chosen first (gdl_jax.train.autotune) and is in force
        for the whole loop; a resumed run takes the mode its start chose (`forms_record`): forms
        round differently, and a resume must give the uninterrupted run's numbers.
        """
        mode = conv.forms_mode()
        if mode == "auto" and int(state.step) < self.total_steps:
            mode = self._recorded_mode()
            if mode is None:
                step, k = int(state.step), self._steps_in_dispatch(int(state.step))
                mode = autotune.conv_forms(lambda: make_dispatch(self.step_fn, self.feeder.batch, k), state,
                                           self.feeder.get(step, k))
                self._record_mode(mode)
        with conv.forms(mode), _StopRequests() as stop:
            state = self._run(state, history, stop)
            if stop.signum is not None:   # asked during the last checkpoint's wait: stop all the same
                raise Stopped(stop.signum, int(state.step))
            return state

    def _recorded_mode(self) -> str | None:
        """The mode `forms_record` holds (one process only: the others of a multi-host run may
        not see the file, and autotune gives them all the untuned mode)."""
        if self.forms_record is None or jax.process_count() > 1 or not self.forms_record.is_file():
            return None
        try:
            mode = json.loads(self.forms_record.read_text())["mode"]
        except (OSError, ValueError, KeyError, TypeError):
            return None   # unreadable: time again
        return mode if mode in autotune.CANDIDATES else None

    def _record_mode(self, mode: str) -> None:
        if self.forms_record is not None and jax.process_count() == 1:
            atomic_write_text(self.forms_record, json.dumps({"mode": mode}) + "\n")

    def _run(self, state: TrainState, history: list[dict], stop: _StopRequests) -> TrainState:
        step = int(state.step)
        epoch_records = [r for r in history if r.get("kind") == "train"
                         and (r["step"] - 1) // self.steps_per_epoch == step // self.steps_per_epoch]
        pending: list[tuple[int, dict]] = []
        pending_steps = 0
        start = step
        t_last, step_last = time.perf_counter(), step   # the rate's clock, set again after the first dispatch

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
            done = records[-1]["step"]
            rate = (done - step_last) / max(now - t_last, 1e-9)
            speed = f"  ({pace(rate)}, {eta(self.total_steps - done, rate)} left)" if done > step_last else ""
            logging.info("step %d/%d (%.0f%%)  %s%s", done, self.total_steps, 100 * done / self.total_steps,
                         "  ".join(f"{k} {v:.4f}" for k, v in records[-1].items() if k not in ("step", "kind")),
                         speed)
            t_last, step_last = now, records[-1]["step"]

        in_flight: collections.deque = collections.deque()   # metrics of dispatches maybe not done
        while step < self.total_steps:
            epoch = step // self.steps_per_epoch
            boundary = self._boundary(step)
            while step < boundary:
                k = self._steps_in_dispatch(step)
                state, metrics = self._dispatch[k](state, *self.feeder.get(step, k))
                if step + k < self.total_steps and stop.signum is None:  # runs while the dispatch computes
                    self.feeder.stage(step + k, self._steps_in_dispatch(step + k))
                in_flight.append(metrics)
                if len(in_flight) >= MAX_IN_FLIGHT:   # a stop waits for these, not for a long queue
                    jax.block_until_ready(in_flight.popleft())
                pending.append((step, metrics))
                pending_steps += k
                if step == start:   # its compile is no step's time
                    jax.block_until_ready(metrics)
                    t_last, step_last = time.perf_counter(), step + k
                step += k
                for hook in self.hooks:
                    hook(step, state)
                if pending_steps >= self.log_every_steps:
                    flush()
                if stop.signum is not None:
                    break
            flush()
            # an epoch's end, or the run's end within an epoch (a num_steps run): evaluated
            if (step % self.steps_per_epoch == 0 or step == self.total_steps) and epoch_records:
                means = {k: float(np.mean([r[k] for r in epoch_records]))
                         for k in epoch_records[-1] if k not in ("step", "kind")}
                extra = self.on_epoch_end(state, epoch, means) if self.on_epoch_end else {}
                record = {"step": step, "kind": "epoch", "epoch": epoch + 1,
                          **{f"train_{k}": v for k, v in means.items()}, **extra}
                self.writer.write([record])
                logging.info("epoch %d: %s", epoch + 1, record)
                epoch_records = []
            if self.checkpointer.is_due(step) or step == self.total_steps or stop.signum is not None:
                self.writer.flush()
                self.checkpointer.save(state)
            if stop.signum is not None:
                self.checkpointer.wait()
                raise Stopped(stop.signum, step)
        self.writer.flush()
        self.checkpointer.wait()
        return state
