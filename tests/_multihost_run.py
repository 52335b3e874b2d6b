"""Run by tests/test_parallel.py as one of 2 processes of a multi-host job on loopback:
python tests/_multihost_run.py <process id> <coordinator port> <runs JSON>, runs a list of
[workdir, config JSON]. Trains each config in its workdir and prints RESULTS, a list with one
{"results", "writes"} per run ({"error"} for a run that raised a GdlError): the run's results and
every file this process opened for writing under its workdir outside checkpoints/ (orbax writes
those from every process), seen by a Python audit hook."""

import json
import pathlib
import sys

from gdl_jax import runtime

runtime.configure()

from ml_collections import ConfigDict  # noqa: E402

from gdl_jax import parallel, tasks  # noqa: E402
from gdl_jax.errors import GdlError  # noqa: E402

process_id, port, runs = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
parallel.initialize_distributed(f"127.0.0.1:{port}", 2, process_id)
writes: list[pathlib.Path] = []


def audit(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], str) and args[1] and any(m in args[1] for m in "wax+"):
        writes.append(pathlib.Path(args[0]).absolute())


sys.addaudithook(audit)
out = []
for workdir, config in runs:
    workdir = pathlib.Path(workdir).absolute()
    writes.clear()
    try:
        results = tasks.train_and_evaluate(ConfigDict(json.loads(config)), workdir)
    except GdlError as e:   # a refused run: each process says why, none waits for the others
        out.append({"error": str(e)})
        continue
    mine = {str(p.relative_to(workdir)) for p in writes
            if p.is_relative_to(workdir) and "checkpoints" not in p.relative_to(workdir).parts}
    out.append({"results": results, "writes": sorted(mine)})
print("RESULTS", json.dumps(out))
