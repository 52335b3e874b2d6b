"""What machine this is, as benchmarks and cached measurements name it, how long it takes to
run something, and how much work it is."""

from __future__ import annotations

import os
import pathlib
import platform
import statistics
import time
from typing import Any, Callable

import jax
from absl import logging
from jax.experimental import roofline


def device_model() -> str:
    """The model of device 0: the CPU's name, family/model and vector ISA from /proc/cpuinfo on
    a Linux CPU backend (cores differ in speed by model, not by name: 'AMD EPYC' is several
    generations), else the device kind (e.g. 'NVIDIA H200')."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        return device.device_kind
    try:
        info = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    first = info.split("\n\n", 1)[0]   # the first processor's block
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    name = " ".join(fields.get("model name", platform.machine()).split())
    flags = set(fields.get("flags", "").split())
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    isa += " with bfloat16" if "avx512_bf16" in flags else ""   # what mixed precision can use
    return f"{name} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')}, {isa}, " \
           f"{os.cpu_count()} cores)"


def median_seconds(fn: Callable[[], Any], iters: int) -> float:
    """Median wall seconds of `fn()` (which must block until its work is done) over `iters`
    calls, after one untimed call (compilation, caches)."""
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_flops(fn: Callable, *args: Any) -> float:
    """FLOPs of one call of fn(*args), counted on its jaxpr by jax.experimental.roofline: 2 per
    multiply-add of each convolution (valid taps only) and matmul, 1 per element of elementwise
    ops. The same count on every backend, unlike XLA's cost analysis (on an H100 it reported
    4.0 GFLOP for a faces-VAE step whose convolutions need 14; on a Zen 4 the two agreed within
    7% for the book models). For a jit over global shapes: inside shard_map it counts one
    device's share, and control flow counts 0 (while, cond) or one iteration (scan); the
    project's steps are unrolled."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)   # a warning per primitive it has no rule for (RNG, casts): 0 FLOPs
    try:
        return float(roofline.roofline(fn)(*args)[1].unfused_flops)
    finally:
        logging.set_verbosity(verbosity)
