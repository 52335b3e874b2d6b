"""Seeded random weights for the FID InceptionV3, and (run as a script) the reference features of
pytorch-fid's own network for them, saved as tests/data/inception_fid_reference.npz.

The real FID weights cannot be downloaded here, so the port is checked on random weights: the
same state dict goes through pytorch-fid's `InceptionV3` (its code, its resize and its strict
`load_state_dict`) and through gdl_jax.eval.inception. Regenerating the reference needs torch,
torchvision and pytorch-fid; the committed file was made with `pip install torch==2.14.1
torchvision==0.29.1 pytorch-fid==0.3.0` (this torchvision needs that torch, not the bench extra's):

    python tests/_inception_reference.py
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

REFERENCE = pathlib.Path(__file__).parent / "data" / "inception_fid_reference.npz"
SEED = 0


def random_fid_state_dict(seed: int = SEED) -> dict[str, np.ndarray]:
    """A state dict with every key and shape of pytorch-fid's FID network, drawn from `seed`:
    He-normal convs and BatchNorm statistics away from the identity, so that a wrong layout,
    epsilon or pooling changes the features."""
    from gdl_jax.models.inception import INPUT_SIZE, FIDInceptionV3

    shapes = jax.eval_shape(lambda: FIDInceptionV3().init(jax.random.key(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3))))
    rng = np.random.default_rng(seed)
    state = {}
    for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(shapes)[0], key=lambda p: jax.tree_util.keystr(p[0])):
        names = [p.key for p in path]
        prefix = ".".join(names[1:-1])
        if names[-1] == "kernel":
            h, w, i, o = leaf.shape
            state[f"{prefix}.weight"] = rng.normal(0, np.sqrt(2 / (h * w * i)), (o, i, h, w)).astype(np.float32)
        elif names[-1] == "scale":
            state[f"{prefix}.weight"] = rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
        elif names[-1] == "bias":
            state[f"{prefix}.bias"] = rng.normal(0, 0.1, leaf.shape).astype(np.float32)
        elif names[-1] == "mean":
            state[f"{prefix}.running_mean"] = rng.normal(0, 0.1, leaf.shape).astype(np.float32)
        elif names[-1] == "var":
            state[f"{prefix}.running_var"] = rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    state["fc.weight"] = rng.normal(0, 0.01, (1008, 2048)).astype(np.float32)
    state["fc.bias"] = np.zeros(1008, np.float32)
    return state


def reference_images(seed: int = SEED) -> np.ndarray:
    """Two 32x32 RGB images in [0, 1] with smooth structure (so the resize matters) and noise."""
    rng = np.random.default_rng(seed + 1)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    smooth = np.stack([np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in range(3)], -1) * 0.4 + 0.5
    return np.clip(np.stack([smooth, smooth[::-1]]) + rng.normal(0, 0.1, (2, 32, 32, 3)), 0, 1).astype(np.float32)


def main() -> None:
    import torch
    from pytorch_fid import inception as fid

    state = random_fid_state_dict()
    fid.load_state_dict_from_url = lambda *a, **k: {k2: torch.from_numpy(v) for k2, v in state.items()}
    net = fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    images = reference_images()
    with torch.no_grad():
        features = net(torch.from_numpy(images).permute(0, 3, 1, 2))[0].reshape(len(images), -1).numpy()
    params = sum(p.numel() for n, p in net.named_parameters())
    REFERENCE.parent.mkdir(exist_ok=True)
    np.savez(REFERENCE, images=images, features=features, torch_params=params)
    print(f"{REFERENCE}: features {features.shape}, |f| mean {np.abs(features).mean():.4g}, {params:,} params")


if __name__ == "__main__":
    main()
