"""One function per kind of figure; each writes a PNG and returns its path."""

from __future__ import annotations

import pathlib
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gdl_jax import parallel  # noqa: E402


def _save(fig, path) -> pathlib.Path:
    """Writes the figure (on the writing process of a multi-host run only) and closes it."""
    path = pathlib.Path(path)
    if parallel.is_writer():
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _show(ax, image: np.ndarray) -> None:
    """One image without axes: RGB as is; one channel in gray over the dtype's full range (0-1
    for floats, 0-255 for uint8), so that every image of a figure is drawn alike."""
    ax.axis("off")
    image = np.asarray(image)
    image = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1 if image.dtype.kind == "f" else 255)
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
    """One panel per metric: per step (train, smoothed) and per epoch (train and test, markers)."""
    steps = [r for r in records if r.get("kind") == "train"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    keys = [k for k in (steps[-1] if steps else {}) if k not in ("step", "kind")]
    keys += [k[5:] for k in (epochs[-1] if epochs else {}) if k.startswith("test_") and k[5:] not in keys]
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        if steps and key in steps[-1]:
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


def image_grid(images: np.ndarray, path, ncols: int = 10, titles: Sequence[str] | None = None,
               scale: float = 1.2) -> pathlib.Path:
    """Images (N, H, W[, C]) in a grid, optional title under each (Fig 1-7, 1-10, 1-13, 1-14)."""
    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows * (1.25 if titles else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            _show(ax, images[i])
            if titles:
                ax.set_title(titles[i], fontsize=6)
    return _save(fig, path)


def points_on_mask(mask: np.ndarray, extent: tuple[float, float, float, float], path,
                   points: dict[str, np.ndarray], box: tuple[np.ndarray, np.ndarray] | None = None,
                   title: str = "") -> pathlib.Path:
    """A 2-D support mask (grey) with labelled point sets and an optional box (Fig 1-4..1-6)."""
    fig, ax = plt.subplots(figsize=(12, 6))
    ax.imshow(mask, extent=extent, cmap="Greys", vmin=0, vmax=2.5, origin="upper")
    if box is not None:
        (x0, y0), (x1, y1) = np.asarray(box[0]), np.asarray(box[1])
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=True, alpha=0.25, color="orange",
                                   label="p_model (MLE box)"))
    markers = iter(["o", "x", "s", "^", "D", "v"])
    for label, pts in points.items():
        pts = np.asarray(pts)
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], s=14, marker=next(markers), label=f"{label} ({len(pts)})")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def latent_grid(decode, x_values: np.ndarray, y_values: np.ndarray, path, x_label: str = "z[0]",
                y_label: str = "z[1]", scatter: np.ndarray | None = None) -> pathlib.Path:
    """The images decode(z) at a regular grid over a 2-D latent space, placed at their latent
    coordinates, with optional data points scattered beneath (Fig 1-15; later the VAE's grids).

    decode: (N, 2) latents -> (N, H, W) or (N, H, W, C) images.
    """
    xx, yy = np.meshgrid(x_values, y_values)
    z = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    images = np.asarray(decode(z))
    fig, ax = plt.subplots(figsize=(8, 8))
    if scatter is not None:
        ax.scatter(scatter[:, 0], scatter[:, 1], s=4, c="tab:blue", alpha=0.4, zorder=0)
    dx = (x_values[1] - x_values[0]) * 0.45 if len(x_values) > 1 else 0.1
    dy = (y_values[1] - y_values[0]) * 0.45 if len(y_values) > 1 else 0.1
    for (zx, zy), img in zip(z, images):
        img = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
        ax.imshow(img, extent=(zx - dx, zx + dx, zy - dy, zy + dy), cmap="gray", vmin=0, vmax=1, zorder=1)
    ax.set_xlim(x_values[0] - 2 * dx, x_values[-1] + 2 * dx)
    ax.set_ylim(y_values[0] - 2 * dy, y_values[-1] + 2 * dy)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    return _save(fig, path)


