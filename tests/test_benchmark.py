"""experiments/benchmark.py on the smallest setting, torch's twin models, and bad flags."""

import functools
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import jax.numpy as jnp
import pytest

import experiments
from experiments import benchmark
from gdl_jax.errors import ConfigError

ROW_KEYS = {"model", "model_kwargs", "batch_size", "devices", "parallel", "conv_forms", "params", "steps_per_dispatch",
            "timed_rounds", "compute_dtype",
            "jax_compile_s", "jax_ms_per_step", "jax_steps_per_s", "jax_images_per_s", "jax_epoch_s", "gflop_per_step",
            "model_gflop_per_step", "jax_gflop_per_s", "jax_of_matmul_peak", "jax_peak_mib"}
ROOT = pathlib.Path(__file__).resolve().parents[1]
TORCH_KEYS = {"torch_ms_per_step", "torch_steps_per_s", "torch_images_per_s", "torch_epoch_s", "jax_over_torch"}


def test_smallest_run_writes_positive_numbers(tmp_path, capsys):
    torch_bench = benchmark.load_torch_bench()  # None, with a note, when torch is not installed
    env = benchmark.environment(torch_bench, 1)
    rows = benchmark.run_benchmark(["mlp"], [8], steps_per_dispatch=2, warmup=1, iters=2,
                                   torch_bench=torch_bench, torch_threads=1, matmul_peak=env["matmul_peak_gflop_per_s"])
    text = benchmark.write_outputs(rows, env, tmp_path)

    saved = json.loads((tmp_path / "benchmark.json").read_text())
    assert saved["environment"]["backend"] == env["backend"] and saved["environment"]["jax"]
    [row] = saved["rows"]
    expected = ROW_KEYS | (TORCH_KEYS if torch_bench else set())
    assert set(row) == expected
    assert (row["model"], row["batch_size"], row["params"]) == ("mlp", 8, 646_260)
    dense = 6 * 8 * 646_260 / 1e9     # 2 FLOPs per weight and example, forward and both gradients
    assert dense <= row["gflop_per_step"] <= 2 * dense, row["gflop_per_step"]   # XLA's count, per step
    assert row["jax_of_matmul_peak"] == pytest.approx(row["jax_gflop_per_s"] / env["matmul_peak_gflop_per_s"])
    # the state alone (params, Adam's two moments, float32) is an argument of the dispatch
    assert row["jax_peak_mib"] >= 3 * 646_260 * 4 / 2**20
    assert env["device_model"] and env["device_model"] in text
    if torch_bench:
        assert row["torch_steps_per_s"] > 0
        assert row["jax_over_torch"] == pytest.approx(row["jax_steps_per_s"] / row["torch_steps_per_s"])
    else:
        assert "skipping the torch columns" in capsys.readouterr().out
    assert (tmp_path / "benchmark.md").read_text() == text
    assert "| mlp | 8 | 1 | sharded | rule | 646,260 |" in text   # tests run with GDL_JAX_CONV=rule


def test_one_row_per_device_count_backend_and_conv_form_mode():
    """--devices, --parallel and --conv_forms: one timed row per combination, the same model in each."""
    rows = benchmark.run_benchmark(["small_conv"], [4], steps_per_dispatch=1, warmup=0, iters=1, devices=[1],
                                   backends=("sharded", "pmap"), conv_forms=("rule", "lax"))
    assert [(r["devices"], r["parallel"], r["conv_forms"], r["params"]) for r in rows] == [
        (1, "sharded", "rule", 15_120), (1, "sharded", "lax", 15_120),
        (1, "pmap", "rule", 15_120), (1, "pmap", "lax", 15_120)]
    # each mode compiled its own program (XLA counts the forms' FLOPs differently)
    assert rows[0]["gflop_per_step"] != rows[1]["gflop_per_step"]


@pytest.mark.parametrize("name, total", [("mlp", 646_260), ("small_conv", 15_120), ("cnn", 592_554),
                                         ("autoencoder", 200_963), ("vae", 207_237),
                                         ("vae_faces", 1_732_944 + 917_123),
                                         ("gan", 720_833 + 844_161),
                                         ("wgan", 670_401 + 884_163), ("wgan_gp", 4_314_753 + 5_168_003)])
