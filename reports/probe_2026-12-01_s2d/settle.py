"""The benchmark's timing with and without an untimed call of each side before each timed one,
alternated in one process (12 repeats of 6 rounds each way):
`python reports/probe_2026-12-01_s2d/settle.py small_conv 128` (torch installed)."""

import statistics
import sys

from gdl_jax import runtime

runtime.configure()   # the project's default XLA flag, as the binaries set it

from experiments import benchmark  # noqa: E402

if __name__ == "__main__":
    model, batch = sys.argv[1], int(sys.argv[2])
    torch_bench = benchmark.load_torch_bench()
    prepared = benchmark.prepare_jax(model, batch, 4)
    jax_repeat = prepared["repeat"]
    print(f"convolution forms: {prepared['conv_forms']}")
    torch_repeat, _ = torch_bench.prepare_train_steps(model, batch, 4, 2)
    results: dict[int, list[tuple[float, float]]] = {0: [], 1: []}
    for rep in range(12):
        for settle in ((0, 1) if rep % 2 else (1, 0)):
            (j, t), _ = benchmark.time_interleaved([jax_repeat, torch_repeat], 1, 6, settle=settle)
            results[settle].append((j / 4e-3, t / 4e-3))   # ms per step
    for settle, pairs in results.items():
        ratios = sorted(t / j for j, t in pairs)
        print(f"{model} batch {batch} settle {settle}: JAX {statistics.median(j for j, _ in pairs):.2f} ms, "
              f"torch {statistics.median(t for _, t in pairs):.2f} ms, "
              f"torch/JAX median {statistics.median(ratios):.2f} "
              f"({ratios[0]:.2f}-{ratios[-1]:.2f})")
