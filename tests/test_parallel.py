"""Data parallelism (gdl_jax.parallel): both backends on forced host devices give the one-device
numbers, for every step family and through the trainers; a 2-process multi-host run on loopback
trains in lockstep with one writer."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_gan_config, write_quickdraw_cats, xla_flags_without
from ml_collections import ConfigDict

from gdl_jax import parallel, tasks
from gdl_jax.errors import ConfigError
from gdl_jax.train.metrics import read_jsonl

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAMILIES = ("classifier", "autoencoder", "vae", "gan", "wgan", "wgan_gp")


def _run_on_devices(n: int, args: list[str], timeout: int = 900) -> dict | list:
    """python args in a process with n forced host devices; the JSON it prints after RESULTS."""
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULTS", 1)[1])


@pytest.mark.slow
def test_every_step_family_on_four_devices_matches_one_under_both_backends():
    """3 SGD steps of each family (BatchNorm, the VAE's noise, the GANs' latent noise and the
    penalty's alpha all in play; dropout off) from the same state on the same global batches:
    4 devices under 'sharded' and 'pmap' = 1 device, to float tolerance. Dropping one pmean from
    a step makes its 'pmap' params differ by ~0.2 of their scale.

    Each device's compiled step does about a quarter of the 1-device step's FLOPs (0.25-0.27):
    nothing is left replicated. Before 'sharded' steps sharded their random draws, the GAN's
    fakes were made whole on every device (0.91; the WGAN-GP's 0.52)."""
    out = _run_on_devices(4, ["tests/_equivalence_run.py", *FAMILIES])
    assert out.pop("draws") == {"distinct_keys": 4, "global_draw_equal": True}
    assert out.pop("batch_error") == "batch_size 6 is not divisible by the 4 devices of the mesh"
    assert sorted(out) == sorted(f"{f}/{b}" for f in FAMILIES for b in parallel.BACKENDS)
    for run, diff in out.items():
        assert diff["params"] < 1e-5 and diff["metrics"] < 1e-4, (run, diff)
        assert 0.2 < diff["flops"] < 0.3, (run, diff)   # a quarter each: nothing replicated, nothing lost


def _trainer_runs(config, tmp_path):
    """The config as trained on 2 devices under each backend (in one subprocess)."""
    runs = []
    for backend in parallel.BACKENDS:
        c = config.copy_and_resolve_references()
        c.parallel = backend
        runs.append((c.to_json(), str(tmp_path / backend)))
    script = ("from gdl_jax import runtime; runtime.configure();"
              "import json, sys, jax; from ml_collections import ConfigDict; from gdl_jax import tasks;"
              "assert jax.device_count() == 2, jax.devices();"
              "print('RESULTS', json.dumps([tasks.train_and_evaluate(ConfigDict(json.loads(c)), w)"
              " for c, w in json.loads(sys.argv[1])]))")
    return dict(zip(parallel.BACKENDS, _run_on_devices(2, ["-c", script, json.dumps(runs)])))


@pytest.mark.slow
def test_classifier_trainer_on_two_devices_matches_one(tiny_config, tmp_path):
    """The whole trainer (feeder, dispatch, checkpoints, evaluation) with --config.parallel
    either way on 2 devices gives the 1-device numbers (dropout off: under 'pmap' its masks are
    drawn per device)."""
    tiny_config.num_epochs = 1
    tiny_config.model.dropout = 0.0
    one = tasks.train_and_evaluate(tiny_config, tmp_path / "one")
    for backend, two in _trainer_runs(tiny_config, tmp_path).items():
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
            np.testing.assert_allclose(two[key], one[key], rtol=2e-3, err_msg=f"{backend} {key}")


@pytest.mark.slow
def test_gan_trainer_on_two_devices_matches_one(tmp_path):
    """The GAN trainer (generator BatchNorm synchronised over the devices, latent noise drawn for
    the global batch) on 2 devices under both backends: the 1-device losses and samples."""
    config = tiny_gan_config(write_quickdraw_cats(tmp_path / "data"))
    config.model.discriminator.dropout = 0.0
    config.analysis.quality_every_steps = 0
    one = tasks.train_and_evaluate(config, tmp_path / "one")
    for backend, two in _trainer_runs(config, tmp_path).items():
        for key in ("d_loss", "g_loss", "d_acc_real"):
            np.testing.assert_allclose(two["last_100_steps"][key], one["last_100_steps"][key], rtol=1e-3,
                                       atol=1e-5, err_msg=f"{backend} {key}")
        np.testing.assert_allclose(two["nearest_l1"], one["nearest_l1"], rtol=1e-3, err_msg=backend)


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown parallel backend 'pjit'; expected one of"):
        parallel.axis_name("pjit")


def _written(opened: list[str]) -> set[str]:
    """The files behind the names a process opened for writing: an atomic write's temporary
    <name>.<pid>.tmp stands for <name>."""
    return {name.rsplit(".", 2)[0] if name.endswith(".tmp") else name for name in opened}


@pytest.mark.slow
def test_two_processes_train_in_lockstep_and_only_process_0_writes(tiny_config, tmp_path):
    """A multi-host job of 2 processes (1 device each) over jax.distributed on loopback trains the
    classifier, then the GAN (its sample snapshots, quality tracking and analysis included): both
    processes end with the same results, equal to one process's, and only process 0 opens a file
    under the workdir for writing (orbax's checkpoints aside); the metrics log has each record
    once."""
    tiny_config.num_epochs = 1
    tiny_config.model.dropout = 0.0
    gan_config = tiny_gan_config(write_quickdraw_cats(tmp_path / "data"))
    gan_config.model.discriminator.dropout = 0.0
    configs = {"classifier": tiny_config, "gan": gan_config}
    one = {name: tasks.train_and_evaluate(c, tmp_path / f"one_{name}") for name, c in configs.items()}
    other = ConfigDict(tiny_config.to_dict())   # another run in the classifier's workdir: refused
    other.seed += 1
    configs["refused"] = other
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": xla_flags_without("device_count")}   # 1 CPU device per process
    runs = json.dumps([(str(tmp_path / f"mh_{'classifier' if name == 'refused' else name}"), c.to_json())
                       for name, c in configs.items()])
    procs = [subprocess.Popen([sys.executable, "tests/_multihost_run.py", str(i), str(port), runs], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=600)
            assert p.returncode == 0, stderr[-3000:]
            outs.append(dict(zip(configs, json.loads(stdout.split("RESULTS", 1)[1]))))
    finally:
        for p in procs:
            p.kill()
    # process 0 refuses the other run's workdir; process 1 stops too instead of waiting for it
    assert "holds a different run (seed: 0 there, 1 now)" in outs[0].pop("refused")["error"]
    assert outs[1].pop("refused")["error"] == "process 0 refused this run; its error says why"
    del configs["refused"]
    for name in configs:
        assert outs[0][name]["results"] == outs[1][name]["results"], name
        assert outs[1][name]["writes"] == [], name
    cls = outs[0]["classifier"]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(cls["results"][key], one["classifier"][key], rtol=2e-3, err_msg=key)
    assert {"config.json", "metrics.jsonl", "results.json", "summary.txt", "curves.png"} <= _written(cls["writes"])
    records = read_jsonl(tmp_path / "mh_classifier" / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, one["classifier"]["steps"] + 1))
    gan = outs[0]["gan"]
    for key in ("d_loss", "g_loss", "d_acc_real"):
        np.testing.assert_allclose(gan["results"]["last_100_steps"][key], one["gan"]["last_100_steps"][key],
                                   rtol=1e-3, atol=1e-5, err_msg=key)
    # every figure, snapshot, result, one TensorBoard file (named by its start time)
    files = lambda d: {"tensorboard/<events>" if f.parent.name == "tensorboard" else str(f.relative_to(d))
                       for f in d.rglob("*") if f.is_file() and "checkpoints" not in f.parts}
    assert files(tmp_path / "mh_gan") == files(tmp_path / "one_gan")
    assert len(list((tmp_path / "mh_gan" / "tensorboard").iterdir())) == 1
    assert {"results.json", "samples/target_8.npz", "quality/step_12.json"} <= _written(gan["writes"])
    records = read_jsonl(tmp_path / "mh_gan" / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, gan_config.num_steps + 1))
