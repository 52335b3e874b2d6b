"""The binaries as a user runs them: clear one-line errors, the streamed feeder on two devices."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("flags, env, message", [
    (["--config.batch_size=0"], {}, "error: batch_size must be positive, got 0"),
    (["--config.model.name=resnet"], {}, "error: unknown model 'resnet'"),
    ([], {"GDL_DATA_DIR": "/nonexistent/data"}, "error: data dir /nonexistent/data does not exist"),
])
def test_bad_input_is_one_line_without_traceback(cifar_dir, tmp_path, flags, env, message):
    env = {"GDL_DATA_DIR": str(cifar_dir), **env}
    proc = _run(["-m", "experiments.main", "--config=experiments/configs/mlp_cifar10.py",
                 f"--workdir={tmp_path / 'wd'}", *flags], env)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(message)
    assert not (tmp_path / "wd").exists()


NO_FILE = "error: cannot load the --config file: [Errno 2] No such file or directory: 'experiments/configs/nope.py'"


@pytest.mark.parametrize("binary, flags, message", [
    ("main", ["--config.batchsize=64"], "error: a --config override names a field the config does not have: "
                                        "'batchsize' (Did you mean \"batch_size\" instead of \"batchsize\"?)"),
    ("main", ["--config=experiments/configs/nope.py"], NO_FILE),
    ("main", ["--config=experiments/configs/nope.py", "--config.batch_size=3"], NO_FILE),
    ("main", ["--num_processes=2"],
     "error: --coordinator_address, --num_processes and --process_id need --distributed"),
    ("analyze_autoencoder", ["--config=experiments/configs/gan_quickdraw.py"],
     "error: experiments/configs/gan_quickdraw.py is a 'gan' config; this binary analyses autoencoder and vae runs"),
])
def test_bad_flags_are_one_line_before_any_work(tmp_path, binary, flags, message):
    proc = _run(["-m", f"experiments.{binary}", f"--workdir={tmp_path / 'wd'}", *flags])
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if not re.match(r"[IW]\d{4} ", line)]   # absl's log lines
    assert lines == [message]
    assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("source, message", [
    ("def get_config(:\n", "SyntaxError: invalid syntax (broken.py, line 1)"),
    ("import ml_collections\ndef get_config():\n    return ml_collections.ConfigDict().batch\n",
     "AttributeError: 'batch'"),   # not an override's field: the file's own error, named as such
])
def test_a_config_file_that_fails_to_load_is_one_line(tmp_path, source, message):
    (tmp_path / "broken.py").write_text(source)
    proc = _run(["-m", "experiments.main", f"--config={tmp_path / 'broken.py'}", f"--workdir={tmp_path / 'wd'}"])
    lines = [line for line in proc.stderr.splitlines() if not re.match(r"[IW]\d{4} ", line)]
    assert proc.returncode != 0 and lines == [f"error: cannot load the --config file: {message}"]


def test_conv_by_hand_binary_writes_fig_2_11(tmp_path):
    proc = _run(["-m", "experiments.conv_by_hand", f"--workdir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Fig 2-10: 2.3 and -2.3" in proc.stdout
    assert (tmp_path / "conv_edges.png").stat().st_size > 0
    bad = _run(["-m", "experiments.conv_by_hand", f"--workdir={tmp_path}", f"--image={tmp_path}/none.png"])
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "error: --image" in bad.stderr.strip().splitlines()[-1]


def test_stream_feeder_on_two_devices_serves_the_device_feeders_batches():
    """On a 2-device mesh the streamed batches are split over both devices and equal the
    on-device feeder's."""
    script = (
        "import jax, numpy as np; from gdl_jax import data as gdata; from gdl_jax import parallel;"
        "assert jax.device_count() == 2, jax.devices();"
        "rng = np.random.default_rng(0); mesh = parallel.make_mesh(); key = jax.random.PRNGKey(1);"
        "d = gdata.ArrayData(rng.integers(0, 256, (24, 4, 4, 3), dtype=np.uint8), np.arange(24, dtype=np.int32), ());"
        "dev = gdata.DeviceFeeder(gdata.to_device(d, mesh), key, 6, mesh);"
        "st = gdata.StreamFeeder(gdata.ArraySource(d), key, 6, mesh, labels=d.labels);"
        "images, _ = st.get(4, 2); shapes = [s.data.shape for s in images.addressable_shards];"
        "assert shapes == [(2, 3, 4, 4, 3)] * 2, shapes;"
        "want, got = gdata.feed_batches(dev, 4, 2), gdata.feed_batches(st, 4, 2); st.close();"
        "assert all(np.array_equal(a, b) for w, g in zip(want, got) for a, b in zip(w, g));"
        "print('OK')")
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    proc = _run(["-c", script], {"XLA_FLAGS": flags})
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]


