"""Training-step speed, JAX (the real training path) vs eager PyTorch: the chapter 2
classifiers on CIFAR-10 shapes, the chapter 3 MNIST autoencoder and VAE, the faces VAE
(with --feeder_data_dir, beside the images/s the streamed CelebA feeder delivers on its own), and
the chapter 4 GAN's full update (discriminator on real and fake, then generator) and the
WGAN-GP's (5 critic updates with the gradient penalty, then the generator; img/s counts the
generator's batch).

python -m experiments.benchmark --models=mlp,cnn --batch_sizes=32,256
python -m experiments.benchmark --models=autoencoder,vae --batch_sizes=32
python -m experiments.benchmark --models=vae_faces --batch_sizes=32 --feeder_data_dir=/path/to/data
python -m experiments.benchmark --models=gan,wgan_gp --batch_sizes=64
python -m experiments.benchmark --models=vae_faces,wgan_gp --batch_sizes=64,256 --compute_dtype=bfloat16
XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m experiments.benchmark --models=cnn \
    --batch_sizes=128 --devices=1,2,4 --parallel=sharded,pmap --torch=false

Per model and batch size, in one process, timed in turn (JAX, torch, JAX, torch, ...) so that all
see the same load on a shared machine: the JAX dispatch that training runs (`make_dispatch(<train
step>, ...)`: k unrolled steps that gather their own batches from uint8 data on device), once per
device count (--devices: a mesh over the first n devices; the batch is the global one) and data-
parallel backend (--parallel, gdl_jax.parallel), and the same model and step in eager PyTorch
(experiments/bench_torch.py): Adam, or the GAN's two RMSprops. --compute_dtype=bfloat16 runs both
sides in mixed precision (JAX: the trainers' `compute_dtype`; torch: `torch.autocast`) and measures
the matmul roofline in bfloat16.
Epoch time is full batches per epoch x the median step. Prints a markdown table (ratio > 1: JAX is faster) and writes
benchmark.json and benchmark.md to --output_dir. Compare numbers only within one run.
"""

from gdl_jax import runtime

runtime.configure(__name__)  # XLA flags (and a restart for huge pages) before jax starts

import dataclasses  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from absl import app, flags  # noqa: E402
from flax import linen as nn  # noqa: E402

from gdl_jax import data as gdata  # noqa: E402
from gdl_jax import hardware, models, parallel  # noqa: E402
from gdl_jax.errors import ConfigError, GdlError  # noqa: E402
from gdl_jax.models import conv  # noqa: E402
from gdl_jax.models.summary import summarize  # noqa: E402
from gdl_jax.tasks import autoencoder as autoencoder_task  # noqa: E402
from gdl_jax.tasks import gan as gan_task  # noqa: E402
from gdl_jax.train import adversarial, autotune, runner, steps  # noqa: E402
from gdl_jax.train.loop import make_dispatch  # noqa: E402
from gdl_jax.train.state import TrainState, check_compute_dtype  # noqa: E402

NUM_CLASSES = 10
LEARNING_RATE = 5e-4


InitFn = Callable[[dict, jax.Array, str | None, str], tuple[Any, int]]


@dataclasses.dataclass(frozen=True)
class Workload:
    """What one benchmark row trains: its input, its train step, its epoch size, and
    init(model_kwargs, key, axis_name, compute_dtype) -> (step-0 train state, parameter count)."""
    image_shape: tuple[int, int, int]
    epoch_size: int
    step_fn: Callable
    init: InitFn
    real_batches_per_step: int = 1   # a WGAN step takes one real batch per critic update


def _adam(image_shape: tuple[int, int, int], build: Callable[[dict, str | None], nn.Module]) -> InitFn:
    """init for a one-network model trained with Adam(LEARNING_RATE)."""
    def init(kw: dict, key: jax.Array, axis_name: str | None = None,
             compute_dtype: str = "float32") -> tuple[TrainState, int]:
        model = build(kw, axis_name)
        sample = jnp.zeros((1, *image_shape), jnp.float32)
        return (TrainState.create(model, optax.adam(LEARNING_RATE), key, sample, compute_dtype),
                summarize(model, (1, *image_shape)).total)
    return init


