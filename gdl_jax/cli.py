"""What the binaries share: the config-file flag, and bad input ending the program in one line
instead of a traceback."""

from __future__ import annotations

import os
import pathlib
import signal
import sys
from typing import Callable

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from gdl_jax.errors import ConfigError, GdlError, Stopped

# what loading a config file and applying its overrides raises for bad input (a config file's own
# bugs included: a syntax error, a name it misspells)
LOAD_ERRORS = (AttributeError, KeyError, OSError, SyntaxError, TypeError, ValueError, NameError)


def _innermost(error: BaseException) -> str:
    """The message of an exception whose first argument may be the exception it wraps
    (ml_collections raises AttributeError(KeyError(message)))."""
    message: object = error
    while isinstance(message, BaseException) and message.args:
        message = message.args[0]
    return str(message)


def _config_error(error: Exception) -> ConfigError:
    """One line for what ml_collections raises on a config file it cannot load (missing, or
    failing in its get_config) or an override of a field the config lacks."""
    if isinstance(error, (AttributeError, KeyError)):
        field, _, hint = _innermost(error).partition("\n")
        name = field.strip("'")
        if any(arg.startswith("--config.") and f".{name}" in arg.split("=")[0] for arg in sys.argv):
            return ConfigError(f"a --config override names a field the config does not have: {field}"
                               + (f" ({hint.strip()})" if hint.strip() else ""))
    if isinstance(error, OSError):   # ml_collections' load error ends with the path and the reason
        lines = str(error).strip().splitlines() or [type(error).__name__]
        return ConfigError(f"cannot load the --config file: {lines[-1].strip()}")
    # an error of the file's own code; a wrapped one (TypeError, ValueError) ends with its traceback's last line
    lines = (str(error) if isinstance(error, SyntaxError) else _innermost(error)).strip().splitlines() or [""]
    line = lines[0] if isinstance(error, (AttributeError, KeyError)) else lines[-1]
    if ": " not in line or isinstance(error, (AttributeError, KeyError, SyntaxError)):
        line = f"{type(error).__name__}: {line.strip()}"
    return ConfigError(f"cannot load the --config file: {line.strip()}")


def define_config_flag(default: str | None, help_text: str) -> None:
    """config_flags.DEFINE_config_file('config', ...), locked. ml_collections checks every
    --config.<field>=... override against the config file as the flag is defined, at import: an
    unknown field or an unreadable file exits there with one line."""
    try:
        config_flags.DEFINE_config_file("config", default, help_text, lock_config=True)
    except LOAD_ERRORS as e:
        sys.exit(f"error: {_config_error(e)}")


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing for `app.run(main, flags_parser=cli.parse_flags)`: overrides of a config
    file that cannot be loaded fail while flags are parsed, and exit with one line."""
    try:
        return app.parse_flags_with_usage(argv)
    except LOAD_ERRORS as e:
        sys.exit(f"error: {_config_error(e)}")


def config() -> ml_collections.ConfigDict:
    """The --config flag's config, loaded now (ml_collections defers a load error to first use):
    ConfigError when the file cannot be loaded."""
    value = flags.FLAGS.config
    try:
        value.get("task")
    except LOAD_ERRORS as e:
        raise _config_error(e) from None
    return value


def config_path() -> pathlib.Path:
    """The --config flag's file."""
    return pathlib.Path(config_flags.get_config_filename(flags.FLAGS["config"]))


def run_or_exit(fn: Callable[[], None]) -> None:
    """Runs fn; a GdlError (bad input) exits with one line instead of a traceback. A run stopped
    by a signal (a checkpoint saved: gdl_jax.train.loop), or interrupted by Ctrl-C outside
    training, says so in one line and then dies of that signal, as an uncaught Ctrl-C does (a
    shell loop of runs then stops too)."""
    try:
        fn()
    except GdlError as e:
        sys.exit(f"error: {e}")
    except Stopped as e:
        die_of(e.signum, str(e))
    except KeyboardInterrupt:
        die_of(signal.SIGINT, "interrupted")


def die_of(signum: int, message: str) -> None:
    """Prints `message` to stderr, then ends this process by `signum` with its default action."""
    print(message, file=sys.stderr, flush=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