def latent_scatter(z: np.ndarray, labels: np.ndarray, path, title: str = "",
                   with_pvalues: bool = False) -> pathlib.Path:
    """2-D latent codes coloured by label (Fig 3-8); with_pvalues adds the N(0,1) CDF transform
    beside it (Fig 3-14): a standard-normal code fills the unit square evenly."""
    from scipy.stats import norm

    panels = [(z, "z[{}]")] + ([(norm.cdf(z), "N(0, 1) CDF of z[{}]")] if with_pvalues else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 6), squeeze=False)
    for ax, (points, label) in zip(axes[0], panels):
        sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6)
        ax.set_xlabel(label.format(0))
        ax.set_ylabel(label.format(1))
        ax.set_title(title)
    fig.colorbar(sc, ax=axes[0].tolist())
    return _save(fig, path)


def latent_points(z: np.ndarray, labels: np.ndarray, points: np.ndarray, images: np.ndarray, path,
                  captions: Sequence[str] = (), title: str = "") -> pathlib.Path:
    """Marked latent points over the data's 2-D codes, with the image each decodes to (Fig 3-9).

    z: (N, 2) codes coloured by labels; points: (P, 2), images: (P, H, W[, C]) in [0, 1].
    """
    n = len(points)
    fig = plt.figure(figsize=(7 + 2.2 * n, 6))
    grid = fig.add_gridspec(1, 2, width_ratios=(7, 2.2 * n))
    ax = fig.add_subplot(grid[0])
    ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=2, alpha=0.4)
    ax.scatter(points[:, 0], points[:, 1], marker="x", s=80, c="black")
    for i, (px, py) in enumerate(points):
        ax.annotate(chr(ord("A") + i), (px, py), textcoords="offset points", xytext=(6, 6), fontsize=14)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    panels = grid[1].subgridspec(1, n)
    for i, img in enumerate(np.asarray(images)):
        iax = fig.add_subplot(panels[i])
        img = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
        iax.imshow(img, cmap="gray", vmin=0, vmax=1)
        iax.axis("off")
        iax.set_title(chr(ord("A") + i) + (f"\n{captions[i]}" if i < len(captions) else ""), fontsize=9)
    return _save(fig, path)


def image_rows(rows: Sequence[np.ndarray], path, row_labels: Sequence[str] = (), col_labels: Sequence[str] = (),
               first_column: Sequence[np.ndarray] | None = None, first_label: str = "",
               scale: float = 1.3) -> pathlib.Path:
    """Rows of images (each (N, H, W, C) in [0, 1]) with labels on the left and on top; an
    optional first column set apart (e.g. the original beside its edits: Fig 3-18, 3-21, 3-22)."""
    offset = 1 if first_column is not None else 0
    ncols = offset + max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(scale * ncols + 1.2, scale * len(rows) + 0.3),
                             squeeze=False)
    for r, row in enumerate(rows):
        images = ([first_column[r]] if offset else []) + list(row)
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                img = np.clip(np.asarray(images[c]), 0, 1)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                          vmin=0, vmax=1)
            if r == 0:
                label = first_label if (offset and c == 0) else (col_labels[c - offset] if c - offset < len(col_labels)
                                                                 else "")
                ax.set_title(label, fontsize=8)
        if r < len(row_labels):
            axes[r][0].set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return _save(fig, path)


