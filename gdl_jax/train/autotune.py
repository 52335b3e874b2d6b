"""The convolution forms of a train step, chosen by timing the whole step on this machine.

Under the 'auto' mode of gdl_jax.models.conv, the loop calls `conv_forms` before its first
dispatch: the dispatch is compiled under each candidate mode ('rule', 'lax', 'layer') and timed
on copies of the state, in turn, and the fastest mode trains (the untuned mode, 'rule' on CPU
and 'lax' on GPU/TPU, unless another mode beats it by more than MARGIN). The verdict is cached
(keyed by the step's lowered program and the machine), so each model and batch shape is timed
once per machine.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from typing import Any, Callable

import jax
from absl import logging

from gdl_jax.models import conv

CANDIDATES = ("rule", "lax", "layer")
# the untuned mode stays unless another is this much faster: closer timings are within these
# shared machines' noise (+-10-20% between runs), and a stable choice keeps runs on like machines alike
MARGIN = 0.05
SLOW = 3.0   # a mode this many times slower than the fastest on its first call is out


def _ms_per_call(compiled: dict[str, Callable], state: Any, args: tuple, repeats: int,
                 min_seconds: float = 0.5, max_rounds: int = 50) -> dict[str, float]:
    """Median ms of each `compiled[mode](state, *args)` (each donates its state; each runs on a
    copy of `state`), timed in turn so that all see the same load on a shared machine: at least
    `repeats` rounds, and more (up to max_rounds) until each mode has run min_seconds, so that
    a step of a few ms is not judged on a few noisy calls. A mode whose first (warm-up) call
    takes over SLOW times the fastest one's is not timed further: its warm-up call is its
    number (the WGAN-GP step under lax's forms took 100 s against 8)."""
    states = {mode: jax.tree.map(lambda x: x.copy(), state) for mode in compiled}
    warm = {}
    for mode, fn in compiled.items():
        t0 = time.perf_counter()
        states[mode], _ = jax.block_until_ready(fn(states[mode], *args))
        warm[mode] = time.perf_counter() - t0
    timed = {mode: fn for mode, fn in compiled.items() if warm[mode] <= SLOW * min(warm.values())}
    times: dict[str, list[float]] = {mode: [] for mode in timed}
    rounds = 0
    while rounds < repeats or (rounds < max_rounds and min(map(sum, times.values())) < min_seconds):
        for mode, fn in timed.items():
            t0 = time.perf_counter()
            states[mode], _ = jax.block_until_ready(fn(states[mode], *args))
            times[mode].append(time.perf_counter() - t0)
        rounds += 1
    return {mode: 1e3 * (statistics.median(times[mode]) if mode in times else warm[mode]) for mode in compiled}


def conv_forms(build: Callable[[], Callable], state: Any, args: tuple, repeats: int = 5) -> str:
    """The candidate mode under which `build()` (a new jitted dispatch, (state, *args) -> (state,
    metrics), donating its state) runs fastest here, unless the untuned mode (`conv.untuned_mode`)
    is within MARGIN of it; the untuned mode when the step has no convolution that chooses a
    form, and on several processes (each would time on its own)."""
    base = conv.untuned_mode()
    if jax.process_count() > 1:
        return base
    before = conv.traced
    with conv.forms(base):
        lowered = build().lower(state, *args)
    if conv.traced == before:
        return base
    key = "step " + hashlib.sha256(lowered.as_text().encode()).hexdigest()[:20]
    entry = conv.cached().get(key)
    if entry is not None and entry.get("mode") in CANDIDATES:
        return entry["mode"]
    compiled = {}
    for mode in CANDIDATES:
        with conv.forms(mode):
            compiled[mode] = lowered.compile() if mode == base else build().lower(state, *args).compile()
    ms = _ms_per_call(compiled, state, args, repeats)
    fastest = min(ms, key=ms.get)
    best = base if ms[base] <= (1 + MARGIN) * ms[fastest] else fastest
    logging.info("convolution forms of the train step (ms per dispatch): %s -> %s",
                 ", ".join(f"{k} {v:.1f}" for k, v in ms.items()), best)
    conv.cache(key, {"mode": best, "ms_per_dispatch": {k: round(v, 3) for k, v in ms.items()}})
    return best