def _autoencoder(task: str, faces: bool = False) -> Callable[[dict, str | None], nn.Module]:
    """The book's MNIST AE / VAE or faces VAE; model_kwargs go to both encoder and decoder (e.g. subpixel)."""
    from experiments.configs import ae_mnist, vae_faces

    model = vae_faces.get_config().model if faces else ae_mnist.get_config(task).model
    return lambda kw, axis: models.build(task, axis, encoder={**model.encoder, **kw}, decoder={**model.decoder, **kw})


def _config(module: str) -> ml_collections.ConfigDict:
    """experiments/configs/<module>.py's config: the steps' settings come from the trainers' own."""
    return importlib.import_module(f"experiments.configs.{module}").get_config()


def _adversarial_init(config_module: str) -> InitFn:
    """The book's GAN or WGAN-GP as its config builds it, optimizers included; model_kwargs go to
    both networks."""
    def init(kw: dict, key: jax.Array, axis_name: str | None = None,
             compute_dtype: str = "float32") -> tuple[adversarial.GANState, int]:
        c = _config(config_module)
        c.compute_dtype = compute_dtype
        c.model.generator.update(kw)
        adversarial.critic_config(c).update(kw)
        g, d = adversarial.networks(c)
        shape = runner.image_shape(c)
        return (adversarial.init_state(c, shape, key, axis_name),
                summarize(g, (1, c.z_dim)).total + summarize(d, (1, *shape)).total)
    return init


def _adversarial(config_module: str, epoch_size: int) -> Workload:
    """The GAN, WGAN or WGAN-GP step its config trains (one real batch per critic update)."""
    c = _config(config_module)
    return Workload(runner.image_shape(c), epoch_size, gan_task.train_step(c), _adversarial_init(config_module),
                    real_batches_per_step=gan_task.real_per_step(c) // c.batch_size)


WORKLOADS = {
    **{name: Workload((32, 32, 3), 50_000, steps.classifier_train_step,
                      _adam((32, 32, 3), lambda kw, axis, name=name: models.build(name, axis, **kw)))
       for name in ("mlp", "small_conv", "cnn")},
    "autoencoder": Workload((28, 28, 1), 60_000, steps.autoencoder_train_step,
                            _adam((28, 28, 1), _autoencoder("autoencoder"))),
    "vae": Workload((28, 28, 1), 60_000, autoencoder_task.train_step(_config("vae_mnist")),
                    _adam((28, 28, 1), _autoencoder("vae"))),
    # CelebA's official train partition
    "vae_faces": Workload((128, 128, 3), 162_770, autoencoder_task.train_step(_config("vae_faces")),
                          _adam((128, 128, 3), _autoencoder("vae", faces=True))),
    # the book's run: 2000 steps of batch 64 ("epoch s" is that run's time at batch 64)
    "gan": _adversarial("gan_quickdraw", 2000 * 64),
    # the book's run: 6000 steps of 5 critic updates (each clipping the weights), then the generator
    "wgan": _adversarial("wgan_cifar_horses", 6000 * 128),
    # one step: 5 critic updates with the penalty's second-order gradients, then the generator
    "wgan_gp": _adversarial("wgangp_celeba", 162_770),
}

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mlp", "cnn"], f"Models to time, any of {sorted(WORKLOADS)}.")
flags.DEFINE_list("batch_sizes", ["32", "256"], "Batch sizes to time.")
flags.DEFINE_integer("steps_per_dispatch", 4, "Train steps per jitted dispatch (k).")
flags.DEFINE_list("devices", None, "Device counts to time, each a mesh over the first n devices (default: "
                  "all). On a CPU, force host devices with XLA_FLAGS=--xla_force_host_platform_device_count=4.")
flags.DEFINE_list("parallel", ["sharded"], f"Data-parallel backends to time, any of {list(parallel.BACKENDS)}.")
flags.DEFINE_list("conv_forms", None, "How convolutions choose their form, any of "
                  f"{list(conv.MODES)}, one row each (default: $GDL_JAX_CONV, else 'auto'; see gdl_jax.models.conv).")
flags.DEFINE_integer("warmup", 3, "Untimed dispatches (torch: repeats of k steps) before timing.")
flags.DEFINE_integer("iters", 20, "Timed dispatches (torch: repeats of k steps); the median is reported.")
flags.DEFINE_float("row_seconds", 0.0, "> 0: stop timing a row once its rounds took this long (at least 3 "
                   "rounds, at most --iters), so one run can time every model from 2 ms to 10 s a step.")
flags.DEFINE_bool("torch", True, "Also time eager PyTorch (skipped with a note if not installed).")
flags.DEFINE_integer("torch_threads", os.cpu_count(), "torch.set_num_threads for the torch side.")
flags.DEFINE_bool("torch_compile", False, "Also time the torch step under torch.compile (the first repeat "
                  "compiles, timed as 'torch.compile s'; not the WGAN-GP, whose penalty needs double backward).")
flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"], "What both sides compute in: "
                  "bfloat16 is mixed precision (JAX: the trainers' compute_dtype; torch: torch.autocast), "
                  "with the matmul roofline measured in it.")