def test_torch_twins_have_the_jax_parameter_counts(name, total):
    pytest.importorskip("torch")
    from experiments import bench_torch

    assert bench_torch.param_count(bench_torch.build(name)) == total


@pytest.mark.parametrize("kwargs, message", [
    ({"model_names": ["resnet"]}, "unknown model 'resnet'"),
    ({"batch_sizes": [32, 0]}, r"batch_sizes must be positive integers, got \[32, 0\]"),
    ({"iters": 0}, "iters must be positive"),
    ({"warmup": -1}, "warmup must be >= 0"),
    ({"devices": [1, 64]}, "devices must be between 1 and the 1 device"),
    ({"backends": ["pjit"]}, "unknown parallel backend 'pjit'"),
    ({"conv_forms": ["auto", "winograd"]}, "unknown convolution form mode 'winograd'"),
    ({"compute_dtype": "float16"}, r"compute_dtype must be one of \['float32', 'bfloat16'\], got 'float16'"),
])
def test_bad_settings_are_clear_errors(kwargs, message):
    settings = dict(model_names=["mlp"], batch_sizes=[8], steps_per_dispatch=1, warmup=0, iters=1,
                    torch_threads=1) | kwargs
    with pytest.raises(ConfigError, match=message):
        benchmark.validate(**settings)


def test_time_budget_stops_rounds_between_min_and_max():
    calls = []
    slow = lambda: (calls.append(1), time.sleep(0.02))
    medians, rounds = benchmark.time_interleaved([slow, slow], warmup=1, iters=50, budget_s=0.1, min_iters=3)
    assert 3 <= rounds < 50 and len(calls) == 2 * (1 + 2 * rounds) and all(m >= 0.02 for m in medians)
    assert benchmark.time_interleaved([slow], warmup=0, iters=4, budget_s=0.0)[1] == 4       # no budget: all iters
    assert benchmark.time_interleaved([slow], warmup=0, iters=9, budget_s=1e-9, min_iters=3)[1] == 3


def test_each_function_is_timed_after_an_untimed_call_that_absorbs_the_previous_ones_tail():
    """A function slowed by whatever ran just before it (torch's spinning OpenMP workers) is
    timed in its steady state; with settle=0 the slow-down is what gets timed."""
    dirty = [False]
    def other():
        dirty[0] = True
    def step():
        time.sleep(0.03 if dirty[0] else 0.005)
        dirty[0] = False
    settled, _ = benchmark.time_interleaved([other, step], warmup=0, iters=5)
    unsettled, _ = benchmark.time_interleaved([other, step], warmup=0, iters=5, settle=0)
    assert settled[1] < 0.02 < unsettled[1]
    calls = []
    slow = lambda: (calls.append(1), time.sleep(0.02))
    benchmark.time_interleaved([slow], warmup=0, iters=4, settle_below_s=0.01)   # long calls: settled once
    assert len(calls) == 5


def test_bad_flag_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.benchmark", "--batch_sizes=32,abc",
                           "--notorch", f"--output_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == "error: batch_sizes must be positive integers, got '32,abc'"
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


