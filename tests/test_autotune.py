"""gdl_jax.train.autotune: the 'auto' convolution forms of a train step, timed whole and cached."""

import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdl_jax import models, tasks
from gdl_jax.models import conv
from gdl_jax.train import autotune, steps
from gdl_jax.train.loop import make_dispatch
from gdl_jax.train.state import TrainState


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(conv, "_cache", None)
    return tmp_path / "conv_forms.json"


def _dispatch(name: str, **kwargs):
    """(build, state, args): a one-step classifier dispatch on 8 random 16x16 images."""
    model = models.build(name, **kwargs)
    state = TrainState.create(model, optax.sgd(0.1), jax.random.PRNGKey(0), np.zeros((1, 16, 16, 3), np.float32))
    rng = np.random.default_rng(0)
    args = (rng.uniform(size=(8, 16, 16, 3)).astype(np.float32), rng.integers(0, 10, 8).astype(np.int32))
    return lambda: make_dispatch(steps.classifier_train_step, lambda a, j: a, 1), state, args


CNN = dict(features=(4, 8), strides=(1, 2), dense=8, dropout=0.0)


def test_the_step_is_timed_under_every_candidate_and_the_verdict_cached(fresh_cache):
    build, state, args = _dispatch("cnn", **CNN)
    mode = autotune.conv_forms(build, state, args, repeats=1)
    [entry] = [e for k, e in json.loads(fresh_cache.read_text())[conv.machine()].items() if k.startswith("step ")]
    assert entry["mode"] == mode and mode in autotune.CANDIDATES
    assert sorted(entry["ms_per_dispatch"]) == sorted(autotune.CANDIDATES)
    ms = entry["ms_per_dispatch"]   # the verdict follows from the cached times
    base = conv.untuned_mode()
    assert mode == (base if ms[base] <= (1 + autotune.MARGIN) * min(ms.values()) else min(ms, key=ms.get))


@pytest.mark.parametrize("ms, want", [({"rule": 10.0, "lax": 5.0, "layer": 9.0}, "lax"),
                                      ({"rule": 10.0, "lax": 9.8, "layer": 11.0}, "rule")])   # within MARGIN
def test_the_fastest_mode_wins_unless_the_rules_are_within_the_margin(ms, want, fresh_cache, monkeypatch):
    build, state, args = _dispatch("cnn", **CNN)
    monkeypatch.setattr(conv, "untuned_mode", lambda: "rule")   # as on CPU
    monkeypatch.setattr(autotune, "_ms_per_call", lambda compiled, *a: {m: ms[m] for m in compiled})
    assert autotune.conv_forms(build, state, args) == want
    monkeypatch.setattr(conv, "_cache", None)   # a new process: the file answers, nothing is timed
    monkeypatch.setattr(autotune, "_ms_per_call", lambda *a: pytest.fail("timed again"))
    assert autotune.conv_forms(build, state, args) == want


@pytest.mark.parametrize("ms, want", [({"rule": 9.8, "lax": 10.0, "layer": 11.0}, "lax"),   # within MARGIN
                                      ({"rule": 5.0, "lax": 10.0, "layer": 9.0}, "rule")])
def test_on_gpu_and_tpu_lax_is_kept_unless_another_mode_beats_it(ms, want, fresh_cache, monkeypatch):
    build, state, args = _dispatch("cnn", **CNN)
    monkeypatch.setattr(conv, "untuned_mode", lambda: "lax")
    monkeypatch.setattr(autotune, "_ms_per_call", lambda compiled, *a: {m: ms[m] for m in compiled})
    assert autotune.conv_forms(build, state, args) == want


def test_untuned_auto_is_the_rules_on_cpu_and_lax_elsewhere(monkeypatch):
    x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((4, 4, 3, 8))
    f = lambda x, w: conv.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    grad = lambda: str(jax.make_jaxpr(jax.grad(lambda x, w: f(x, w).sum(), (0, 1)))(x, w))
    for mode in ("auto", "untuned"):            # 'auto' outside a train loop: nothing is timed
        with conv.forms(mode):
            monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
            assert conv.untuned_mode() == "rule" and "custom_vjp_call" in grad()   # the rules' s2d
            monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
            assert conv.untuned_mode() == "lax" and "custom_vjp_call" not in grad()


def test_a_step_without_convolutions_is_not_timed(fresh_cache, monkeypatch):
    build, state, args = _dispatch("mlp", hidden=(8,))
    monkeypatch.setattr(autotune, "_ms_per_call", lambda *a: pytest.fail("timed"))
    assert autotune.conv_forms(build, state, args) == conv.untuned_mode()
    assert not fresh_cache.exists()


def test_a_training_run_in_auto_mode_tunes_its_step_first(tiny_config, fresh_cache, tmp_path, monkeypatch):
    """The wiring into the trainer, on a smaller CNN with shorter timing (the timing itself is
    tested above)."""
    monkeypatch.setenv(conv.FORMS_ENV, "auto")
    monkeypatch.setattr(autotune, "_ms_per_call", functools.partial(autotune._ms_per_call, min_seconds=0.05))
    tiny_config.model.update(CNN)
    tiny_config.num_epochs = 1
    results = tasks.train_and_evaluate(tiny_config, tmp_path / "wd")
    assert results["steps"] == 20 and np.isfinite(results["test_loss"])
    entries = json.loads(fresh_cache.read_text())[conv.machine()]
    chosen = [e["mode"] for k, e in entries.items() if k.startswith("step ")]
    assert len(chosen) == 1 and chosen[0] in autotune.CANDIDATES
    record = tmp_path / "wd" / "conv_mode.json"
    assert json.loads(record.read_text()) == {"mode": chosen[0]}
    # a resume computes with the recorded mode, without timing (here one the timing did not choose)
    other = "lax" if chosen[0] != "lax" else "rule"
    record.write_text(json.dumps({"mode": other}))
    monkeypatch.setattr(autotune, "conv_forms", lambda *a, **k: pytest.fail("timed again"))
    tiny_config.num_epochs = 2
    seen = []
    results = tasks.train_and_evaluate(tiny_config, tmp_path / "wd", hooks=[lambda *_: seen.append(conv.forms_mode())])
    assert results["steps"] == 40 and set(seen) == {other}


def test_a_mode_far_slower_on_its_first_call_is_not_timed_further():
    calls = {"rule": 0, "lax": 0, "layer": 0}

    def fn(mode, seconds):
        def call(state, *args):
            calls[mode] += 1
            time.sleep(seconds)
            return state, {}
        return call

    compiled = {"rule": fn("rule", 0.01), "lax": fn("lax", 0.2), "layer": fn("layer", 0.012)}
    ms = autotune._ms_per_call(compiled, {"w": jnp.zeros(2)}, (), repeats=3, min_seconds=0.0)
    assert calls == {"rule": 4, "lax": 1, "layer": 4}   # a warm-up call each, then 3 rounds without lax
    assert ms["lax"] >= 200 and max(ms["rule"], ms["layer"]) < ms["lax"]
