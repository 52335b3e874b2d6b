"""The chapter 2 classifiers, the chapter 3 autoencoders / VAEs (digits and faces) and their train
step in idiomatic eager PyTorch, for the benchmark.

Only experiments/benchmark.py imports this module (torch is the optional `bench` extra; the
library never imports it). The architectures mirror gdl_jax/models/classifiers.py layer for
layer with the same Keras settings: glorot-uniform kernels and zero biases, BatchNorm momentum
0.99 (torch's momentum=0.01) and eps 1e-3, LeakyReLU 0.3, Dropout 0.5. Convolutions run in NCHW
with channels_last memory format. Stride-2 3x3 convolutions pad 1 on every side where Keras'
SAME pads (0, 1): same output shapes and FLOPs, so the same work to time.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

NUM_CLASSES = 10
LEAKY_SLOPE = 0.3
BN_MOMENTUM = 0.01  # torch's new-statistic weight: Keras momentum 0.99
BN_EPS = 1e-3


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32 * 3, 200), nn.ReLU(),
                         nn.Linear(200, 150), nn.ReLU(), nn.Linear(150, NUM_CLASSES))


def _small_conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 10, 4, stride=2, padding=1),
                         nn.Conv2d(10, 20, 3, stride=2, padding=1),
                         nn.Flatten(), nn.Linear(8 * 8 * 20, NUM_CLASSES))


def _cnn() -> nn.Module:
    layers: list[nn.Module] = []
    c_in = 3
    for c_out, stride in zip((32, 32, 64, 64), (1, 2, 1, 2)):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
                   nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM), nn.LeakyReLU(LEAKY_SLOPE)]
        c_in = c_out
    layers += [nn.Flatten(), nn.Linear(8 * 8 * 64, 128),
               nn.BatchNorm1d(128, eps=BN_EPS, momentum=BN_MOMENTUM), nn.LeakyReLU(LEAKY_SLOPE),
               nn.Dropout(0.5), nn.Linear(128, NUM_CLASSES)]
    return nn.Sequential(*layers)


def _reconstruction_loss(model: nn.Module, x: torch.Tensor, shape_before_flattening: tuple[int, int, int],
                         r_loss_factor: float) -> torch.Tensor:
    """Batch means, as the JAX steps compute: MSE for an autoencoder, r_loss_factor * MSE + KL for
    a VAE (z sampled by reparameterisation). `model` has encoder, heads (z, or mu and log_var),
    dense, decoder."""
    h = model.encoder(x)
    if model.variational:
        mu, log_var = model.heads[0](h), model.heads[1](h)
        z = mu + torch.exp(log_var / 2) * torch.randn_like(mu)
    else:
        z = model.heads[0](h)
    x_hat = model.decoder(model.dense(z).view(-1, *shape_before_flattening)
                          .contiguous(memory_format=torch.channels_last))
    mse = torch.mean((x - x_hat) ** 2)
    if not model.variational:
        return mse
    kl = -0.5 * torch.sum(1 + log_var - mu ** 2 - torch.exp(log_var), dim=1)
    return r_loss_factor * mse + kl.mean()


class _Autoencoder(nn.Module):
    """The book's MNIST autoencoder / VAE (z_dim 2): stride-2 ConvTranspose2d with
    output_padding=1 doubles the size as Keras' 'same' Conv2DTranspose does."""

    def __init__(self, variational: bool):
        super().__init__()
        act = lambda: nn.LeakyReLU(LEAKY_SLOPE)
        self.variational = variational
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1, 1), act(), nn.Conv2d(32, 64, 3, 2, 1), act(),
            nn.Conv2d(64, 64, 3, 2, 1), act(), nn.Conv2d(64, 64, 3, 1, 1), act(), nn.Flatten())
        self.heads = nn.ModuleList([nn.Linear(3136, 2) for _ in range(2 if variational else 1)])
        self.dense = nn.Linear(2, 3136)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 3, 1, 1), act(), nn.ConvTranspose2d(64, 64, 3, 2, 1, 1), act(),
            nn.ConvTranspose2d(64, 32, 3, 2, 1, 1), act(), nn.ConvTranspose2d(32, 1, 3, 1, 1), nn.Sigmoid())

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """MSE (autoencoder) or 1000 * MSE + KL (VAE)."""
        return _reconstruction_loss(self, x, (64, 7, 7), 1000.0)