flags.DEFINE_string("model_kwargs", "{}", "JSON of model fields to override for every model timed, "
                    "e.g. '{\"subpixel_backward\": false}' with --models=cnn.")
flags.DEFINE_string("output_dir", "workdirs/benchmark", "Where benchmark.json and benchmark.md go.")
flags.DEFINE_string("feeder_data_dir", None, "With vae_faces: also time the streamed CelebA feeder alone "
                    "(decode, resize, put on device) on the faces under <dir>/celeba.")
flags.DEFINE_integer("feeder_workers", 2, "Decode threads (or processes) of the streamed feeder.")
flags.DEFINE_bool("feeder_processes", False, "Decode in spawned processes instead of threads.")

# (JSON key, table header, format); torch columns only when torch runs.
JAX_COLUMNS = [("model", "model", "{}"), ("batch_size", "batch", "{}"), ("devices", "devices", "{}"),
               ("parallel", "parallel", "{}"), ("conv_forms", "conv forms", "{}"), ("params", "params", "{:,}"),
               ("jax_compile_s", "JAX compile s", "{:.1f}"), ("jax_ms_per_step", "JAX ms/step", "{:.2f}"),
               ("jax_steps_per_s", "JAX steps/s", "{:.1f}"), ("jax_images_per_s", "JAX img/s", "{:,.0f}"),
               ("jax_epoch_s", "JAX epoch s", "{:.0f}"),
               ("model_gflop_per_step", "GFLOP/step", "{:.3f}"), ("jax_gflop_per_s", "JAX GFLOP/s", "{:.1f}"),
               ("jax_of_matmul_peak", "of matmul peak", "{:.0%}"), ("jax_peak_mib", "JAX MiB", "{:,.0f}"),
               ("feeder_images_per_s", "feeder img/s", "{:,.0f}")]
TORCH_COLUMNS = [("torch_ms_per_step", "torch ms/step", "{:.2f}"),
                 ("torch_steps_per_s", "torch steps/s", "{:.1f}"),
                 ("torch_images_per_s", "torch img/s", "{:,.0f}"),
                 ("torch_epoch_s", "torch epoch s", "{:.0f}"),
                 ("jax_over_torch", "JAX/torch", "{:.2f}")]
COMPILED_COLUMNS = [("torch_compile_s", "torch.compile s", "{:.0f}"),
                    ("torch_compiled_ms_per_step", "compiled torch ms/step", "{:.2f}"),
                    ("jax_over_torch_compiled", "JAX/compiled torch", "{:.2f}")]
NO_TORCH_COMPILE = {"wgan_gp": "its penalty differentiates a compiled graph twice (double backward)"}


def parse_ints(values: Sequence[str], flag: str) -> list[int]:
    """A list flag's strings (--batch_sizes, --devices) as ints; ConfigError on a non-integer
    (validate checks the sign)."""
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ConfigError(f"{flag} must be positive integers, got {','.join(values)!r}") from None


