"""Process-level set-up that must happen before JAX starts its backend.

Imports nothing from jax: binaries call `configure()` first thing, before importing jax.
"""

import importlib.metadata
import os
import pathlib
import sys

from gdl_jax.errors import ConfigError

# jaxlib sends CPU convolutions to YNNPACK, whose weight-gradient convolutions are slow on
# these CPUs; excluding lone convolutions from YNN fusion measured 1.5x faster train steps
# (README "Speed"). The flag is experimental, and XLA aborts on
# flags it does not know, so it is only set for the jaxlib line it was measured on.
_CPU_FLAGS = {"0.10": "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"}
OPT_OUT_ENV = "GDL_JAX_NO_XLA_DEFAULTS"
CACHE_DIR_ENV = "GDL_CACHE_DIR"


def cache_dir() -> pathlib.Path:
    """Where the project caches what it can recompute (decoded data sets, measured convolution
    forms): $GDL_CACHE_DIR, else ~/.cache/gdl_jax."""
    return pathlib.Path(os.environ.get(CACHE_DIR_ENV) or "~/.cache/gdl_jax").expanduser()


def default_xla_flags() -> str:
    """The default XLA flags for the installed jaxlib ('' when none are known)."""
    try:
        version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return ""
    return _CPU_FLAGS.get(".".join(version.split(".")[:2]), "")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def opted_out() -> bool:
    """Whether $GDL_JAX_NO_XLA_DEFAULTS says to leave XLA_FLAGS alone: true for 1/true/yes/on,
    false when unset or 0/false/no/off (any case); ConfigError for anything else."""
    value = os.environ.get(OPT_OUT_ENV, "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise ConfigError(f"{OPT_OUT_ENV}={os.environ[OPT_OUT_ENV]!r} is neither true (1, true, yes, on) "
                          "nor false (0, false, no, off)")
    return value in _TRUE


def configure() -> None:
    """Adds the default XLA flags to XLA_FLAGS unless the user set that flag or opted out.

    Binaries call it first thing: it must run before the first JAX computation (the backend
    reads XLA_FLAGS once). A bad opt-out value ends the process with a one-line error.
    """
    try:
        if opted_out():
            return
    except ConfigError as e:
        sys.exit(f"error: {e}")
    flags = default_xla_flags()
    current = os.environ.get("XLA_FLAGS", "")
    name = flags.split("=")[0]
    if flags and name not in current:
        os.environ["XLA_FLAGS"] = f"{current} {flags}".strip()
