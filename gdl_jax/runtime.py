"""Process-level set-up that must happen before JAX starts its backend.

Imports nothing from jax: binaries call `configure(__name__)` first thing, before importing jax.
"""

import ctypes
import importlib.metadata
import os
import pathlib
import signal
import sys

from gdl_jax.errors import ConfigError

# jaxlib sends CPU convolutions to YNNPACK, whose weight-gradient convolutions are slow on
# these CPUs; excluding lone convolutions from YNN fusion measured 1.5x faster train steps
# (README "Speed"). The flag is experimental, and XLA aborts on
# flags it does not know, so it is only set for the jaxlib line it was measured on.
_CPU_FLAGS = {"0.10": "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"}
# XLA:CPU's buffers come from malloc, a fresh mmap for each large one, first touched page by page:
# 4.0 million page faults in a run of the CIFAR CNN and faces VAE steps at batch 128, 0.21 million
# with this tunable (glibc 2.35+ then madvises its mappings for transparent huge pages), and the
# faces VAE's step 2.3-2.5 s instead of 2.9-3.5 (2-core Xeon, family 6 model 85; README "Speed").
HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"
OPT_OUT_ENV = "GDL_JAX_NO_XLA_DEFAULTS"
CACHE_DIR_ENV = "GDL_CACHE_DIR"
# set by a parent that runs a binary as its child (experiments.reproduce's rows) to its own pid
PARENT_PID_ENV = "GDL_JAX_EXIT_WITH_PARENT"
_PR_SET_PDEATHSIG = 1


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
    """Whether $GDL_JAX_NO_XLA_DEFAULTS says to leave XLA_FLAGS and GLIBC_TUNABLES alone: true
    for 1/true/yes/on, false when unset or 0/false/no/off (any case); ConfigError for anything
    else."""
    value = os.environ.get(OPT_OUT_ENV, "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise ConfigError(f"{OPT_OUT_ENV}={os.environ[OPT_OUT_ENV]!r} is neither true (1, true, yes, on) "
                          "nor false (0, false, no, off)")
    return value in _TRUE


def glibc_version() -> tuple[int, int] | None:
    """The C library's version if it is glibc, else None."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, ValueError, OSError):
        return None


def thp_mode() -> str | None:
    """The kernel's transparent huge page mode ('always', 'madvise', 'never'), None if unknown."""
    try:
        text = pathlib.Path(THP_SETTING).read_text()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else None


def hugepages_missing() -> bool:
    """Whether restarting with HUGEPAGE_TUNABLE would give XLA's buffers huge pages: glibc 2.35 or
    newer (the first with the tunable), huge pages only where asked for ('madvise'), and
    GLIBC_TUNABLES not naming the tunable already (the user's own setting wins)."""
    version = glibc_version()
    return (version is not None and version >= (2, 35) and thp_mode() == "madvise"
            and HUGEPAGE_TUNABLE.split("=")[0] not in os.environ.get("GLIBC_TUNABLES", ""))


def _restart_with_hugepages() -> None:
    """Replaces this process with the same command under HUGEPAGE_TUNABLE (glibc reads tunables
    only at start-up); returns if it cannot."""
    argv = getattr(sys, "orig_argv", None)
    if not argv:
        return
    current = os.environ.get("GLIBC_TUNABLES")
    env = dict(os.environ, GLIBC_TUNABLES=f"{current}:{HUGEPAGE_TUNABLE}" if current else HUGEPAGE_TUNABLE)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:
        return


def add_xla_flag(flag: str) -> None:
    """Appends `flag` ("--name=value") to $XLA_FLAGS unless XLA_FLAGS already sets that name (the
    user's own value wins). Only effective before JAX starts its backend."""
    current = os.environ.get("XLA_FLAGS", "")
    if flag and flag.split("=")[0] not in current:
        os.environ["XLA_FLAGS"] = f"{current} {flag}".strip()


def exit_with_parent() -> None:
    """When $GDL_JAX_EXIT_WITH_PARENT names this process's parent, asks Linux to kill this process
    when the parent dies, however it dies: a reproduce run killed with SIGKILL (or by the OOM
    killer) cannot end its row's process itself, and that process would go on training and
    hold its workdir's lock against the resumed run. Ends at once if the parent is already gone;
    does nothing without the variable or off Linux."""
    value = os.environ.get(PARENT_PID_ENV)
    if not value or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != value.strip():   # the parent died before the request: nobody to signal us
        os._exit(128 + signal.SIGKILL)


def configure(caller: str | None = None) -> None:
    """Adds the default XLA flags to XLA_FLAGS unless the user set that flag or opted out.

    Binaries call it first thing as `configure(__name__)`: it must run before the first JAX
    computation (the backend reads XLA_FLAGS once). When `caller` is "__main__" (the module is the
    program, not an import of it) and `hugepages_missing()`, the process also restarts once with
    glibc's malloc asking for transparent huge pages. A bad opt-out value ends the process with
    a one-line error. A program run as a reproduce row also dies with its parent
    (`exit_with_parent`).
    """
    if caller == "__main__":
        exit_with_parent()
    try:
        if opted_out():
            return
    except ConfigError as e:
        sys.exit(f"error: {e}")
    add_xla_flag(default_xla_flags())
    if caller == "__main__" and hugepages_missing():
        _restart_with_hugepages()