def validate(model_names: Sequence[str], batch_sizes: Sequence[int], steps_per_dispatch: int,
             warmup: int, iters: int, torch_threads: int, devices: Sequence[int] | None = None,
             backends: Sequence[str] = ("sharded",), conv_forms: Sequence[str] = ("auto",),
             compute_dtype: str = "float32") -> None:
    """Raises ConfigError naming the first bad setting."""
    check_compute_dtype(compute_dtype)
    if not model_names:
        raise ConfigError("models must name at least one model")
    for name in model_names:
        if name not in WORKLOADS:
            raise ConfigError(f"unknown model {name!r}; expected one of {sorted(WORKLOADS)}")
    if not batch_sizes or any(b <= 0 for b in batch_sizes):
        raise ConfigError(f"batch_sizes must be positive integers, got {list(batch_sizes)}")
    for key, value in [("steps_per_dispatch", steps_per_dispatch), ("iters", iters),
                       ("torch_threads", torch_threads)]:
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0, got {warmup}")
    available = jax.device_count()
    for n in devices or ():
        if not 0 < n <= available:
            raise ConfigError(f"devices must be between 1 and the {available} device(s) here, got {n} (on a CPU, "
                              "XLA_FLAGS=--xla_force_host_platform_device_count=N gives N host devices)")
    if not backends:
        raise ConfigError(f"parallel must name at least one of {list(parallel.BACKENDS)}")
    for backend in backends:
        parallel.check_backend(backend)
    for mode in conv_forms:
        conv.check_mode(mode)


def _flops(compiled) -> float | None:
    """Total FLOPs of one run of `compiled`, from XLA's cost analysis (None where unavailable)."""
    try:
        cost = compiled.cost_analysis()
    except NotImplementedError:
        return None
    if isinstance(cost, (list, tuple)):  # older jax: one dict per program
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def _peak_bytes(compiled) -> int | None:
    """Device memory one run of `compiled` holds at its peak, from XLA's buffer assignment:
    arguments + outputs + temporaries, less the outputs that reuse donated arguments (None
    where the backend does not say)."""
    try:
        m = compiled.memory_analysis()
    except NotImplementedError:
        return None
    if m is None:
        return None
    return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
            - m.alias_size_in_bytes)


def matmul_gflop_per_s(n: int | None = None, iters: int = 10, dtype: str = "float32") -> dict[str, float]:
    """The device's measured roofline in `dtype`: GFLOP/s of an n x n x n matmul by XLA on device
    0 ('xla'); for bfloat16 also accumulated in float32 ('xla_f32_acc': how hardware peaks are
    quoted; on a 2-core Zen 4 XLA ran it 2x as fast as the bfloat16 product, whose path has no
    bfloat16 kernels there); for float32 on a CPU backend by numpy's BLAS ('blas'; on that Zen 4
    1.1-2x XLA's). 'peak' is the fastest, the yardstick for the achieved FLOP/s of the training steps."""
    # n: 2048 on a CPU; 8192 on an accelerator, whose 2048^3 product is over in microseconds
    n = n or (2048 if jax.devices()[0].platform == "cpu" else 8192)
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
    rate = lambda f: 2 * n**3 / hardware.median_seconds(lambda: jax.block_until_ready(f(a)), iters) / 1e9
    rates = {"xla": rate(jax.jit(lambda a: a @ a))}
    if dtype != "float32":
        rates["xla_f32_acc"] = rate(jax.jit(lambda a: jnp.dot(a, a, preferred_element_type=jnp.float32)))
    if jax.devices()[0].platform == "cpu" and dtype == "float32":
        b = np.asarray(a)
        rates["blas"] = 2 * n**3 / hardware.median_seconds(lambda: b @ b, iters) / 1e9
    return {"peak": max(rates.values()), **rates}


