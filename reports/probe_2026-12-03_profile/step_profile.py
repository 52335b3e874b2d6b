"""Times one benchmark train step (the training dispatch of 4 steps, 'rule' forms, float32) and
sums XLA:CPU's per-thunk trace events by kind, ms per step. Convolutions run on Eigen's thread
pool and their events show only the launch: what the thunks leave of the step is mostly them.

    python reports/probe_2026-12-03_profile/step_profile.py cnn 128

Symbol-level view of the same step (user-space samples; perf_event_paranoid <= 2):

    python reports/probe_2026-12-03_profile/step_profile.py cnn 128 --hold=25 &
    perf record -F 999 -g -p <its pid> -o cnn.perf -- sleep 15
    perf report -i cnn.perf --no-children --sort dso,symbol -g none --stdio
"""

from gdl_jax import runtime

runtime.configure(__name__)

import collections  # noqa: E402
import glob  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from experiments import benchmark  # noqa: E402
from gdl_jax.hardware import median_seconds  # noqa: E402
from gdl_jax.models import conv  # noqa: E402

model, batch = sys.argv[1], int(sys.argv[2])
hold = float(sys.argv[3].split("=")[1]) if len(sys.argv) > 3 else 0.0
K, DISPATCHES = 4, 10
conv.set_forms("rule")
j = benchmark.prepare_jax(model, batch, K)
for _ in range(3):
    j["repeat"]()
if hold:  # run for `hold` seconds for an outside profiler
    print("START", flush=True)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < hold:
        j["repeat"]()
print(f"{model} batch {batch}: {1e3 * median_seconds(j['repeat'], 20) / K:.1f} ms/step")
with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        for _ in range(DISPATCHES):
            j["repeat"]()
    events = json.load(gzip.open(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]))["traceEvents"]
total, count = collections.Counter(), collections.Counter()
for e in events:
    if e.get("ph") == "X" and not e["name"].startswith(("$", "ThunkExecutor", "PjitFunction", "Common")):
        kind = re.sub(r"\.\d+$", "", e["name"])
        total[kind] += e["dur"]
        count[kind] += 1
steps = K * DISPATCHES
print(f"thunks in all: {sum(total.values()) / steps / 1e3:.1f} ms/step")
for kind, us in total.most_common(15):
    print(f"{us / steps / 1e3:7.2f} ms/step  {count[kind] / steps:5.1f} per step  {kind}")
