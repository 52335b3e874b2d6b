"""Probe: what the training loop's cap on dispatches in flight (loop.MAX_IN_FLIGHT) costs.

With MAX_IN_FLIGHT = n the loop waits for the oldest dispatch once n are queued, so that a stop
(Ctrl-C, kill) waits for at most n dispatches, not for a queue as long as the log interval. This
times whole training runs of the book's MLP and CNN (CIFAR-10, batch 32, their configs' k and
log interval) under each cap in LIMITS and without one, at two step counts; the difference of
the two counts' wall times over their difference in steps is the steady-state time per step
(compile, data loading and the final evaluation cancel). Runs alternate caps, `reps` times.

python reports/probe_2026-12-03_inflight/inflight.py <data dir> [reps]
"""

import sys
import tempfile
import time

from gdl_jax import runtime

runtime.configure()

import numpy as np  # noqa: E402

from experiments.configs import cnn_cifar10, mlp_cifar10  # noqa: E402
from gdl_jax import hardware, tasks  # noqa: E402
from gdl_jax.models import conv  # noqa: E402
from gdl_jax.train import loop  # noqa: E402

LIMITS = (2, 8, 10**9)   # loop.MAX_IN_FLIGHT values; 10**9: no cap (a flush still waits for all)
CASES = {"mlp": (mlp_cifar10, 1000, 4000), "cnn": (cnn_cifar10, 200, 700)}


def wall(module, steps: int, limit: int, data_dir: str) -> float:
    c = module.get_config()
    c.data.data_dir, c.num_steps = data_dir, steps
    c.checkpoint_every_steps = 100_000
    loop.MAX_IN_FLIGHT = limit
    with tempfile.TemporaryDirectory() as wd:
        t = time.perf_counter()
        tasks.train_and_evaluate(c, wd)
        return time.perf_counter() - t


def main(data_dir: str, reps: int) -> None:
    conv.set_forms("rule")
    print(hardware.device_model())
    for name, (module, short, long) in CASES.items():
        ms = {limit: [] for limit in LIMITS}
        for _ in range(reps):
            for limit in LIMITS:
                dt = wall(module, long, limit, data_dir) - wall(module, short, limit, data_dir)
                ms[limit].append(1000 * dt / (long - short))
        free = np.median(ms[LIMITS[-1]])
        print(f"{name} ms/step (median, runs): " + "; ".join(
            f"{'no cap' if limit == LIMITS[-1] else f'cap {limit}'} {np.median(v):.3f} {np.round(v, 3).tolist()}"
            f" (speed {free / np.median(v):.3f} of no cap)" for limit, v in ms.items()))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)
