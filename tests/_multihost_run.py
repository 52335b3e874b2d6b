"""Run by tests/test_parallel.py as one of 2 processes of a multi-host job on loopback:
python tests/_multihost_run.py <process id> <coordinator port> <workdir> <config JSON>.
Trains the config and prints RESULTS {"results", "writes"}: the run's results and every file
this process opened for writing under the workdir outside checkpoints/ (orbax writes those from
every process), seen by a Python audit hook."""

import json
import pathlib
import sys

from gdl_jax import runtime

runtime.configure()

from ml_collections import ConfigDict  # noqa: E402

from experiments import train  # noqa: E402
from gdl_jax import parallel  # noqa: E402

process_id, port, workdir, config = int(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3]), sys.argv[4]
parallel.initialize_distributed(f"127.0.0.1:{port}", 2, process_id)
writes = []


def audit(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], str) and args[1] and any(m in args[1] for m in "wax+"):
        path = pathlib.Path(args[0]).absolute()
        if path.is_relative_to(workdir.absolute()) and "checkpoints" not in path.parts:
            writes.append(str(path.relative_to(workdir.absolute())))


sys.addaudithook(audit)
results = train.train_and_evaluate(ConfigDict(json.loads(config)), workdir)
print("RESULTS", json.dumps({"results": results, "writes": sorted(set(writes))}))
