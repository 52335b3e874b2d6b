"""InceptionV3 features for the Frechet Inception Distance, from weights the user supplies.

The weights are pytorch-fid's FID network (`pt_inception-2015-12-05-6726825d.pth`, the port of
TensorFlow's FID graph), which these offline machines cannot download. Give its path as a `.pth`
(read with torch, the optional `bench` extra) or as a `.npz` of the same state dict (keys as in
the `.pth`; `np.savez(out, **{k: v.numpy() for k, v in state_dict.items()})` converts one
wherever torch is). The preprocessing is pytorch-fid's: bilinear resize to 299x299 (half-pixel
centres, no antialiasing, as torch's `interpolate(align_corners=False)`), then x * 2 - 1.
Greyscale images are repeated to three channels. With these weights the distances are comparable
with published FIDs computed by pytorch-fid on as many images (published ones use 50,000; these
are float images, not the 8-bit files pytorch-fid reads, a difference of at most half a grey
level).
"""

from __future__ import annotations

import functools
import os
import pathlib
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from gdl_jax.errors import ConfigError
from gdl_jax.eval.features import batched
from gdl_jax.models.inception import INPUT_SIZE, FIDInceptionV3

BATCH = 32  # images per compiled call (at 299x299, a bigger batch buys little and costs memory)

# state-dict entries the features do not use: the 1008-way classifier head (and, by their
# suffix, BatchNorm's num_batches_tracked counters)
_UNUSED = ("fc.weight", "fc.bias")


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a torch state dict saved as `.pth` / `.pt` (needs torch) or `.npz`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"InceptionV3 weights {path}: no such file (give pytorch-fid's "
                          "pt_inception-2015-12-05-6726825d.pth or an .npz of its state dict)")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ConfigError(f"InceptionV3 weights {path}: not a readable .npz ({e})") from None
    if path.suffix in (".pth", ".pt"):
        try:
            import torch
        except ImportError:
            raise ConfigError(f"InceptionV3 weights {path}: reading a .pth needs torch (pip install "
                              "torch==2.13.0), or convert it to .npz where torch is") from None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a bad file
            if isinstance(e, pickle.UnpicklingError):   # torch's message is a page long
                what = ("holds pickled objects, not a plain state dict (save model.state_dict())"
                        if "Unsupported global" in str(e) else
                        "torch cannot read it (not a torch file, or a corrupt one)")
                raise ConfigError(f"InceptionV3 weights {path}: {what}") from None
            raise ConfigError(f"InceptionV3 weights {path}: torch cannot read it ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
        if not isinstance(state, dict):
            raise ConfigError(f"InceptionV3 weights {path}: holds a {type(state).__name__}, not a state dict")
        return {k: v.numpy() for k, v in state.items() if hasattr(v, "numpy")}
    raise ConfigError(f"InceptionV3 weights {path}: expected a .pth, .pt or .npz file")


def load_variables(path: str | os.PathLike) -> dict:
    """FIDInceptionV3's variables from the weights file at `path` (read_state_dict)."""
    return variables_from_state_dict(read_state_dict(path), pathlib.Path(path).name)


def variables_from_state_dict(state: dict[str, np.ndarray], source: str = "state dict") -> dict:
    """Flax variables of FIDInceptionV3 from a torch state dict of the FID network: conv weights
    OIHW -> HWIO, BatchNorm weight/bias/running stats -> scale/bias/mean/var. Every entry the
    network needs must be there with its shape; unknown entries are an error (another network).
    `source` names the file in errors."""
    shapes = _variable_shapes()
    torch_name = {("params", "conv", "kernel"): "weight", ("params", "bn", "scale"): "weight",
                  ("params", "bn", "bias"): "bias", ("batch_stats", "bn", "mean"): "running_mean",
                  ("batch_stats", "bn", "var"): "running_var"}
    out, used = {}, set()
    for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
        names = [p.key for p in path]
        collection, modules, layer, leaf_name = names[0], names[1:-2], names[-2], names[-1]
        key = ".".join([*modules, layer, torch_name[(collection, layer, leaf_name)]])
        if key not in state:
            raise ConfigError(f"InceptionV3 weights {source}: no entry {key!r}; is this pytorch-fid's FID network?")
        value = np.asarray(state[key], np.float32)
        h, w, i, o = leaf.shape if layer == "conv" else (0, 0, 0, 0)
        want = (o, i, h, w) if layer == "conv" else leaf.shape
        if value.shape != want:
            raise ConfigError(f"InceptionV3 weights {source}: {key!r} has shape {value.shape}, the network "
                              f"needs {want}")
        if layer == "conv":
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        used.add(key)
        node = out.setdefault(collection, {})
        for name in names[1:-1]:
            node = node.setdefault(name, {})
        node[leaf_name] = value
    extra = sorted(k for k in state if k not in used and k not in _UNUSED and not k.endswith("num_batches_tracked"))
    if extra:
        raise ConfigError(f"InceptionV3 weights {source}: {len(extra)} entries the FID network does not have, e.g. "
                          f"{extra[0]!r}; is this pytorch-fid's FID network?")
    return out


@functools.cache
def _variable_shapes() -> dict:
    """FIDInceptionV3's variables as shapes (tracing the network once a process, not per load)."""
    return jax.eval_shape(lambda: FIDInceptionV3().init(jax.random.key(0),
                                                        jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3))))


@jax.jit
def _features(variables: dict, x: jax.Array) -> jax.Array:
    """The network's pool features of float NHWC images in [0, 1], resized to its input size;
    one jitted function for every extractor, so a second one reuses the first one's compilation."""
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3), "bilinear", antialias=False)
    return FIDInceptionV3().apply(variables, x * 2 - 1)


class InceptionFeatures:
    """features(images) -> (N, 2048): float images in [0, 1], NHWC with 1 or 3 channels, any size."""

    def __init__(self, weights: str | os.PathLike):
        self.name = f"InceptionV3 FID ({pathlib.Path(weights).name})"
        self._variables = jax.device_put(load_variables(weights))   # an argument, not 87 MB of constants

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return batched(lambda x: _features(self._variables, x), images, (1, 3), self.name, BATCH)