def latent_histograms(z: np.ndarray, path, title: str, ncols: int = 10) -> pathlib.Path:
    """One histogram per latent dimension of z (N, d) over the N(0, 1) density (Fig 3-19). Bars are
    densities over all N codes (mass beyond the drawn [-3, 3] is left out, not spread over it)."""
    from scipy.stats import norm

    d = z.shape[1]
    nrows = -(-d // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.3 * nrows), squeeze=False)
    grid = np.linspace(-3, 3, 200)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= d:
            ax.axis("off")
            continue
        ax.hist(z[:, k], bins=20, range=(-3, 3), weights=np.full(len(z), 20 / 6 / len(z)),
                color="tab:blue", alpha=0.7)
        ax.plot(grid, norm.pdf(grid), color="tab:orange", lw=1)
        ax.set_ylim(0, 0.8)
        ax.text(0.03, 0.85, str(k), transform=ax.transAxes, fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _history(steps: list[dict], panels: Sequence[tuple[str, Sequence[str]]], path,
             clip_loss: bool = False) -> pathlib.Path:
    """One panel per (y label, record keys): each key per step (light) and smoothed over 1% of the
    run (dark). clip_loss: the 'loss' panel's axis stops at the 99.5th percentile (a few early
    spikes would flatten the rest)."""
    x = np.array([r["step"] for r in steps])
    w = max(1, len(steps) // 100)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        if clip_loss and title == "loss":
            ax.set_ylim(0, 1.1 * np.quantile([r[k] for r in steps for k in keys], 0.995))
        for i, key in enumerate(keys):
            y = np.array([r[key] for r in steps])
            ax.plot(x, y, color=f"C{i}", alpha=0.2, lw=0.6)
            if len(y) >= w:
                ax.plot(x[w - 1:], np.convolve(y, np.ones(w) / w, mode="valid"), color=f"C{i}", lw=1.4, label=key)
        ax.set_xlabel("step")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def gan_history(steps: list[dict], path) -> pathlib.Path:
    """Fig 4-8: the discriminator's loss and accuracy on real and fake images and the
    generator's, per step (light) and smoothed over 1% of the run (dark)."""
    return _history(steps, [("loss", ["d_loss_real", "d_loss_fake", "d_loss", "g_loss"]),
                            ("accuracy", ["d_acc_real", "d_acc_fake", "g_acc"])], path, clip_loss=True)


def wgan_history(steps: list[dict], path) -> pathlib.Path:
    """Fig 4-19: the critic's losses on real and fake images and their sum, the generator's loss,
    the Wasserstein estimate mean critic(real) - mean critic(fake), and the gradient penalty in a
    panel of its own where the run has one; per step (light) and smoothed over 1% of the run (dark)."""
    penalty = [("gradient penalty", ["gradient_penalty"])] if "gradient_penalty" in steps[0] else []
    return _history(steps, [("loss", ["c_loss_real", "c_loss_fake", "c_loss", "g_loss"]),
                            ("Wasserstein estimate", ["wasserstein_estimate"]), *penalty], path)


def loss_and_quality(series: dict, loss_name: str, path) -> pathlib.Path:
    """A loss against sample quality over training (book 4.4's claim for the Wasserstein loss):
    left, the loss averaged over the steps up to each quality measurement; middle, the samples'
    mean L1 distance to their nearest training images and their diversity at those steps; right,
    where the series has it, their Frechet distance in a classifier's features."""
    frechet = "frechet_distance" in series
    fig, axes = plt.subplots(1, 3 if frechet else 2, figsize=(20 if frechet else 13, 4.5))
    left, right = axes[:2]
    if frechet:
        fig.subplots_adjust(wspace=0.45)   # room between the middle panel's right axis and this one
        axes[2].plot(series["step"], series["frechet_distance"], "o-", color="C3", ms=3)
        axes[2].set_title("in a classifier's features", fontsize=10)
        axes[2].set_ylabel("Frechet distance (lower: closer to data)")
        axes[2].set_xlabel("step")
        axes[2].grid(alpha=0.3)
    left.plot(series["step"], series["loss"], "o-", color="C0", ms=3)
    left.set_ylabel(f"{loss_name} (mean over the interval)")
    right.plot(series["step"], series["nearest_l1"], "o-", color="C1", ms=3, label="nearest training L1")
    right.set_ylabel("nearest training L1 (lower: closer to data)")
    twin = right.twinx()
    twin.plot(series["step"], series["diversity"], "s-", color="C2", ms=3, label="diversity")
    twin.set_ylabel("diversity (1: as varied as the data)")
    for ax in (left, right):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    right.legend(handles=right.get_lines() + twin.get_lines(), loc="lower right")
    return _save(fig, path)
