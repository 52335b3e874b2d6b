"""Errors that describe bad user input; binaries print them as one line, without a traceback."""


class GdlError(Exception):
    """Base class: something the user can fix (a flag, a path, a file)."""


class ConfigError(GdlError, ValueError):
    """A config value or flag is out of range or names something unknown."""


class DataError(GdlError, ValueError):
    """A data set is missing, unreadable or not in the expected layout."""


class CheckpointError(GdlError, ValueError):
    """A checkpoint or workdir is unreadable or belongs to a different run."""