class _FacesVAE(nn.Module):
    """The book's faces VAE (z_dim 200, 128x128x3): every conv but the last is followed by
    BatchNorm, LeakyReLU and Dropout(0.25); loss 10000 * MSE + KL."""

    def __init__(self):
        super().__init__()

        def block(conv):
            return [conv, nn.BatchNorm2d(conv.out_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
                    nn.LeakyReLU(LEAKY_SLOPE), nn.Dropout(0.25)]

        enc, c_in = [], 3
        for c_out in (32, 64, 64, 64):
            enc += block(nn.Conv2d(c_in, c_out, 3, 2, 1))
            c_in = c_out
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.heads = nn.ModuleList([nn.Linear(4096, 200) for _ in range(2)])
        self.dense = nn.Linear(200, 4096)
        dec, c_in = [], 64
        for c_out in (64, 64, 32):
            dec += block(nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, 1))
            c_in = c_out
        self.decoder = nn.Sequential(*dec, nn.ConvTranspose2d(32, 3, 3, 2, 1, 1), nn.Sigmoid())
        self.variational = True

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return _reconstruction_loss(self, x, (64, 8, 8), 10000.0)


class _GAN(nn.Module):
    """The book's GANs: the Quick Draw GAN ('quickdraw', Fig 4-4, 4-5: ReLU, Dropout 0.4, nearest
    UpSampling + 5x5 convs, BatchNorm momentum 0.9), the WGAN's CIFAR-10 horses critic and
    generator ('horses', Fig 4-15: LeakyReLU 0.2, no dropout, UpSampling + 5x5 convs, BatchNorm
    momentum 0.8), or the WGAN-GP's 64x64 faces ('faces': LeakyReLU 0.2, no dropout, stride-2
    ConvTranspose2d). Padding 2 (and output_padding 1) gives Keras' 'same' shapes."""

    # c_in, critic filters, critic strides, critic's last side, generator's initial (C, H, W),
    # generator layers before the last (filters, upsample, stride), BatchNorm momentum (torch's)
    KINDS = {"quickdraw": (1, (64, 64, 128, 128), (2, 2, 2, 1), 4, (64, 7, 7),
                           [(128, 2, 1), (64, 2, 1), (64, 1, 1)], 0.1),
             "horses": (3, (32, 64, 128, 128), (2, 2, 2, 1), 4, (128, 4, 4),
                        [(128, 2, 1), (64, 2, 1), (32, 2, 1)], 0.2),
             "faces": (3, (64, 128, 256, 512), (2, 2, 2, 2), 4, (512, 4, 4),
                       [(256, 1, 2), (128, 1, 2), (64, 1, 2)], 0.1)}

    def __init__(self, kind: str = "quickdraw", z_dim: int = 100):
        super().__init__()
        c_in, d_filters, d_strides, side, initial, g_layers, bn_momentum = self.KINDS[kind]
        image_channels, dropout = c_in, kind == "quickdraw"
        act = nn.ReLU if kind == "quickdraw" else (lambda: nn.LeakyReLU(0.2))
        d = []
        for c_out, stride in zip(d_filters, d_strides):
            d += [nn.Conv2d(c_in, c_out, 5, stride, 2), act()] + ([nn.Dropout(0.4)] if dropout else [])
            c_in = c_out
        self.discriminator = nn.Sequential(*d, nn.Flatten(), nn.Linear(side * side * d_filters[-1], 1))
        bn = lambda c: nn.BatchNorm2d(c, eps=BN_EPS, momentum=bn_momentum)
        g, c_in = [], initial[0]
        for c_out, up, stride in g_layers:
            if stride > 1:
                g += [nn.ConvTranspose2d(c_in, c_out, 5, stride, 2, output_padding=1)]
            else:
                g += [nn.Upsample(scale_factor=up, mode="nearest")] if up > 1 else []
                g += [nn.Conv2d(c_in, c_out, 5, 1, 2)]
            g += [bn(c_out), act()]
            c_in = c_out
        last = (nn.ConvTranspose2d(c_in, image_channels, 5, 2, 2, output_padding=1) if kind == "faces"
                else nn.Conv2d(c_in, image_channels, 5, 1, 2))
        n = int(np.prod(initial))
        self.generator_dense = nn.Sequential(nn.Linear(z_dim, n), nn.BatchNorm1d(n, eps=BN_EPS, momentum=bn_momentum),
                                             act())
        self.generator_convs = nn.Sequential(*g, last, nn.Tanh())
        self.z_dim, self.initial = z_dim, initial

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        h = self.generator_dense(z).view(-1, *self.initial).contiguous(memory_format=torch.channels_last)
        return self.generator_convs(h)

    def generate_frozen(self, n: int, device) -> torch.Tensor:
        """n images from the generator in inference mode, without a graph (the critic's fakes)."""
        self.generator_dense.eval(), self.generator_convs.eval()
        with torch.no_grad():
            fake = self.generate(torch.randn(n, self.z_dim, device=device))
        self.generator_dense.train(), self.generator_convs.train()
        return fake

    def generator_params(self) -> list[torch.Tensor]:
        return [*self.generator_dense.parameters(), *self.generator_convs.parameters()]


