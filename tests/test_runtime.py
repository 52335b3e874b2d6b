"""gdl_jax.runtime: the default XLA flag, and the opt-out variable read as a boolean."""

import os

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


def test_an_unknown_value_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(runtime.OPT_OUT_ENV, "maybe")
    with pytest.raises(ConfigError, match="GDL_JAX_NO_XLA_DEFAULTS='maybe' is neither true"):
        runtime.opted_out()
    with pytest.raises(SystemExit, match="^error: GDL_JAX_NO_XLA_DEFAULTS='maybe'"):
        runtime.configure()
