"""Process-level set-up that must happen before JAX starts its backend.

Imports nothing from jax: binaries call `configure()` first thing, before importing jax.
"""

import importlib.metadata
import os

# jaxlib sends CPU convolutions to YNNPACK, whose weight-gradient convolutions are slow on
# these CPUs; excluding lone convolutions from YNN fusion measured 1.5x faster train steps
# (README "Speed"). The flag is experimental, and XLA aborts on
# flags it does not know, so it is only set for the jaxlib line it was measured on.
_CPU_FLAGS = {"0.10": "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"}
OPT_OUT_ENV = "GDL_JAX_NO_XLA_DEFAULTS"


def default_xla_flags() -> str:
    """The default XLA flags for the installed jaxlib ('' when none are known)."""
    try:
        version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return ""
    return _CPU_FLAGS.get(".".join(version.split(".")[:2]), "")


def configure() -> None:
    """Adds the default XLA flags to XLA_FLAGS unless the user set that flag or opted out.

    Must run before the first JAX computation (the backend reads XLA_FLAGS once).
    """
    if os.environ.get(OPT_OUT_ENV):
        return
    flags = default_xla_flags()
    current = os.environ.get("XLA_FLAGS", "")
    name = flags.split("=")[0]
    if flags and name not in current:
        os.environ["XLA_FLAGS"] = f"{current} {flags}".strip()
