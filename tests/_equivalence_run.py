"""Run by tests/test_parallel.py in a process with 4 forced host devices: for each trainer family,
3 train steps on one device and on 4 devices under both backends ('sharded', 'pmap') from the
same state on the same global batches, with SGD (Adam would hide a gradient off by a constant
factor). Prints one JSON line: per family and backend, the largest difference from the 1-device
run in params (relative to the largest param) and in metrics, and the FLOPs of one device's
compiled step relative to the 1-device step's (XLA's count); and per-device draw checks."""

import functools
import json
import sys

from gdl_jax import runtime

runtime.configure()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from gdl_jax import models, parallel  # noqa: E402
from gdl_jax.errors import ConfigError  # noqa: E402
from gdl_jax.train import adversarial, steps  # noqa: E402
from gdl_jax.train.state import TrainState  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 3


def _single(name: str, axis_name, **kwargs):
    """A one-network family: (state, step_fn, image shape)."""
    model = models.build(name, axis_name, **kwargs)
    shape = (8, 8, 1)
    state = TrainState.create(model, optax.sgd(0.1), jax.random.PRNGKey(0), np.zeros((1, *shape), np.float32))
    return state, shape


def family(name: str, axis_name):
    """(state, step_fn, per-step real batch multiple, image shape) with every random draw but
    dropout in play (dropout 0: its masks are per device by design)."""
    ae = {"encoder": {"filters": (4, 4), "kernels": (3, 3), "strides": (2, 1), "z_dim": 3, "use_batch_norm": True},
          "decoder": {"shape_before_flattening": (4, 4, 4), "filters": (4, 1), "kernels": (3, 3), "strides": (2, 1),
                      "use_batch_norm": True}}
    if name == "classifier":
        state, shape = _single("cnn", axis_name, features=(4, 4), strides=(1, 2), dense=8, dropout=0.0)
        return state, steps.classifier_train_step, 1, shape
    if name in ("autoencoder", "vae"):
        state, shape = _single(name, axis_name, **ae)
        step = (steps.autoencoder_train_step if name == "autoencoder"
                else functools.partial(steps.vae_train_step, r_loss_factor=100.0))
        return state, step, 1, shape
    shape = (8, 8, 1)
    g = models.build("generator", axis_name, initial_shape=(4, 4, 4), upsample=(2, 1), filters=(4, 1),
                     kernels=(3, 3), strides=(1, 1), batch_norm_momentum=0.9)
    d = models.build("discriminator", axis_name, filters=(4, 4), kernels=(3, 3), strides=(2, 1), dropout=0.0,
                     batch_norm_momentum=0.9 if name == "gan" else None, activation="leaky_relu")
    tx = optax.sgd(0.05)
    state = adversarial.GANState.create(g, d, tx, tx, jax.random.PRNGKey(0), 5, shape)
    if name == "gan":
        return state, adversarial.gan_train_step, 1, shape
    step = functools.partial(adversarial.wgan_train_step, n_critic=2, clip_value=0.01 if name == "wgan" else None,
                             gp_weight=10.0 if name == "wgan_gp" else 0.0)
    return state, step, 2, shape


def run(name: str, backend: str, devices: int) -> tuple:
    mesh = parallel.make_mesh(devices)
    state, step_fn, per_step, shape = family(name, parallel.axis_name(backend))
    state = jax.device_put(state, parallel.replicated(mesh))
    step = jax.jit(parallel.data_parallel(step_fn, backend, mesh))
    rng = np.random.default_rng(0)
    metrics, flops = [], None
    for _ in range(STEPS):
        images = rng.uniform(-1, 1, (GLOBAL_BATCH * per_step, *shape)).astype(np.float32)
        labels = rng.integers(0, 10, GLOBAL_BATCH * per_step).astype(np.int32)
        batch = jax.device_put((images, labels), parallel.batch_sharded(mesh))
        if flops is None:
            step = step.lower(state, batch).compile()
            flops = step.cost_analysis()["flops"]
        state, m = step(state, batch)
        metrics.append(m)
    return jax.device_get(state), jax.device_get(metrics), flops


def per_device_draws() -> dict:
    """Under 'pmap' on 4 devices: are the dropout keys distinct per device, and is global_draw
    the global batch's draw?"""
    mesh = parallel.make_mesh(4)
    key = jax.random.PRNGKey(3)

    def per_device(state, batch, axis_name):
        k = jax.random.key_data(parallel.device_key(key, axis_name))[None]
        z = parallel.global_draw(jax.random.normal, key, (batch[0].shape[0], 2), axis_name)
        return state, {"keys": jax.lax.all_gather(k, axis_name, tiled=True),
                       "z": jax.lax.all_gather(z, axis_name, tiled=True)}

    _, out = jax.jit(parallel.data_parallel(per_device, "pmap", mesh))(0, (np.zeros((8, 1)), np.zeros(8)))
    keys = np.asarray(out["keys"])
    return {"distinct_keys": len({tuple(k) for k in keys}), "global_draw_equal": bool(np.array_equal(
        np.asarray(out["z"]), np.asarray(jax.random.normal(key, (8, 2)))))}


def main(names):
    out = {"draws": per_device_draws()}
    try:
        parallel.check_batch_size(6, parallel.make_mesh(4))
    except ConfigError as e:
        out["batch_error"] = str(e)
    for name in names:
        ref_state, ref_metrics, ref_flops = run(name, "sharded", 1)
        ref_leaves = jax.tree.leaves(ref_state)
        scale = max(float(np.abs(x).max()) for x in ref_leaves if np.issubdtype(np.asarray(x).dtype, np.floating))
        for backend in parallel.BACKENDS:
            state, metrics, flops = run(name, backend, 4)
            params = max(float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
                         for a, b in zip(jax.tree.leaves(state), ref_leaves)) / scale
            metric = max(float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
                         for a, b in zip(jax.tree.leaves(metrics), jax.tree.leaves(ref_metrics)))
            out[f"{name}/{backend}"] = {"params": params, "metrics": metric, "flops": flops / ref_flops}
    print("RESULTS", json.dumps(out))


if __name__ == "__main__":
    assert jax.device_count() == 4, jax.devices()
    main(sys.argv[1:])
