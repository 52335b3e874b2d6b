"""Orbax checkpoints of the train state: written atomically (temp dir + rename), async, resumable."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

from gdl_jax.errors import CheckpointError


def _is_state(x) -> bool:
    """A flax struct node such as TrainState or GANState (saved field by field)."""
    return dataclasses.is_dataclass(x) and hasattr(x, "replace") and not isinstance(x, type)


def _pytree_fields(state) -> list[str]:
    return [f.name for f in dataclasses.fields(state) if f.metadata.get("pytree_node", True)]


def to_items(state: Any) -> Any:
    """A train state as nested dicts of its array fields (its static fields, such as apply_fn,
    stay out): TrainState -> {step, params, batch_stats, opt_state, rng}; GANState -> {step,
    generator: {...}, discriminator: {...}, rng}."""
    if _is_state(state):
        return {name: to_items(getattr(state, name)) for name in _pytree_fields(state)}
    return state


def from_items(template: Any, items: Any) -> Any:
    """`template` with its array fields replaced by those of `items` (the inverse of to_items)."""
    if _is_state(template):
        return template.replace(**{name: from_items(getattr(template, name), items[name])
                                   for name in _pytree_fields(template)})
    return items


class Checkpointer:
    """Saves every `every_steps` (and when forced); restores the latest checkpoint orbax finished
    writing (an interrupted save leaves only a temporary directory, which is not a checkpoint); a
    finished one that cannot be read is a CheckpointError, not a silent fall-back to an older one.

    Any train state of flax struct nodes (TrainState, GANState) is saved as nested dicts of its
    array fields."""

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

    def save(self, state: Any) -> None:
        """Starts an async save of `state`; returns once the arrays are copied off the device."""
        self._manager.save(int(state.step), args=ocp.args.StandardSave(to_items(state)), force=True)

    def restore_latest(self, template: Any) -> Any | None:
        """The latest checkpoint restored into `template`'s structure, or None if there is none."""
        step = self.latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, to_items(template))
        try:
            items = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax/tensorstore raise many kinds; all mean unusable
            first_line = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} does not fit this model or is corrupt "
                f"({type(e).__name__}: {first_line}); use a new --workdir or move it away") from None
        return from_items(template, items)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def restore_trained(directory: str | pathlib.Path, template: Any) -> Any:
    """The latest checkpoint in `directory` restored into `template`, for use without training
    (analysis, gdl_jax.load): a CheckpointError when there is none, and nothing created there."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():   # checked before orbax, which would create the folder
        raise CheckpointError(f"no checkpoint in {directory}; train first")
    with Checkpointer(directory, every_steps=1) as checkpointer:   # every_steps: only saves read it
        state = checkpointer.restore_latest(template)
    if state is None:
        raise CheckpointError(f"no checkpoint in {directory}; train first")
    return state
