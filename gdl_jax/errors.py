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


class Stopped(BaseException):
    """A run stopped by a signal (Ctrl-C, `kill`) after saving a checkpoint of `step`. Not an
    Exception, as KeyboardInterrupt is not: an `except Exception` must not carry on past it."""

    def __init__(self, signum: int, step: int):
        super().__init__(signum, step)
        self.signum, self.step = signum, step

    def __str__(self) -> str:
        return (f"stopped by {signal.Signals(self.signum).name} at step {self.step}, its checkpoint saved: "
                "run the same command again to go on from there")