def test_missing_torch_is_a_note_not_a_failure(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    monkeypatch.delitem(sys.modules, "experiments.bench_torch", raising=False)
    monkeypatch.delattr(experiments, "bench_torch", raising=False)  # else `from experiments import` finds it
    assert benchmark.load_torch_bench() is None
    assert "skipping the torch columns" in capsys.readouterr().out


def test_torch_without_the_accelerator_jax_runs_on_is_a_note_not_a_cpu_column(monkeypatch, capsys):
    """JAX on a GPU with the CPU torch wheel: no torch columns (they would time the CPU against
    the GPU), and a note that says why; a CPU run keeps them."""
    bench_torch = pytest.importorskip("experiments.bench_torch")
    monkeypatch.setattr(benchmark.jax, "default_backend", lambda: "cpu")
    assert benchmark.load_torch_bench() is bench_torch
    monkeypatch.setattr(benchmark.jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(bench_torch, "device", lambda: "cpu")
    assert benchmark.load_torch_bench() is None
    assert "JAX runs on gpu but this torch" in capsys.readouterr().out


def test_autoencoder_workloads_run_on_both_sides():
    torch_bench = benchmark.load_torch_bench()
    rows = benchmark.run_benchmark(["vae"], [8], steps_per_dispatch=1, warmup=0, iters=1,
                                   torch_bench=torch_bench, torch_threads=1)
    assert rows[0]["params"] == 207_237 and rows[0]["jax_epoch_s"] > 0
    fast_rows = benchmark.run_benchmark(["autoencoder"], [8], steps_per_dispatch=1, warmup=0, iters=1)
    lax_rows = benchmark.run_benchmark(["autoencoder"], [8], steps_per_dispatch=1, warmup=0, iters=1,
                                       model_kwargs={"subpixel": False})
    assert lax_rows[0]["params"] == fast_rows[0]["params"] == 200_963
    assert lax_rows[0]["gflop_per_step"] != fast_rows[0]["gflop_per_step"]   # the kwarg reached the model


def test_gan_workload_runs_the_full_update_on_both_sides():
    torch_bench = benchmark.load_torch_bench()
    [row] = benchmark.run_benchmark(["gan"], [4], steps_per_dispatch=1, warmup=0, iters=1,
                                    torch_bench=torch_bench, torch_threads=1)
    assert row["params"] == 720_833 + 844_161 and row["jax_steps_per_s"] > 0 and row["gflop_per_step"] > 0


def test_streamed_feeder_alone_delivers_faces(tmp_path):
    from tests.test_celeba import write_celeba

    root = write_celeba(tmp_path, n=24)
    rate = benchmark.feeder_images_per_s(str(root), batch_size=4, k=2, workers=2, dispatches=3)
    assert 0 < rate < float("inf")


def test_torch_compile_column_times_the_compiled_twin(tmp_path):
    """--torch_compile: the compiled torch step beside the eager one (torch only), its compile time
    apart; the WGAN-GP is left out with the reason."""
    torch_bench = pytest.importorskip("experiments.bench_torch")
    [row] = benchmark.run_benchmark(["small_conv"], [8], steps_per_dispatch=1, warmup=0, iters=1,
                                    torch_bench=torch_bench, torch_threads=1, torch_compile=True)
    from torch._dynamo.utils import counters

    assert counters["stats"]["unique_graphs"] > 0   # dynamo compiled (nn.Module.compile() did not, in torch 2.13)
    assert row["torch_compile_s"] > 0 and row["torch_compiled_ms_per_step"] > 0
    assert row["jax_over_torch_compiled"] == pytest.approx(row["torch_compiled_ms_per_step"] / row["jax_ms_per_step"])
    text = benchmark.write_outputs([row], benchmark.environment(torch_bench, 1), tmp_path)
    assert "| torch.compile s | compiled torch ms/step | JAX/compiled torch |" in text
    assert "double backward" in benchmark.NO_TORCH_COMPILE["wgan_gp"]


def test_bfloat16_runs_the_jax_step_in_mixed_precision_and_says_so(tmp_path, monkeypatch):
    """--compute_dtype=bfloat16: the dispatch's convolutions and matmuls take bfloat16 (the params
    stay float32), the row and the table's header name the dtype, the roofline is bfloat16's."""
    def dtypes(compute_dtype):
        j = benchmark.prepare_jax("small_conv", 4, 1, compute_dtype=compute_dtype)
        text = j["lowered"].as_text()
        ops = re.findall(r"stablehlo\.(?:convolution|dot_general).*\) -> tensor<[^>]*x(\w+)>", text)
        return set(ops), j
    ops32, _ = dtypes("float32")
    ops16, j = dtypes("bfloat16")
    assert ops32 == {"f32"} and ops16 == {"bf16"}, (ops32, ops16)
    assert j["params"] == 15_120
    # a small roofline product: bfloat16 matmuls are slow on CPUs without bfloat16 instructions
    monkeypatch.setattr(benchmark, "matmul_gflop_per_s", functools.partial(benchmark.matmul_gflop_per_s, n=256))
    env = benchmark.environment(None, 1, "bfloat16")
    # numpy's BLAS has no bfloat16; XLA's product is timed both ways
    assert env["compute_dtype"] == "bfloat16" and "matmul_blas_gflop_per_s" not in env
    assert env["matmul_xla_f32_acc_gflop_per_s"] > 0
    [row] = benchmark.run_benchmark(["small_conv"], [4], steps_per_dispatch=1, warmup=0, iters=1,
                                    matmul_peak=env["matmul_peak_gflop_per_s"], compute_dtype="bfloat16")
    assert row["compute_dtype"] == "bfloat16" and row["jax_steps_per_s"] > 0
    assert "bfloat16 matmul peak" in benchmark.write_outputs([row], env, tmp_path)


@pytest.mark.parametrize("name", ["small_conv", "gan", "wgan_gp"])
def test_bfloat16_runs_the_torch_twin_under_autocast(monkeypatch, name):
    """The torch side of a bfloat16 row computes its convolutions in bfloat16 (torch.autocast),
    its float32 row in float32; the WGAN-GP's penalty (a double backward) runs under it too. No
    optimizer step runs inside autocast, whose cached bfloat16 weights it would leave stale for
    the next forward pass of the same update."""
    bench_torch = pytest.importorskip("experiments.bench_torch")
    import torch

    seen, steps_in_autocast = set(), []
    build = bench_torch.build

    def build_with_hooks(model_name):
        model = build(model_name)
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.register_forward_hook(lambda mod, inputs, out: seen.add(out.dtype))
        return model
    monkeypatch.setattr(bench_torch, "build", build_with_hooks)
    for optimizer in (torch.optim.Adam, torch.optim.RMSprop):
        def step(self, *args, _step=optimizer.step, **kwargs):
            steps_in_autocast.append(torch.is_autocast_enabled("cpu"))
            return _step(self, *args, **kwargs)
        monkeypatch.setattr(optimizer, "step", step)
    for dtype, expected in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        seen.clear()
        steps_in_autocast.clear()
        repeat, _ = bench_torch.prepare_train_steps(name, 2, 1, threads=1, compute_dtype=dtype)
        repeat()
        assert seen == {expected}, (dtype, seen)
        assert steps_in_autocast and not any(steps_in_autocast), (dtype, steps_in_autocast)


def test_model_flops_count_the_jaxpr_and_agree_with_xla_on_cpu():
    """hardware.model_flops: an MLP step holds at least its matmuls' multiply-adds (forward,
    weight gradients, and the input gradients of layers 2-3) plus Adam's per-param work, and
    the benchmark's per-step count agrees with XLA's own cost analysis of the CPU program (an
    independent count) within 10%, for a dense and a conv model, per step of a 2-step dispatch."""
    from gdl_jax import hardware

    relu_layer = lambda x: jnp.maximum(x @ jnp.ones((64, 32)), 0.0)
    # the elementwise max counts too: the whole step's work, not only its matmuls and convolutions
    assert hardware.model_flops(relu_layer, jnp.ones((8, 64))) == 2 * 8 * 64 * 32 + 8 * 32
    rows = {name: benchmark.run_benchmark([name], [8], steps_per_dispatch=2, warmup=0, iters=1)[0]
            for name in ("mlp", "small_conv")}
    for row in rows.values():
        assert row["model_gflop_per_step"] == pytest.approx(row["gflop_per_step"], rel=0.1), row
    sizes = (3072, 200, 150, 10)
    matmuls = 2 * 8 * sum(i * o for i, o in zip(sizes, sizes[1:]))        # forward, and again for dW
    input_grads = 2 * 8 * sum(i * o for i, o in zip(sizes[1:], sizes[2:]))
    least = 2 * matmuls + input_grads
    assert least < rows["mlp"]["model_gflop_per_step"] * 1e9 < least + 30 * 646_260   # + Adam's elementwise work


@pytest.mark.slow
def test_model_flops_are_the_whole_steps_on_every_device_count_and_backend():
    """On 2 forced host devices the model's FLOPs per step stay the global step's (within 5% of
    one device's) under both backends, where XLA's count is one device's program, about half;
    'pmap''s per-device code alone would count half."""
    script = ("from gdl_jax import runtime; runtime.configure(); import json;"
              "from experiments import benchmark;"
              "rows = benchmark.run_benchmark(['cnn'], [8], steps_per_dispatch=1, warmup=0, iters=1,"
              " devices=[1, 2], backends=('sharded', 'pmap'));"
              "print('RESULTS' + json.dumps([(r['devices'], r['model_gflop_per_step'], r['gflop_per_step'])"
              " for r in rows]))")
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.split("RESULTS", 1)[1])
    one = rows[0][1]
    for devices, model, xla in rows:
        assert model == pytest.approx(one, rel=0.05), rows
        assert xla == pytest.approx(one / devices, rel=0.1), rows
