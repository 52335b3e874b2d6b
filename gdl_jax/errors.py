"""Errors that describe bad user input, and a stopped run; binaries print them as one line,
without a traceback."""

import signal


class GdlError(Exception):
    """Base class: something the user can fix (a flag, a path, a file)."""


class ConfigError(GdlError, ValueError):
    """A config value or flag is out of range or names something unknown."""


class DataError(GdlError, ValueError):
    """A data set is missing, unreadable or not in the expected layout."""


class CheckpointError(GdlError, ValueError):
    """A checkpoint or workdir is unreadable or belongs to a different run."""


class Stopped(Exception):
    """A run stopped by a signal (Ctrl-C, `kill`) after saving a checkpoint of `step`."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}, its checkpoint saved: "
                         "run the same command again to go on from there")