def prepare_jax(model_name: str, batch_size: int, k: int, model_kwargs: dict | None = None,
                seed: int = 0, devices: int | None = None, backend: str = "sharded",
                compute_dtype: str = "float32") -> dict:
    """Compiles the training dispatch on a mesh over the first `devices` devices (default: all)
    under the data-parallel `backend` and the convolution form mode in force ('auto': the one
    gdl_jax.train.autotune picks, as training does; returned as `conv_forms`), the model
    computing in `compute_dtype`. Returns its params, compile seconds, FLOPs per step (XLA's
    count for one device's program, and the model's, `hardware.model_flops`), the lowered
    dispatch, and `repeat`: runs one dispatch (k steps) to completion."""
    mesh = parallel.make_mesh(devices)
    parallel.check_batch_size(batch_size, mesh)
    workload = WORKLOADS[model_name]
    rng = np.random.default_rng(seed)
    per_step = batch_size * workload.real_batches_per_step
    n = k * per_step  # one epoch = one dispatch, so first_index 0 is always in range
    host = gdata.ArrayData(rng.integers(0, 256, (n, *workload.image_shape), dtype=np.uint8),
                           rng.integers(0, NUM_CLASSES, n).astype(np.int32),
                           tuple(str(c) for c in range(NUM_CLASSES)))
    feeder = gdata.DeviceFeeder(gdata.to_device(host, mesh), jax.random.PRNGKey(seed), per_step, mesh)
    args = feeder.get(0, k)

    state, params = workload.init(model_kwargs or {}, jax.random.PRNGKey(seed), parallel.axis_name(backend),
                                  compute_dtype)
    state = jax.device_put(state, parallel.replicated(mesh))
    build = lambda: make_dispatch(parallel.data_parallel(workload.step_fn, backend, mesh), feeder.batch, k)
    forms = conv.forms_mode()
    if forms == "auto":   # as the train loop does: the fastest mode for this step, timed once per machine
        forms = autotune.conv_forms(build, state, args)

    t0 = time.perf_counter()
    with conv.forms(forms):
        lowered = build().lower(state, *args)
        compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    # the model's FLOPs, counted on the step as one program over the global batch: under 'pmap'
    # the dispatch is per-device code, whose jaxpr holds one device's share
    count_state = (state if parallel.axis_name(backend) is None else jax.eval_shape(
        lambda key: workload.init(model_kwargs or {}, key, None, compute_dtype)[0], jax.random.PRNGKey(seed)))
    whole = make_dispatch(parallel.data_parallel(workload.step_fn, "sharded", mesh), feeder.batch, k)
    with conv.forms(forms):
        model_flops = hardware.model_flops(whole, count_state, *args)

    def repeat() -> None:
        nonlocal state  # donated by each call: always rebind
        state, _ = jax.block_until_ready(compiled(state, *args))

    flops = _flops(compiled)
    return {"params": params, "compile_s": compile_s, "peak_bytes": _peak_bytes(compiled), "conv_forms": forms,
            "lowered": lowered,
            "flops_per_step": flops / k if flops is not None else None, "model_flops_per_step": model_flops / k,
            "repeat": repeat}