def _gan_steps(model: _GAN, autocast: Callable = contextlib.nullcontext, lr_d: float = 8e-4,
               lr_g: float = 4e-4) -> Callable[[torch.Tensor], None]:
    """One full GAN update as the book's train step: the discriminator on real (label 1), then on
    as many generated images (label 0, generator in inference mode), then the generator through
    the discriminator with its params frozen (requires_grad off: no weight gradients wasted).
    Each forward pass and its loss run under `autocast()`, the backward passes and optimizer
    steps outside it (inside, autocast would reuse its casts of weights an optimizer step has
    since changed)."""
    d, bce = model.discriminator, nn.BCEWithLogitsLoss()
    opt_d = torch.optim.RMSprop(d.parameters(), lr=lr_d, alpha=0.9, eps=1e-7)
    opt_g = torch.optim.RMSprop(model.generator_params(), lr=lr_g, alpha=0.9, eps=1e-7)

    def step(real: torch.Tensor) -> None:
        n = real.shape[0]
        ones, zeros = torch.ones(n, 1, device=real.device), torch.zeros(n, 1, device=real.device)
        d.requires_grad_(True)
        with autocast():
            fake = model.generate_frozen(n, real.device)
        for images, labels in ((real, ones), (fake, zeros)):
            opt_d.zero_grad(set_to_none=True)
            with autocast():
                loss = bce(d(images), labels)
            loss.backward()
            opt_d.step()
        d.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with autocast():
            loss = bce(d(model.generate(torch.randn(n, model.z_dim, device=real.device))), ones)
        loss.backward()
        opt_g.step()

    return step


def _adam_wgan_gp(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), eps=1e-7)


def _wgan_steps(model: _GAN, autocast: Callable = contextlib.nullcontext, n_critic: int = 5,
                clip_value: float | None = None, gp_weight: float = 0.0,
                make_optimizer: Callable = _adam_wgan_gp) -> Callable[[torch.Tensor], None]:
    """One full WGAN / WGAN-GP update as the book's: n_critic critic updates, each on its own
    slice of the real batch, then one generator update on -mean critic(G(z)) with the critic
    frozen. WGAN (clip_value): a step on -mean critic(real), one on mean critic(fake), then every
    critic weight clamped to [-clip_value, clip_value]. WGAN-GP (gp_weight): one step on both
    terms + gp_weight x the gradient penalty (torch.autograd.grad with create_graph=True at random
    interpolates, one alpha per image). Forward passes under `autocast()`, as in `_gan_steps`."""
    critic = model.discriminator
    opt_c, opt_g = make_optimizer(critic.parameters()), make_optimizer(model.generator_params())

    def critic_step(loss: torch.Tensor) -> None:
        opt_c.zero_grad(set_to_none=True)
        loss.backward()
        opt_c.step()

    def step(real_chunks: torch.Tensor) -> None:
        critic.requires_grad_(True)
        for real in real_chunks.chunk(n_critic):
            n = real.shape[0]
            with autocast():
                fake = model.generate_frozen(n, real.device)
            if gp_weight:
                alpha = torch.rand(n, 1, 1, 1, device=real.device)
                x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                with autocast():
                    out = critic(x_hat).sum()
                grads = torch.autograd.grad(out, x_hat, create_graph=True)[0]
                penalty = ((1 - grads.flatten(1).norm(dim=1)) ** 2).mean()
                with autocast():
                    loss = -critic(real).mean() + critic(fake).mean()
                critic_step(loss + gp_weight * penalty)
            else:
                for images, sign in ((real, -1), (fake, 1)):
                    with autocast():
                        loss = sign * critic(images).mean()
                    critic_step(loss)
            if clip_value is not None:
                with torch.no_grad():
                    for p in critic.parameters():
                        p.clamp_(-clip_value, clip_value)
        critic.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        n = real_chunks.shape[0] // n_critic
        with autocast():
            loss = -critic(model.generate(torch.randn(n, model.z_dim, device=real_chunks.device))).mean()
        loss.backward()
        opt_g.step()

    return step


def _rmsprop_keras(lr: float) -> Callable:
    return lambda params: torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)


BUILDERS = {"mlp": _mlp, "small_conv": _small_conv, "cnn": _cnn,
            "autoencoder": lambda: _Autoencoder(False), "vae": lambda: _Autoencoder(True), "vae_faces": _FacesVAE,
            "gan": _GAN, "wgan": lambda: _GAN("horses"), "wgan_gp": lambda: _GAN("faces")}
