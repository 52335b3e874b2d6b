"""`gdl_jax.load(workdir)`: a trained autoencoder, VAE, GAN, WGAN or WGAN-GP, for notebooks and
scripts.

    import gdl_jax
    vae = gdl_jax.load("workdirs/vae_faces_offline")
    z = vae.encode(images)                       # uint8 or float in [0, 1], HWC or NHWC
    faces = vae.decode(z + 2 * vae.attribute_vector("Smiling"))
    new = vae.sample(30, seed=0)
    frames = vae.morph(images[0], images[1], steps=10)

    gan = gdl_jax.load("workdirs/wgangp_celeba")  # a generator: decode, sample, sample_latents
    faces = gan.decode(gan.sample_latents(16, seed=1))

Images come back as float32 in [0, 1], NHWC (HWC for a single input).
"""

from __future__ import annotations

import json
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from numpy.typing import ArrayLike

from gdl_jax import models
from gdl_jax.chunks import map_padded
from gdl_jax.errors import CheckpointError, ConfigError, DataError
from gdl_jax.train.workdir import CONFIG_FILE

LATENTS_FILE = "latents.npz"
TASKS = ("autoencoder", "vae")
GENERATOR_TASKS = ("gan", "wgan")
_MAX_CHUNK = 256


def _apply_in_chunks(fn, x: np.ndarray, axis: int = 0) -> np.ndarray:
    """fn over x in chunks padded to a power of two (at most 256), so that few shapes compile."""
    return map_padded(fn, x, min(_MAX_CHUNK, 1 << max(0, len(x) - 1).bit_length()), axis)


def _check_count(n) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise ConfigError(f"n must be a positive integer, got {n!r}")


def _check_latent(z, z_dim: int) -> tuple[np.ndarray, bool]:
    """z as a float32 (N, z_dim) batch, and whether one vector was given."""
    z = np.asarray(z, np.float32)
    single = z.ndim == 1
    if single:
        z = z[None]
    if z.ndim != 2 or z.shape[1] != z_dim or not len(z):
        raise DataError(f"z must be one latent vector of shape ({z_dim},) or a batch (N, {z_dim}); "
                        f"got shape {np.shape(z)}")
    if not np.isfinite(z).all():
        raise DataError("z must be finite")
    return z, single


