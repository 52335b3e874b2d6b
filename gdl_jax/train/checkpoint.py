"""Orbax checkpoints of the train state: written atomically (temp dir + rename), async, resumable."""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp

from gdl_jax.errors import CheckpointError
from gdl_jax.train.state import TrainState

_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng")


class Checkpointer:
    """Saves every `every_steps` (and when forced); restores the latest complete checkpoint."""

    def __init__(self, directory: str | pathlib.Path, every_steps: int, max_to_keep: int = 2):
        if every_steps <= 0:
            raise CheckpointError(f"checkpoint_every_steps must be positive, got {every_steps}")
        self.every_steps = every_steps
        self.directory = pathlib.Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def is_due(self, step: int) -> bool:
        return step % self.every_steps == 0

    def save(self, state: TrainState) -> None:
        """Starts an async save of `state`; returns once the arrays are copied off the device."""
        items = {f: getattr(state, f) for f in _FIELDS}
        self._manager.save(int(state.step), args=ocp.args.StandardSave(items), force=True)

    def restore_latest(self, template: TrainState) -> TrainState | None:
        """The latest checkpoint restored into `template`'s structure, or None if there is none."""
        step = self.latest_step()
        if step is None:
            return None
        abstract = {f: jax.tree.map(ocp.utils.to_shape_dtype_struct, getattr(template, f))
                    for f in _FIELDS}
        try:
            items = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax/tensorstore raise many kinds; all mean unusable
            first_line = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} does not fit this model or is corrupt "
                f"({type(e).__name__}: {first_line}); use a new --workdir or move it away") from None
        return template.replace(**items)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
