"""The training core end to end on tiny data: learning, determinism, kill-and-resume, bad input."""

import json
import os
import signal

import pytest

from gdl_jax import models, parallel, tasks
from gdl_jax.errors import CheckpointError, ConfigError, Stopped
from gdl_jax.train import runner
from gdl_jax.train.metrics import JsonlWriter, read_jsonl


class Killed(Exception):
    """Stands in for a SIGKILL: raised from a hook in the middle of a run."""


def _kill_at(step_to_die: int):
    def hook(step, state):
        if step >= step_to_die:
            raise Killed(step)
    return hook


def test_tiny_run_learns_and_writes_outputs(tiny_config, tmp_path):
    results = tasks.train_and_evaluate(tiny_config, tmp_path)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    train_steps = [r for r in records if r["kind"] == "train"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["step"] for r in train_steps] == list(range(1, 81))  # one record per step
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert results["test_accuracy"] > 0.3  # 10 classes, chance is 0.1
    assert results["params"] == 592_554
    for name in ("predictions.png", "curves.png", "summary.txt", "results.json", "config.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text()) == results


def test_same_seed_same_numbers(tiny_config, tmp_path):
    tiny_config.num_epochs = 1
    a = tasks.train_and_evaluate(tiny_config, tmp_path / "a")
    import gdl_jax

    with pytest.raises(ConfigError, match="holds a 'classifier' run of 'cnn'; gdl_jax.load supports"):
        gdl_jax.load(tmp_path / "a")
    b = tasks.train_and_evaluate(tiny_config, tmp_path / "b")
    assert a == b
    tiny_config.seed = 1
    c = tasks.train_and_evaluate(tiny_config, tmp_path / "c")
    assert c["train_loss"] != a["train_loss"]


def test_killed_run_resumes_to_the_same_result(tiny_config, tmp_path):
    """Also the TensorBoard mirror of the log: it shows the same numbers as metrics.jsonl, with
    the killed run's steps past its checkpoint hidden by the resumed run's purge marker."""
    tiny_config.log_every_steps = 2     # records reach the logs every dispatch
    tiny_config.num_epochs = 2
    whole = tasks.train_and_evaluate(tiny_config, tmp_path / "whole")
    # Die at step 10 of 40: the last checkpoint is step 6, steps 7-10 are lost and redone
    # (7-8 were already logged).
    with pytest.raises(Killed):
        tasks.train_and_evaluate(tiny_config, tmp_path / "killed", hooks=[_kill_at(10)])
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["6"]
    assert read_jsonl(tmp_path / "killed" / "metrics.jsonl")[-1]["step"] == 8
    before, _ = _tensorboard_scalars(tmp_path / "killed" / "tensorboard")
    assert max(step for _, step in before) == 8
    resumed = tasks.train_and_evaluate(tiny_config, tmp_path / "killed")
    assert resumed == whole
    records = read_jsonl(tmp_path / "killed" / "metrics.jsonl")
    assert records == read_jsonl(tmp_path / "whole" / "metrics.jsonl")
    expected = {(f"{r['kind']}/{k}", r["step"]): v for r in records for k, v in r.items() if k not in ("step", "kind")}
    shown, starts = _tensorboard_scalars(tmp_path / "killed" / "tensorboard")
    assert starts == [7]                               # the resume hides the killed run's steps 7-8
    assert shown.keys() == expected.keys() and {k for k, _ in shown} >= {"train/loss", "epoch/test_accuracy"}
    assert all(shown[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())


@pytest.mark.parametrize("signum, at", [(signal.SIGTERM, 10), (signal.SIGINT, 20)])
def test_a_signalled_run_stops_with_a_checkpoint_and_resumes_to_the_same_result(tiny_config, tmp_path, signum, at):
    """Ctrl-C or `kill` during training (mid-epoch at step 10, at the epoch end 20): the loop ends
    its dispatches, saves that step's checkpoint (not only the last periodic one, 6 or 18) and
    stops; the resumed run gives the uninterrupted run's numbers. The first SIGINT gives its
    handler back (a second Ctrl-C acts at once); a second SIGTERM (a report and its row both
    killed) asks for the same stop. Leaving the loop restores the handlers it found."""
    tiny_config.num_epochs = 2
    whole = tasks.train_and_evaluate(tiny_config, tmp_path / "whole")
    before = signal.getsignal(signum)
    seen = []

    def signal_at(step, state):
        if step == at:
            assert signal.getsignal(signum) not in (signal.SIG_DFL, signal.default_int_handler)
            os.kill(os.getpid(), signum)
            seen.append(signal.getsignal(signum))
            if signum == signal.SIGTERM:
                os.kill(os.getpid(), signum)
    with pytest.raises(Stopped, match=f"stopped by {signal.Signals(signum).name} at step {at}, its checkpoint saved"):
        tasks.train_and_evaluate(tiny_config, tmp_path / "stopped", hooks=[signal_at])
    assert (seen[0] is before) == (signum == signal.SIGINT) and signal.getsignal(signum) is before
    assert max(int(p.name) for p in (tmp_path / "stopped" / "checkpoints").iterdir()) == at
    assert read_jsonl(tmp_path / "stopped" / "metrics.jsonl")[-1]["step"] == at
    assert tasks.train_and_evaluate(tiny_config, tmp_path / "stopped") == whole
    assert read_jsonl(tmp_path / "stopped" / "metrics.jsonl") == read_jsonl(tmp_path / "whole" / "metrics.jsonl")


def test_a_signal_during_the_last_checkpoint_still_stops_the_run(tiny_config, tmp_path, monkeypatch):
    """A `kill` that lands while the loop waits for its final checkpoint is not dropped: the run
    stops there (no analysis, no results.json) instead of going on to the end as if unasked."""
    from gdl_jax.train.checkpoint import Checkpointer

    tiny_config.num_epochs = 1
    wait = Checkpointer.wait

    def wait_and_signal(self):
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        wait(self)
    monkeypatch.setattr(Checkpointer, "wait", wait_and_signal)
    with pytest.raises(Stopped, match="stopped by SIGTERM at step 20"):
        tasks.train_and_evaluate(tiny_config, tmp_path)
    assert not (tmp_path / "results.json").exists()


def test_finished_run_can_be_extended(tiny_config, tmp_path):
    tiny_config.num_epochs = 1
    tasks.train_and_evaluate(tiny_config, tmp_path)
    tiny_config.num_epochs = 2
    results = tasks.train_and_evaluate(tiny_config, tmp_path)
    assert results["epochs"] == 2 and results["steps"] == 40


def test_a_workdir_in_use_by_another_run_is_refused(tiny_config, tmp_path):
    """Two runs on one workdir would interleave checkpoints and logs: while one holds the
    workdir's lock (here another open file of this process, as a second process would), a run
    there is refused, naming the holder; a run releases the lock when it ends, killed or not."""
    import fcntl

    from gdl_jax.outputs import LOCK_FILE

    tiny_config.num_epochs = 1
    with open(tmp_path / LOCK_FILE, "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        other.write("pid 4242 on elsewhere\n")
        other.flush()
        with pytest.raises(CheckpointError, match=r"workdir .* is in use by another run \(pid 4242 on elsewhere\)"):
            tasks.train_and_evaluate(tiny_config, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]    # nothing else written
    with pytest.raises(Killed):
        tasks.train_and_evaluate(tiny_config, tmp_path, hooks=[_kill_at(4)])
    with open(tmp_path / LOCK_FILE, "a+") as other:   # the killed run let go of it
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert tasks.train_and_evaluate(tiny_config, tmp_path)["steps"] == 20


def test_workdir_of_another_run_is_refused_untouched(tiny_config, tmp_path):
    tiny_config.num_epochs = 1
    tasks.train_and_evaluate(tiny_config, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    tiny_config.model.name = "mlp"
    with pytest.raises(CheckpointError, match="holds a different run .*model"):
        tasks.train_and_evaluate(tiny_config, tmp_path)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_restoring_from_an_empty_workdir_leaves_it_usable(tiny_config, tmp_path):
    """Analysis of a workdir with nothing trained is a clear error and creates nothing there."""
    model = models.build(tiny_config.model.name)
    with pytest.raises(CheckpointError, match="no checkpoint in .*; train first"):
        runner.restore(tiny_config, tmp_path / "wd", model, (32, 32, 3), parallel.make_mesh())
    assert not (tmp_path / "wd").exists()


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    log = tmp_path / "metrics.jsonl"
    records = [{"step": i, "kind": "train", "loss": 1 / i} for i in (1, 2, 3)]
    with JsonlWriter(log) as writer:
        writer.write(records)
    whole = log.read_text()
    log.write_text(whole + '{"step": 4, "kind": "tr')   # a record half written when the run was killed
    with JsonlWriter(log) as writer:
        assert writer.truncate_after(2) == records[:2]
    assert read_jsonl(log) == records[:2]
    log.write_text('{"step": 1, "kind": "tr\n' + whole)   # damage elsewhere is not a kill's: an error
    with pytest.raises(CheckpointError, match="metrics.jsonl line 1 is not JSON"):
        JsonlWriter(log).truncate_after(2)


def test_corrupt_checkpoint_is_a_clear_error(tiny_config, tmp_path):
    tiny_config.num_epochs = 1
    tasks.train_and_evaluate(tiny_config, tmp_path)
    ckpt = tmp_path / "checkpoints" / "20"
    chunks = [f for f in ckpt.rglob("*") if f.is_file() and f.parent.name == "d"]
    assert chunks
    for f in chunks:
        f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="does not fit this model or is corrupt"):
        tasks.train_and_evaluate(tiny_config, tmp_path)


@pytest.mark.parametrize("key, value, message", [
    ("batch_size", 0, "batch_size must be positive"),
    ("batch_size", -4, "batch_size must be positive"),
    ("batch_size", 1000, "larger than the 160 training examples"),
    ("learning_rate", 0.0, "learning_rate must be positive"),
    ("num_epochs", 0, "num_epochs must be positive"),
    ("optimizer", "adamw2", "unknown optimizer"),
    ("optimizer_kwargs", {"beta_1": 0.5}, r"bad optimizer_kwargs \{'beta_1': 0.5\} for 'adam'"),
    ("num_steps", -5, "num_steps must be >= 0"),
    ("optimizer_kwargs", {"b1": "x"}, r"bad optimizer_kwargs \{'b1': 'x'\} for 'adam'"),  # builds; fails in update
    ("seed", -1, "seed must be an integer >= 0"),
])
def test_bad_config_values_fail_before_writing(tiny_config, tmp_path, key, value, message):
    tiny_config[key] = value
    with pytest.raises(ConfigError, match=message):
        tasks.train_and_evaluate(tiny_config, tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


def test_train_subset_is_a_seeded_random_sample_of_every_class(tiny_config):
    from gdl_jax.train import runner

    tiny_config.data.train_subset = 40
    train, _ = runner.load_splits(tiny_config)
    assert len(train) == 40 and len(set(train.labels.tolist())) > 5  # local copy is class-sorted
    again, _ = runner.load_splits(tiny_config)
    assert (again.labels == train.labels).all()
    tiny_config.data.train_subset = 10_000
    with pytest.raises(ConfigError, match="train_subset 10000 is larger than the 160"):
        runner.load_splits(tiny_config)


def test_optimizer_kwargs_reach_the_optimizer(tiny_config):
    import jax.numpy as jnp
    import numpy as np
    import optax

    from gdl_jax.train import runner

    tiny_config.optimizer_kwargs = {"b1": 0.5, "b2": 0.99, "eps": 1e-7}
    params = {"w": jnp.ones(3)}
    grads = [{"w": jnp.array([1.0, -2.0, 0.5]) * (i + 1)} for i in range(3)]

    def run(tx):
        opt_state, updates = tx.init(params), []
        for g in grads:
            u, opt_state = tx.update(g, opt_state, params)
            updates.append(u["w"])
        return np.stack(updates)

    got = run(runner.make_optimizer(tiny_config, 1e-3))
    np.testing.assert_allclose(got, run(optax.adam(1e-3, b1=0.5, b2=0.99, eps=1e-7)), rtol=1e-6)
    assert not np.allclose(got, run(optax.adam(1e-3)), rtol=1e-3)


def test_bfloat16_compute_keeps_float32_state_and_follows_the_float32_run(tiny_config, tmp_path):
    """compute_dtype='bfloat16': the CNN's convolutions and matmuls run in bfloat16, while its
    params, optimizer state, BatchNorm statistics and losses stay float32. On the tiny run (batch
    8, 2 epochs of 20 steps, the loss falling from 2.3 to 0.6) the first step's loss (same params,
    same batch: rounding only) is within 2% of float32's and each epoch's mean loss within 0.08
    (measured on the 2-core AVX2 CPU: 0.025 and 0.040; single later steps differ by up to 0.19 as
    the two runs' params drift apart)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gdl_jax import models
    from gdl_jax.train import runner, steps

    tiny_config.num_epochs = 2
    runs = {}
    for dtype in ("float32", "bfloat16"):
        tiny_config.compute_dtype = dtype
        tasks.train_and_evaluate(tiny_config, tmp_path / dtype)
        runs[dtype] = read_jsonl(tmp_path / dtype / "metrics.jsonl")
    first = [next(r["loss"] for r in runs[d] if r["kind"] == "train") for d in ("float32", "bfloat16")]
    epochs = [np.array([r["train_loss"] for r in runs[d] if r["kind"] == "epoch"]) for d in ("float32", "bfloat16")]
    assert 0 < abs(first[1] - first[0]) < 0.02 * first[0]   # > 0: bfloat16 really computed differently
    assert len(epochs[0]) == 2 and np.all(np.abs(epochs[1] - epochs[0]) < 0.08)

    model = models.build("cnn")
    state = runner.initial_state(tiny_config, model, (32, 32, 3), runner.parallel.make_mesh())
    batch = (jnp.zeros((4, 32, 32, 3)), jnp.zeros(4, jnp.int32))
    jaxpr = str(jax.make_jaxpr(steps.classifier_train_step)(state, batch))
    assert "conv_general_dilated" in jaxpr and "bf16[4,32,32,32]" in jaxpr
    new, metrics = jax.jit(steps.classifier_train_step)(state, batch)
    leaves = jax.tree.leaves((new.params, new.opt_state, new.batch_stats, metrics))
    assert {x.dtype for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)} == {jnp.dtype("float32")}


def test_unknown_compute_dtype_is_a_config_error(tiny_config, tmp_path):
    tiny_config.compute_dtype = "float16"
    with pytest.raises(ConfigError, match=r"compute_dtype must be one of \['float32', 'bfloat16'\], got 'float16'"):
        tasks.train_and_evaluate(tiny_config, tmp_path)
    assert not tmp_path.joinpath("config.json").exists()


def _tensorboard_scalars(folder) -> tuple[dict[tuple[str, int], float], list[int]]:
    """The scalars TensorBoard shows from the event files in `folder`: read in file order, with a
    SessionLog START at step s (a resumed run's purge_step) hiding earlier events at steps >= s,
    as TensorBoard does; and the steps of those STARTs. Parses the TFRecord framing directly
    (length, crc, event, crc)."""
    import struct

    from tensorboardX.proto import event_pb2

    shown: dict[tuple[str, int], float] = {}
    starts = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
                shown = {k: v for k, v in shown.items() if k[1] < event.step}
                starts.append(event.step)
            for value in event.summary.value:
                shown[(value.tag, event.step)] = value.simple_value
    return shown, starts


@pytest.mark.parametrize("max_in_flight", [2, 4])
def test_the_host_runs_at_most_max_in_flight_dispatches_ahead(tmp_path, monkeypatch, max_in_flight):
    """A stop waits for the dispatches in flight, so the loop keeps them few: with a step slower
    than the host, the hook after dispatch i runs only once dispatch i - MAX_IN_FLIGHT + 1 is
    done, so the hooks spread over the run; without the cap the host would issue every dispatch,
    and run every hook, at once, long before the device is done."""
    import time

    import flax
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gdl_jax import data as gdata
    from gdl_jax.models import conv
    from gdl_jax.train import loop
    from gdl_jax.train.checkpoint import Checkpointer

    @flax.struct.dataclass
    class Counter:
        step: jax.Array

    def step_fn(state, batch):   # tens of ms of matrix products that depend on the state
        x = jnp.full((384, 384), 1e-3) + state.step.astype(jnp.float32) * 1e-6
        for _ in range(10):
            x = jnp.tanh(x @ x)
        return state.replace(step=state.step + 1), {"loss": jnp.mean(x) + jnp.mean(batch[0])}

    n = 12
    data = gdata.ArrayData(np.zeros((4 * n, 2, 2, 1), np.uint8), np.zeros(4 * n, np.int32), ("a",))
    mesh = parallel.make_mesh()
    feeder = gdata.DeviceFeeder(gdata.to_device(data, mesh), jax.random.PRNGKey(0), 4, mesh)
    hooked = []
    monkeypatch.setattr(loop, "MAX_IN_FLIGHT", max_in_flight)
    with conv.forms("rule"), Checkpointer(tmp_path / "checkpoints", every_steps=100) as checkpointer, \
            JsonlWriter(tmp_path / "metrics.jsonl") as writer:
        final = loop.Loop(step_fn, feeder, n, 1, checkpointer, writer, log_every_steps=100,
                          hooks=[lambda step, state: hooked.append(time.perf_counter())]).run(Counter(jnp.int32(0)), [])
        int(final.step)
        done = time.perf_counter()
    per_step = (done - hooked[0]) / (n - 1)   # a step's mean time, from the first hook on
    assert hooked[-1] - hooked[0] >= 0.5 * (n - max_in_flight) * per_step


def test_progress_lines_give_the_rate_in_the_unit_people_read():
    """Under a step a second the rate is seconds a step: 0.1 steps/s would show 7 and 13 s a step
    alike."""
    from gdl_jax.train.loop import eta, pace

    assert pace(250.0) == "250.0 steps/s" and pace(1.0) == "1.0 steps/s"
    assert pace(1 / 9.26) == "9.3 s/step" and pace(1 / 13) == "13.0 s/step"
    assert eta(5000, 1 / 9.0) == "12:30:00"
