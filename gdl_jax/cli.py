"""What the binaries share: the config-file flag, and bad input ending the program in one line
instead of a traceback."""

from __future__ import annotations

import pathlib
import sys
from typing import Callable

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from gdl_jax.errors import ConfigError, GdlError


def _innermost(error: BaseException) -> str:
    """The message of an exception whose first argument may be the exception it wraps
    (ml_collections raises AttributeError(KeyError(message)))."""
    message: object = error
    while isinstance(message, BaseException) and message.args:
        message = message.args[0]
    return str(message)


def _config_error(error: Exception) -> ConfigError:
    """One line for what ml_collections raises on a config file it cannot load or an override of
    a field the config lacks."""
    text = _innermost(error)
    if isinstance(error, OSError):   # the file: its last line names the path and the reason
        return ConfigError(f"cannot load the --config file: {text.strip().splitlines()[-1].strip()}")
    field, _, hint = text.partition("\n")
    return ConfigError(f"a --config override names a field the config does not have: {field}"
                       + (f" ({hint.strip()})" if hint.strip() else ""))


def define_config_flag(default: str | None, help_text: str) -> None:
    """config_flags.DEFINE_config_file('config', ...), locked. ml_collections checks every
    --config.<field>=... override against the config file as the flag is defined, at import: an
    unknown field or an unreadable file exits there with one line."""
    try:
        config_flags.DEFINE_config_file("config", default, help_text, lock_config=True)
    except (AttributeError, KeyError, OSError) as e:
        sys.exit(f"error: {_config_error(e)}")


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing for `app.run(main, flags_parser=cli.parse_flags)`: overrides of a config
    file that cannot be loaded fail while flags are parsed, and exit with one line."""
    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError, OSError) as e:
        sys.exit(f"error: {_config_error(e)}")


def config() -> ml_collections.ConfigDict:
    """The --config flag's config, loaded now (ml_collections defers a load error to first use):
    ConfigError when the file cannot be loaded."""
    value = flags.FLAGS.config
    try:
        value.get("task")
    except (AttributeError, KeyError, OSError) as e:
        raise _config_error(e) from None
    return value


def config_path() -> pathlib.Path:
    """The --config flag's file."""
    return pathlib.Path(config_flags.get_config_filename(flags.FLAGS["config"]))


def run_or_exit(fn: Callable[[], None]) -> None:
    """Runs fn; a GdlError (bad input) exits with one line instead of a traceback."""
    try:
        fn()
    except GdlError as e:
        sys.exit(f"error: {e}")
