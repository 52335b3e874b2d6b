"""gdl_jax.runtime: the default XLA flag, the restart for huge pages, and the opt-out variable
read as a boolean."""

import os
import subprocess
import sys

import pytest

from gdl_jax import runtime
from gdl_jax.errors import ConfigError


@pytest.mark.parametrize("value, want", [("1", True), ("true", True), ("YES", True), ("on", True),
                                         ("0", False), ("false", False), ("No", False), ("off", False),
                                         ("", False)])
def test_opt_out_is_read_as_a_boolean(value, want, monkeypatch):
    monkeypatch.setenv(runtime.OPT_OUT_ENV, value)
    assert runtime.opted_out() is want


def test_a_zero_keeps_the_default_flag_and_a_one_drops_it(monkeypatch):
    if not runtime.default_xla_flags():
        pytest.skip("no default XLA flag is known for this jaxlib")
    for value, kept in [("0", True), ("1", False)]:
        monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/nowhere")
        monkeypatch.setenv(runtime.OPT_OUT_ENV, value)
        runtime.configure()
        assert (runtime.default_xla_flags() in os.environ["XLA_FLAGS"]) is kept, value


def test_add_xla_flag_appends_unless_the_user_set_that_flag(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/nowhere")
    runtime.add_xla_flag("--xla_backend_optimization_level=1")
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/nowhere --xla_backend_optimization_level=1"
    runtime.add_xla_flag("--xla_backend_optimization_level=3")   # already set: the first value stays
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/nowhere --xla_backend_optimization_level=1"
    monkeypatch.delenv("XLA_FLAGS")
    runtime.add_xla_flag("--xla_dump_to=/a")
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/a"


def test_an_unknown_value_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(runtime.OPT_OUT_ENV, "maybe")
    with pytest.raises(ConfigError, match="GDL_JAX_NO_XLA_DEFAULTS='maybe' is neither true"):
        runtime.opted_out()
    with pytest.raises(SystemExit, match="^error: GDL_JAX_NO_XLA_DEFAULTS='maybe'"):
        runtime.configure()


def _fake_thp(tmp_path, monkeypatch, mode: str) -> None:
    setting = tmp_path / "enabled"
    setting.write_text(" ".join(f"[{m}]" if m == mode else m for m in ("always", "madvise", "never")) + "\n")
    monkeypatch.setattr(runtime, "THP_SETTING", str(setting))


@pytest.mark.parametrize("mode, glibc, tunables, want", [
    ("madvise", (2, 36), None, True),
    ("madvise", (2, 36), "glibc.malloc.arena_max=2", True),
    ("madvise", (2, 36), "glibc.malloc.hugetlb=0", False),    # the user's own setting wins
    ("always", (2, 36), None, False),                          # every mapping gets them already
    ("never", (2, 36), None, False),
    ("madvise", (2, 34), None, False),                         # before the tunable existed
    ("madvise", None, None, False),                            # not glibc
])
def test_huge_pages_are_asked_for_only_where_they_change_something(mode, glibc, tunables, want, tmp_path,
                                                                   monkeypatch):
    _fake_thp(tmp_path, monkeypatch, mode)
    monkeypatch.setattr(runtime, "glibc_version", lambda: glibc)
    if tunables is None:
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    else:
        monkeypatch.setenv("GLIBC_TUNABLES", tunables)
    assert runtime.thp_mode() == mode
    assert runtime.hugepages_missing() is want


def test_only_the_program_itself_restarts_and_keeps_its_command_and_tunables(tmp_path, monkeypatch):
    _fake_thp(tmp_path, monkeypatch, "madvise")
    monkeypatch.setattr(runtime, "glibc_version", lambda: (2, 36))
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    monkeypatch.delenv(runtime.OPT_OUT_ENV, raising=False)
    calls = []
    monkeypatch.setattr(os, "execve", lambda path, args, env: calls.append((path, args, env)))
    monkeypatch.setattr("sys.orig_argv", ["python3", "-X", "utf8", "-m", "experiments.main", "--config=a.py"])
    runtime.configure("experiments.main")        # imported (a test, another binary): never restarts
    assert calls == []
    runtime.configure("__main__")
    [(path, args, env)] = calls
    assert args[1:] == ["-X", "utf8", "-m", "experiments.main", "--config=a.py"]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:" + runtime.HUGEPAGE_TUNABLE
    monkeypatch.setenv(runtime.OPT_OUT_ENV, "1")
    runtime.configure("__main__")
    assert len(calls) == 1


def test_a_binary_restarts_once_with_the_tunable_where_it_helps(tmp_path, monkeypatch):
    """A real restart, where this machine has glibc 2.35+ and huge pages on request: the program
    runs again with its arguments, once, with the tunable in its environment."""
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv(runtime.OPT_OUT_ENV, raising=False)
    expected = runtime.hugepages_missing()
    script = tmp_path / "prog.py"
    script.write_text("import os, sys\nfrom gdl_jax import runtime\nruntime.configure(__name__)\n"
                      "print(sys.argv[1:], os.environ.get('GLIBC_TUNABLES'))\n")
    out = subprocess.run([sys.executable, str(script), "--flag=1", "two"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.splitlines() == [f"['--flag=1', 'two'] {runtime.HUGEPAGE_TUNABLE if expected else None}"]


def test_a_row_whose_parent_is_already_gone_ends_at_once(tmp_path):
    """$GDL_JAX_EXIT_WITH_PARENT names a pid that is not this process's parent (the reproduce run
    died before the child asked to die with it): the program ends before it starts work; without
    the variable, or as an import, it runs."""
    script = tmp_path / "prog.py"
    script.write_text("from gdl_jax import runtime\nruntime.configure(__name__)\nprint('working')\n")
    env = {**os.environ, runtime.PARENT_PID_ENV: "1", runtime.OPT_OUT_ENV: "1"}
    gone = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert (gone.returncode, gone.stdout) == (137, "")
    env[runtime.PARENT_PID_ENV] = str(os.getpid())
    ours = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert (ours.returncode, ours.stdout) == (0, "working\n")
