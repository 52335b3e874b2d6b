"""One function per kind of figure; each writes a PNG and returns its path."""

from __future__ import annotations

import pathlib
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _show(ax, image: np.ndarray) -> None:
    ax.axis("off")
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray_r" if image.max() <= 1 else "gray")
    else:
        ax.imshow(image)


def predictions_grid(images: np.ndarray, predicted: Sequence[str], actual: Sequence[str],
                     path) -> pathlib.Path:
    """Images in a row with 'pred = ...' and 'act = ...' beneath each (Fig 2-9, 2-19)."""
    n = len(images)
    fig = plt.figure(figsize=(1.5 * n, 3))
    fig.subplots_adjust(hspace=0.4, wspace=0.4)
    for i in range(n):
        ax = fig.add_subplot(1, n, i + 1)
        _show(ax, images[i])
        ok = predicted[i] == actual[i]
        ax.text(0.5, -0.35, f"pred = {predicted[i]}", fontsize=10, ha="center",
                transform=ax.transAxes, color="black" if ok else "red")
        ax.text(0.5, -0.7, f"act = {actual[i]}", fontsize=10, ha="center", transform=ax.transAxes)
    return _save(fig, path)


def training_curves(records: list[dict], path) -> pathlib.Path:
    """Loss and accuracy per step (train, thin) and per epoch (train and test, markers)."""
    steps = [r for r in records if r.get("kind") == "train"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        if steps:
            x = np.array([r["step"] for r in steps])
            y = np.array([r[key] for r in steps])
            w = max(1, len(y) // 100)
            smooth = np.convolve(y, np.ones(w) / w, mode="valid")
            ax.plot(x[w - 1:], smooth, lw=0.8, alpha=0.6, label=f"train {key} (per step, smoothed)")
        for prefix, style in (("train", "o-"), ("test", "s-")):
            pts = [(r["step"], r[f"{prefix}_{key}"]) for r in epochs if f"{prefix}_{key}" in r]
            if pts:
                ax.plot(*zip(*pts), style, label=f"{prefix} {key} (per epoch)")
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    return _save(fig, path)


def filter_responses(image: np.ndarray, responses: Sequence[np.ndarray], titles: Sequence[str],
                     path) -> pathlib.Path:
    """A greyscale image beside each filter's response to it (Fig 2-11)."""
    panels = [("input", image)] + list(zip(titles, responses))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(np.asarray(img), cmap="gray")
        ax.set_title(title)
        ax.axis("off")
    return _save(fig, path)