CONV_MODELS = frozenset({"small_conv", "cnn", "autoencoder", "vae", "vae_faces", "gan", "wgan", "wgan_gp"})
REAL_BATCHES_PER_STEP = {"wgan": 5, "wgan_gp": 5}   # n_critic: a WGAN step takes a real batch per critic update
ADVERSARIAL_STEPS = {"gan": _gan_steps,   # (model, autocast) -> the full update
                     "wgan": lambda m, a: _wgan_steps(m, a, clip_value=0.01, make_optimizer=_rmsprop_keras(5e-5)),
                     "wgan_gp": lambda m, a: _wgan_steps(m, a, gp_weight=10.0)}
INPUT_SHAPES = {"autoencoder": (1, 28, 28), "vae": (1, 28, 28), "vae_faces": (3, 128, 128),
                "gan": (1, 28, 28), "wgan_gp": (3, 64, 64)}  # others: (3, 32, 32)


def build(name: str) -> nn.Module:
    """The torch twin of gdl_jax model `name`, Keras-initialised, channels_last for conv models."""
    model = BUILDERS[name]()
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    if name in CONV_MODELS:
        model = model.to(memory_format=torch.channels_last)
    return model


def param_count(model: nn.Module) -> int:
    """Parameters plus BatchNorm running mean/var (Keras' non-trainable), not num_batches_tracked."""
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    return sum(p.numel() for p in model.parameters()) + buffers


def device() -> str:
    """'cuda' where torch sees a GPU (the JAX side then runs on it too), else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def compile_model(name: str, model: nn.Module) -> nn.Module:
    """torch.compile as a speed-minded user applies it (`torch.compile(module)`, default mode):
    the whole classifier, or each network the step calls (encoder, heads, decoder;
    discriminator, generator layers), swapped in place, after a dynamo reset (one model's graphs
    at a time). The optimizers stay eager. (In torch
    2.13 `nn.Module.compile()` left the module uncompiled here: no frame reached dynamo.)"""
    # every compiled module shares one wrapper frame, whose cache holds recompile_limit (8)
    # graphs per process: past that, torch 2.13 silently runs the later models eagerly
    torch._dynamo.reset()
    with warnings.catch_warnings():   # importing torch's compiler still uses a torch.jit API it deprecates
        warnings.filterwarnings("ignore", r"`torch\.jit\.script_method` is deprecated", DeprecationWarning)
        if name in ("mlp", "small_conv", "cnn"):
            return torch.compile(model)
        for attr, child in list(model.named_children()):
            if isinstance(child, nn.ModuleList):
                for i, m in enumerate(child):
                    child[i] = torch.compile(m)
            else:
                setattr(model, attr, torch.compile(child))
        return model


def prepare_train_steps(name: str, batch_size: int, steps_per_repeat: int, threads: int,
                        seed: int = 0, compiled: bool = False,
                        compute_dtype: str = "float32") -> tuple[Callable[[], None], int]:
    """(repeat, model parameter count): `repeat` runs `steps_per_repeat` train steps on
    pre-generated random batches; with `compiled`, under torch.compile (`compile_model`: the
    first repeat compiles); with compute_dtype 'bfloat16', each forward pass and loss under
    `torch.autocast(dtype=torch.bfloat16)` (PyTorch's mixed precision: convolutions and matmuls
    in bfloat16, params, optimizer and losses float32, as the JAX side's `compute_dtype`).

    A step is zero_grad, forward, loss (cross-entropy for classifiers, the reconstruction loss
    for autoencoders), backward, Adam(5e-4) step, as in the JAX dispatch of k steps; for the GAN
    the WGAN and the WGAN-GP the book's full update (`_gan_steps`, `_wgan_steps`).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = device()
    model = build(name).to(dev).train()
    if compiled:
        model = compile_model(name, model)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    autocast = lambda: torch.autocast(dev, dtype=torch.bfloat16, enabled=compute_dtype == "bfloat16")
    gan_step = ADVERSARIAL_STEPS.get(name, lambda m, a: None)(model, autocast)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    memory_format = torch.channels_last if name in CONV_MODELS else torch.contiguous_format
    batches = []
    for _ in range(steps_per_repeat):  # pre-generated: not part of the timing
        shape = INPUT_SHAPES.get(name, (3, 32, 32))
        images = rng.integers(0, 256, (batch_size * REAL_BATCHES_PER_STEP.get(name, 1), *shape), dtype=np.uint8)
        x = (torch.from_numpy(images).to(dev).float() / 255.0).contiguous(memory_format=memory_format)
        y = torch.from_numpy(rng.integers(0, NUM_CLASSES, batch_size)).long().to(dev)
        batches.append((x, y))

    def repeat() -> None:
        for x, y in batches:
            if gan_step is not None:
                gan_step(x * 2 - 1)
                continue
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = model.loss(x) if hasattr(model, "variational") else loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        if dev == "cuda":
            torch.cuda.synchronize()

    return repeat, param_count(model)