class TrainedModel:
    """A trained autoencoder or VAE: encode, decode, sample, attribute vectors, morph."""

    encodes = True   # images -> latents (a GAN's generator has no encoder)

    def __init__(self, config: ml_collections.ConfigDict, model, variables: dict, image_shape: tuple[int, ...],
                 latents: dict[str, np.ndarray] | None = None):
        self.config, self.model, self.image_shape = config, model, tuple(image_shape)
        self.kind = config.task
        self.variational = self.kind == "vae"
        self.z_dim = int(config.model.encoder.z_dim)
        self.latents = latents or {}
        # the weights are arguments of the compiled functions, not constants folded into them
        self._variables = jax.device_put(jax.device_get(variables))

        @jax.jit
        def encode(v, x):
            out = model.apply(v, x, method=lambda m, x: m.encoder(x, train=False))
            return jnp.stack(out) if self.variational else out[None]  # (mu, log_var) or (z,)

        decode = jax.jit(lambda v, z: model.apply(v, z, method=lambda m, z: m.decoder(z, train=False)))
        self._encode = lambda x: encode(self._variables, x)
        self._decode = lambda z: decode(self._variables, z)

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """The attributes with a latent direction (CelebA's 40 for a faces model, else none)."""
        return tuple(str(n) for n in self.latents.get("attribute_names", ()))

    def _images(self, images) -> tuple[np.ndarray, bool]:
        x = np.asarray(images)
        single = x.ndim == len(self.image_shape)
        if single:
            x = x[None]
        if x.ndim != len(self.image_shape) + 1 or x.shape[1:] != self.image_shape or not len(x):
            raise DataError(f"images must be one image of shape {self.image_shape} or a batch "
                            f"(N, {', '.join(map(str, self.image_shape))}); got shape {np.shape(images)}")
        if x.dtype == np.uint8:
            return x.astype(np.float32) / 255.0, single
        if not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"images must be uint8 in [0, 255] or float in [0, 1]; got dtype {x.dtype}")
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DataError(f"float images must be finite and in [0, 1]; got values in [{x.min()}, {x.max()}]")
        return x.astype(np.float32), single

    def _encode_all(self, images: ArrayLike) -> tuple[np.ndarray, bool]:
        x, single = self._images(images)
        return _apply_in_chunks(self._encode, x, axis=1), single

    def encode(self, images: ArrayLike) -> np.ndarray:
        """Latent codes (z for the autoencoder, the posterior mean for the VAE): (N, z_dim) or (z_dim,)."""
        z, single = self._encode_all(images)
        return z[0, 0] if single else z[0]

    def posterior(self, images: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """The VAE's q(z|x) = N(mu, exp(log_var)) per image: (mu, log_var)."""
        if not self.variational:
            raise ConfigError("an autoencoder has no posterior distribution; use encode")
        out, single = self._encode_all(images)
        return (out[0, 0], out[1, 0]) if single else (out[0], out[1])

    def decode(self, z: ArrayLike) -> np.ndarray:
        """Images in [0, 1] for latent vectors: (N, *image_shape) or image_shape for one vector."""
        z, single = _check_latent(z, self.z_dim)
        x = _apply_in_chunks(self._decode, z)
        return x[0] if single else x

    def sample_latents(self, n: int, seed: int = 0) -> np.ndarray:
        """n latent vectors to decode into new images: the VAE's z ~ N(0, I); the autoencoder,
        whose code distribution is undefined, z uniform over the bounding box of its encoded
        test set (as the book does)."""
        from gdl_jax.eval.latent import sample_latents

        _check_count(n)
        if not self.variational and "z_min" not in self.latents:
            raise CheckpointError(f"no {LATENTS_FILE} with the test set's latent box in the workdir; "
                                  "re-run the analysis (experiments.analyze_autoencoder)")
        box = (np.zeros((1, self.z_dim)) if self.variational    # the VAE's draw needs only z_dim
               else np.stack([self.latents["z_min"], self.latents["z_max"]]))
        return sample_latents(np.random.default_rng(seed), box, self.variational, n).astype(np.float32)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n new images: `sample_latents` decoded."""
        return self.decode(self.sample_latents(n, seed))

    def attribute_vector(self, name: str) -> np.ndarray:
        """Mean z of faces with attribute `name` minus mean z of faces without it (book 3.6)."""
        names = self.attribute_names
        if not names:
            raise ConfigError(f"this {self.kind} on {self.config.data.name!r} has no attribute vectors "
                              "(they come with CelebA faces models)")
        if name not in names:
            raise DataError(f"unknown CelebA attribute {name!r}; valid: {', '.join(names)}")
        return np.asarray(self.latents["attribute_vectors"][names.index(name)])

    def morph(self, image_a: ArrayLike, image_b: ArrayLike, steps: int = 10) -> np.ndarray:
        """Decoded points z_a * (1 - alpha) + z_b * alpha for `steps` alphas from 0 to 1 (book 3.7)."""
        if not isinstance(steps, (int, np.integer)) or steps < 2:
            raise ConfigError(f"steps must be an integer >= 2, got {steps!r}")
        z = self.encode(np.stack([self._images(image_a)[0][0], self._images(image_b)[0][0]]))
        alpha = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        return self.decode(z[0] * (1 - alpha) + z[1] * alpha)


class TrainedGenerator:
    """A trained GAN, WGAN or WGAN-GP generator: decode (z -> images), sample, sample_latents."""

    encodes = False
    variational = False
    attribute_names: tuple[str, ...] = ()

    def __init__(self, config: ml_collections.ConfigDict, variables: dict, image_shape: tuple[int, ...]):
        from gdl_jax.train import adversarial

        self.config, self.image_shape = config, tuple(image_shape)
        self.kind = config.task
        self.z_dim = int(config.z_dim)
        self.latents: dict[str, np.ndarray] = {}
        generator, _ = adversarial.networks(config)
        variables = jax.device_put(jax.device_get(variables))
        # tanh images in [-1, 1], shown in [0, 1]; the weights an argument, not folded constants
        decode = jax.jit(lambda v, z: (generator.apply(v, z, train=False) + 1.0) / 2.0)
        self._decode = lambda z: decode(variables, z)

    def decode(self, z: ArrayLike) -> np.ndarray:
        """Images in [0, 1] from the generator in inference mode: (N, *image_shape), or
        image_shape for one vector."""
        z, single = _check_latent(z, self.z_dim)
        x = np.clip(_apply_in_chunks(self._decode, z), 0.0, 1.0)
        return x[0] if single else x

    def sample_latents(self, n: int, seed: int = 0) -> np.ndarray:
        """n draws of the generator's prior, z ~ N(0, I)."""
        _check_count(n)
        return np.random.default_rng(seed).standard_normal((n, self.z_dim)).astype(np.float32)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n new images: decode(sample_latents(n, seed))."""
        return self.decode(self.sample_latents(n, seed))

    def attribute_vector(self, name: str) -> np.ndarray:
        """None here: a ConfigError (the faces VAE has them), so a caller written for both fails clearly."""
        raise ConfigError(f"a {self.kind} generator has no attribute vectors (they come with CelebA faces VAEs)")


def read_config(workdir: pathlib.Path) -> ml_collections.ConfigDict:
    """The config a run saved in `workdir`; a CheckpointError naming the problem otherwise."""
    path = workdir / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{workdir} holds no gdl_jax run (no config.json); train one with "
                              "python -m experiments.main --config=... --workdir=...")
    try:
        return ml_collections.ConfigDict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is unreadable ({e})") from None


def read_latents(workdir: pathlib.Path) -> dict[str, np.ndarray]:
    """The latent statistics the analysis saved (latents.npz: attribute vectors...); {} when none."""
    path = workdir / LATENTS_FILE
    if not path.is_file():
        return {}
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is unreadable ({e}); re-run the analysis") from None


def load(workdir: str | os.PathLike) -> TrainedModel | TrainedGenerator:
    """The autoencoder, VAE (TrainedModel) or GAN / WGAN / WGAN-GP generator (TrainedGenerator)
    trained in `workdir`, at its latest checkpoint."""
    from gdl_jax import parallel
    from gdl_jax.train import runner

    workdir = pathlib.Path(workdir)
    config = read_config(workdir)
    task = config.get("task", "classifier")
    if task not in TASKS + GENERATOR_TASKS:
        raise ConfigError(f"{workdir} holds a {task!r} run of {config.model.name!r}; gdl_jax.load supports "
                          f"the chapter 3 and 4 generative models ({', '.join(TASKS + GENERATOR_TASKS)})")
    shape = runner.image_shape(config)
    if task in GENERATOR_TASKS:
        return TrainedGenerator(config, _restore_generator(config, workdir, shape), shape)
    model = models.from_config(config.model)
    state = runner.restore(config, workdir, model, shape, parallel.make_mesh())
    return TrainedModel(config, model, state.variables(), shape, read_latents(workdir))


def _restore_generator(config: ml_collections.ConfigDict, workdir: pathlib.Path, shape: tuple) -> dict:
    """The generator's variables at the latest checkpoint of the GAN run in `workdir`."""
    from gdl_jax.train import adversarial
    from gdl_jax.train.checkpoint import restore_trained

    template = jax.jit(lambda k: adversarial.init_state(config, shape, k))(jax.random.PRNGKey(0))
    return restore_trained(workdir / "checkpoints", template).generator.variables()