CONFIG_FILES = sorted(p.stem for p in (ROOT / "experiments" / "configs").glob("*.py")
                      if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_shipped_config_passes_its_trainers_checks(name):
    """Each config in experiments/configs is accepted by its trainer's validation (no data needed)
    and names the figure or result it reproduces."""
    import importlib

    from gdl_jax.tasks import autoencoder, gan
    from gdl_jax.train import runner

    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    assert config.figure
    task = config.get("task", "classifier")
    {"classifier": runner.validate, "autoencoder": autoencoder.validate, "vae": autoencoder.validate,
     "gan": gan.validate, "wgan": gan.validate}[task](config)


def test_a_workdir_in_use_is_one_line(cifar_dir, tmp_path):
    """A second training process on a workdir another holds: refused in one line, naming it."""
    import fcntl

    from gdl_jax.outputs import LOCK_FILE

    wd = tmp_path / "wd"
    wd.mkdir()
    with open(wd / LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(f"pid {os.getpid()} on this machine\n")
        held.flush()
        proc = _run(["-m", "experiments.main", "--config=experiments/configs/mlp_cifar10.py", f"--workdir={wd}",
                     "--config.num_epochs=1"], {"GDL_DATA_DIR": str(cifar_dir)})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: workdir {wd} is in use by another run (pid {os.getpid()} on this machine); "
        "wait for it to end or use a new --workdir")
    assert sorted(p.name for p in wd.iterdir()) == [LOCK_FILE]

    # re-running the chapter 3 analysis there would overwrite the training run's figures too
    with open(wd / LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = _run(["-m", "experiments.analyze_autoencoder", "--config=experiments/configs/vae_mnist.py",
                     f"--workdir={wd}"])
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: workdir {wd} is in use by another run (pid ")


def test_a_relative_directory_lock_is_released_after_a_chdir(tmp_path, monkeypatch):
    """The lock is keyed by the directory's absolute path, taken once: a block that changes the
    working directory still releases the lock it took (else it would stay held until exit)."""
    import fcntl

    from gdl_jax import outputs

    (tmp_path / "a" / "wd").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    with outputs.locked("wd", "output_dir"):
        monkeypatch.chdir(tmp_path / "b")
    with open(tmp_path / "a" / "wd" / outputs.LOCK_FILE, "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)   # BlockingIOError if still held


def test_kill_stops_training_with_a_checkpoint_in_one_line(cifar_dir, tmp_path):
    """`kill` (SIGTERM) of a training binary: it saves the step it reached, says so in one line
    (no traceback) and dies of the signal, as it would have without the checkpoint."""
    import signal
    import time

    from gdl_jax.train.metrics import read_jsonl

    wd = tmp_path / "wd"
    args = [sys.executable, "-m", "experiments.main", "--config=experiments/configs/mlp_cifar10.py",
            f"--workdir={wd}", "--config.num_steps=1000000", "--config.log_every_steps=2",
            "--config.checkpoint_every_steps=1000000"]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "GDL_DATA_DIR": str(cifar_dir)},
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (wd / "metrics.jsonl").is_file() or not (wd / "metrics.jsonl").stat().st_size:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGTERM and "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    step = int(re.fullmatch(r"stopped by SIGTERM at step (\d+), its checkpoint saved: "
                            r"run the same command again to go on from there", last)[1])
    assert [p.name for p in (wd / "checkpoints").iterdir()] == [str(step)]
    assert read_jsonl(wd / "metrics.jsonl")[-1]["step"] == step


def test_ctrl_c_outside_training_is_one_line_and_dies_of_sigint():
    """Ctrl-C while a binary loads data or compiles: one line, no traceback, and the process ends
    by SIGINT as an uncaught Ctrl-C would (so that a shell loop of runs stops too)."""
    import signal

    code = "from gdl_jax import cli\ndef work():\n    raise KeyboardInterrupt\ncli.run_or_exit(work)\n"
    proc = _run(["-c", code])
    assert proc.returncode == -signal.SIGINT and proc.stderr == "interrupted\n"


def test_atomic_writes_leave_the_old_file_whole_when_a_write_fails(tmp_path, monkeypatch):
    """A write that dies part way (a full disk, a kill) leaves the file as it was, never half of
    the new one."""
    import numpy as np

    from gdl_jax import outputs

    text, arrays = tmp_path / "a.json", tmp_path / "latents.npz"
    outputs.atomic_write_text(text, "old")
    outputs.atomic_savez(arrays, z=np.arange(3))
    assert text.read_text() == "old" and np.load(arrays)["z"].tolist() == [0, 1, 2]

    def dies_part_way(path, **kw):
        pathlib.Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")
    monkeypatch.setattr(np, "savez", dies_part_way)
    with pytest.raises(OSError, match="No space"):
        outputs.atomic_savez(arrays, z=np.arange(5))
    assert np.load(arrays)["z"].tolist() == [0, 1, 2]
    monkeypatch.setattr(pathlib.Path, "write_text", lambda self, t: dies_part_way(self))
    with pytest.raises(OSError, match="No space"):
        outputs.atomic_write_text(text, "new")
    assert text.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "latents.npz"]   # no temporary left