def feeder_images_per_s(data_dir: str, batch_size: int, k: int, workers: int, dispatches: int = 20,
                        prefetch: int = 8, processes: bool = False) -> float:
    """Images per second that the streamed CelebA feeder alone delivers to the device (128x128,
    the faces VAE's input): `dispatches` calls of get(step, k), after warm-up dispatches that
    start every decode worker and fill the prefetch queue."""
    mesh = parallel.make_mesh()
    feeder = gdata.StreamFeeder(gdata.CelebA(data_dir, "all", size=128), jax.random.PRNGKey(0),
                                batch_size, mesh, workers=workers, prefetch=prefetch, processes=processes)
    try:
        warmup = max(1, -(-2 * max(prefetch, workers) // k))
        for d in range(warmup):
            jax.block_until_ready(feeder.get(d * k, k))
        t0 = time.perf_counter()
        for d in range(warmup, warmup + dispatches):
            jax.block_until_ready(feeder.get(d * k, k))
        return dispatches * k * batch_size / (time.perf_counter() - t0)
    finally:
        feeder.close()


def time_interleaved(repeats: Sequence[Callable[[], None]], warmup: int, iters: int,
                     budget_s: float = 0.0, min_iters: int = 3, settle: int = 1,
                     settle_below_s: float = 1.0) -> tuple[list[float], int]:
    """(median seconds per call of each function, rounds timed), timed in turn (a, b, a, b, ...)
    so that all of them see the same load on a shared machine.

    In each round every function first runs `settle` untimed calls: they absorb what the
    previous function leaves behind. torch's OpenMP workers spin for a while after each call
    (libgomp's default wait policy) and take a core from the next step: small_conv's JAX step at
    batch 128 took 5.35 ms timed right after torch's, 4.50 ms with the untimed call first
    (medians of 12 alternating repeats, 2-core Zen 4). A function whose last timed call took
    settle_below_s or more is not settled again: milliseconds are lost in its time, and its
    rounds are long. With budget_s > 0, rounds stop once they have taken budget_s (never fewer
    than min_iters, never more than iters): one flag set then times 2 ms and 10 s steps alike."""
    for _ in range(warmup):
        for fn in repeats:
            fn()
    times: list[list[float]] = [[] for _ in repeats]
    t_start = time.perf_counter()
    for i in range(iters):
        if budget_s > 0 and i >= min_iters and time.perf_counter() - t_start >= budget_s:
            break
        for fn, ts in zip(repeats, times):
            for _ in range(settle if not ts or ts[-1] < settle_below_s else 0):
                fn()
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times], len(times[0])


def load_torch_bench() -> ModuleType | None:
    """experiments.bench_torch, or None (with a note on stdout) when torch is not importable, or
    when JAX runs on an accelerator that this torch cannot use (a CPU-only build): its columns
    would time a CPU against the accelerator."""
    try:
        from experiments import bench_torch
    except ImportError as e:
        print(f"note: PyTorch is not importable ({e}); skipping the torch columns "
              "(install it with: pip install -e '.[bench]')")
        return None
    if jax.default_backend() != "cpu" and bench_torch.device() == "cpu":
        print(f"note: JAX runs on {jax.default_backend()} but this torch ({bench_torch.torch.__version__}) "
              "sees no accelerator; skipping the torch columns (a torch that sees it times the twin there)")
        return None
    return bench_torch


def environment(torch_bench: ModuleType | None, torch_threads: int, compute_dtype: str = "float32") -> dict:
    """What the numbers depend on: versions, backend, device, the dtype computed in and the matmul
    roofline in it, XLA flags, malloc tunables, threads."""
    device = jax.devices()[0]
    env = {"jax": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib"),
           "flax": importlib.metadata.version("flax"), "optax": importlib.metadata.version("optax"),
           "backend": jax.default_backend(), "device_kind": device.device_kind, "device_model": hardware.device_model(),
           "compute_dtype": compute_dtype,
           **{f"matmul_{k}_gflop_per_s": v for k, v in matmul_gflop_per_s(dtype=compute_dtype).items()},
           "num_devices": jax.device_count(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
           "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""), "thp_mode": runtime.thp_mode(),
           "python": platform.python_version(), "machine": platform.machine(),
           "cpu_count": os.cpu_count(), "torch": None, "torch_threads": None}
    if torch_bench is not None:
        env.update(torch=torch_bench.torch.__version__, torch_threads=torch_threads, torch_device=torch_bench.device())
    return env


def run_benchmark(model_names: Sequence[str], batch_sizes: Sequence[int], steps_per_dispatch: int = 4,
                  warmup: int = 3, iters: int = 20, torch_bench: ModuleType | None = None,
                  torch_threads: int = 1, model_kwargs: dict | None = None,
                  feeder_data_dir: str | None = None, feeder_workers: int = 2,
                  feeder_processes: bool = False, devices: Sequence[int] | None = None,
                  backends: Sequence[str] = ("sharded",), matmul_peak: float | None = None,
                  conv_forms: Sequence[str] | None = None, torch_compile: bool = False,
                  row_seconds: float = 0.0, compute_dtype: str = "float32") -> list[dict]:
    """One row per (model, batch size, device count, backend): JAX timings, and torch's and the
    ratio when torch_bench (one torch run per model and batch size); conv_forms: the
    convolution form modes to compile each variant with (default: the one in force); with
    torch_compile, the torch step under torch.compile too (its first call, the compilation,
    timed apart); row_seconds: `time_interleaved`'s budget per row (each row records its
    `timed_rounds`); compute_dtype: what both sides compute in ('bfloat16': mixed precision).

    All JAX variants and torch alternate (`time_interleaved`). Throughputs are per second of
    median step time. FLOPs per step are the model's (`hardware.model_flops` on the dispatch's
    jaxpr, the whole program: 'model_gflop_per_step', 'jax_gflop_per_s') and XLA's cost analysis
    of one device's compiled program ('gflop_per_step'), both divided by its k steps. With
    matmul_peak (GFLOP/s, `matmul_gflop_per_s()["peak"]`: one device's), each row also gives the
    model's FLOP/s over all its devices as a fraction of it (past 1 is possible on several devices).
    """
    devices = list(devices or [jax.device_count()])
    conv_forms = list(conv_forms or [conv.forms_mode()])
    validate(model_names, batch_sizes, steps_per_dispatch, warmup, iters, torch_threads, devices, backends, conv_forms,
             compute_dtype)
    rows = []
    for name in model_names:
        for batch_size in batch_sizes:
            variants = [(n, b, f) for n in devices for b in backends for f in conv_forms]
            prepared = []
            for n, b, f in variants:
                with conv.forms(f):   # the forms are chosen while the dispatch is traced
                    prepared.append(prepare_jax(name, batch_size, steps_per_dispatch, model_kwargs,
                                                devices=n, backend=b, compute_dtype=compute_dtype))
            repeats = [j["repeat"] for j in prepared]
            if torch_bench is not None:
                torch_repeat, torch_params = torch_bench.prepare_train_steps(
                    name, batch_size, steps_per_dispatch, torch_threads, compute_dtype=compute_dtype)
                if torch_params != prepared[0]["params"]:
                    raise AssertionError(f"{name}: torch model has {torch_params:,} parameters, "
                                         f"JAX model {prepared[0]['params']:,}")
                repeats.append(torch_repeat)
            compile_s = None
            if torch_bench is not None and torch_compile and name not in NO_TORCH_COMPILE:
                compiled_repeat, _ = torch_bench.prepare_train_steps(
                    name, batch_size, steps_per_dispatch, torch_threads, compiled=True, compute_dtype=compute_dtype)
                t0 = time.perf_counter()
                compiled_repeat()
                compile_s = time.perf_counter() - t0
                repeats.append(compiled_repeat)
            medians, rounds = time_interleaved(repeats, warmup, iters, row_seconds)
            per_step = [t / steps_per_dispatch for t in medians]
            compiled_s = per_step.pop() if compile_s is not None else None
            for (n, backend, forms), j, s_per_step in zip(variants, prepared, per_step):
                row = _row(name, batch_size, n, backend, j, s_per_step, steps_per_dispatch, model_kwargs,
                           per_step[-1] if torch_bench is not None else None, matmul_peak)
                row["conv_forms"] = forms if forms == j["conv_forms"] else f"{forms}: {j['conv_forms']}"
                row["timed_rounds"] = rounds
                row["compute_dtype"] = compute_dtype
                if compiled_s is not None:
                    row.update(torch_compile_s=compile_s, torch_compiled_ms_per_step=1e3 * compiled_s,
                               jax_over_torch_compiled=compiled_s / s_per_step)
                rows.append(row)
            if name == "vae_faces" and feeder_data_dir:
                rows[-1]["feeder_images_per_s"] = feeder_images_per_s(
                    feeder_data_dir, batch_size, steps_per_dispatch, feeder_workers, processes=feeder_processes)
    return rows


def _row(name: str, batch_size: int, devices: int, backend: str, j: dict, s_per_step: float,
         steps_per_dispatch: int, model_kwargs: dict | None, torch_s: float | None,
         matmul_peak: float | None = None) -> dict:
    """One table row from a JAX variant's timing (and torch's median seconds per step)."""
    flops, model_flops = j["flops_per_step"], j["model_flops_per_step"]
    row = {"model": name, "model_kwargs": model_kwargs or {}, "batch_size": batch_size, "devices": devices,
           "parallel": backend, "params": j["params"], "steps_per_dispatch": steps_per_dispatch,
           "jax_compile_s": j["compile_s"], "jax_ms_per_step": 1e3 * s_per_step, "jax_steps_per_s": 1 / s_per_step,
           "jax_images_per_s": batch_size / s_per_step,
           "jax_epoch_s": WORKLOADS[name].epoch_size // batch_size * s_per_step,
           "gflop_per_step": flops / 1e9 if flops else None, "model_gflop_per_step": model_flops / 1e9,
           "jax_gflop_per_s": model_flops / 1e9 / s_per_step,
           "jax_of_matmul_peak": model_flops / 1e9 / s_per_step / matmul_peak if matmul_peak else None,
           "jax_peak_mib": j["peak_bytes"] / 2**20 if j["peak_bytes"] is not None else None}
    if torch_s is not None:
        row.update(torch_ms_per_step=1e3 * torch_s, torch_steps_per_s=1 / torch_s,
                   torch_images_per_s=batch_size / torch_s,
                   torch_epoch_s=WORKLOADS[name].epoch_size // batch_size * torch_s,
                   jax_over_torch=torch_s / s_per_step)
    return row


def markdown(rows: Sequence[dict], env: dict) -> str:
    """The environment in one line, then a markdown table of the rows."""
    columns = [c for c in JAX_COLUMNS if c[0] != "feeder_images_per_s" or any(c[0] in r for r in rows)]
    columns += TORCH_COLUMNS if env["torch"] else []
    columns += COMPILED_COLUMNS if any("torch_compile_s" in r for r in rows) else []
    torch_part = (f", torch {env['torch']} on {env.get('torch_device', 'cpu')} ({env['torch_threads']} threads)"
                  if env["torch"]
                  else ", torch not run")
    lines = [f"jax {env['jax']} on {env['backend']} ({env['device_model']}; "
             f"{env.get('compute_dtype', 'float32')} matmul peak "
             f"{env['matmul_peak_gflop_per_s']:.0f} GFLOP/s; {env['num_devices']} "
             f"device(s), {env['cpu_count']} CPUs){torch_part}; XLA_FLAGS={env['xla_flags'] or '(none)'}; "
             f"GLIBC_TUNABLES={env['glibc_tunables'] or '(none)'} (kernel THP: {env['thp_mode']}); "
             f"{rows[0]['steps_per_dispatch'] if rows else '-'} steps per JAX dispatch",
             "", "| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        cells = ["-" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(rows: Sequence[dict], env: dict, output_dir: str | os.PathLike) -> str:
    """Writes benchmark.json ({"environment", "rows"}) and benchmark.md; returns the markdown."""
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, env)
    (out / "benchmark.json").write_text(json.dumps({"environment": env, "rows": list(rows)}, indent=2) + "\n")
    (out / "benchmark.md").write_text(text)
    return text


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments: {argv[1:]}")
    try:
        batch_sizes = parse_ints(FLAGS.batch_sizes, "batch_sizes")
        try:
            model_kwargs = json.loads(FLAGS.model_kwargs)
        except ValueError as e:
            raise ConfigError(f"--model_kwargs is not JSON: {e}") from None
        if not isinstance(model_kwargs, dict):
            raise ConfigError(f"--model_kwargs must be a JSON object of model fields, got {FLAGS.model_kwargs}")
        devices = parse_ints(FLAGS.devices, "devices") if FLAGS.devices else None
        validate(FLAGS.models, batch_sizes, FLAGS.steps_per_dispatch, FLAGS.warmup, FLAGS.iters,
                 FLAGS.torch_threads, devices, FLAGS.parallel, FLAGS.conv_forms or ("auto",), FLAGS.compute_dtype)
        torch_bench = load_torch_bench() if FLAGS.torch else None
        env = environment(torch_bench, FLAGS.torch_threads, FLAGS.compute_dtype)
        rows = run_benchmark(FLAGS.models, batch_sizes, FLAGS.steps_per_dispatch, FLAGS.warmup,
                             FLAGS.iters, torch_bench, FLAGS.torch_threads, model_kwargs,
                             FLAGS.feeder_data_dir, FLAGS.feeder_workers, FLAGS.feeder_processes,
                             devices, FLAGS.parallel, env["matmul_peak_gflop_per_s"], FLAGS.conv_forms,
                             FLAGS.torch_compile, FLAGS.row_seconds, FLAGS.compute_dtype)
    except GdlError as e:
        sys.exit(f"error: {e}")
    print(write_outputs(rows, env, FLAGS.output_dir), end="")


if __name__ == "__main__":
    app.run(main)
