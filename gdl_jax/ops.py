"""Small array operations shown by hand in the book (chapter 2's convolution)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Fig 2-10 / 2-11: responds to a bright row above a dark row, and to a bright column left of a dark one.
HORIZONTAL_EDGE = np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], np.float32)
VERTICAL_EDGE = HORIZONTAL_EDGE.T.copy()


def convolve2d(image: jax.Array, kernel: jax.Array, padding: str = "SAME") -> jax.Array:
    """A single-channel 2-D convolution as Conv2D computes it (cross-correlation, no flip).

    image (H, W), kernel (kh, kw) -> (H, W) with padding 'SAME', smaller with 'VALID'.
    """
    image, kernel = jnp.asarray(image, jnp.float32), jnp.asarray(kernel, jnp.float32)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"convolve2d takes 2-D image and kernel, got {image.shape} and {kernel.shape}")
    out = jax.lax.conv_general_dilated(image[None, :, :, None], kernel[:, :, None, None], (1, 1),
                                       padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out[0, :, :, 0]


# Fig 2-10: a 3x3 portion of an image with a horizontal edge.
FIG_2_10_PORTION = np.array([[0.6, 0.2, 0.6], [0.1, -0.2, -0.3], [-0.5, -0.1, -0.3]], np.float32)


def fig_2_10() -> tuple[float, float]:
    """The horizontal edge filter's response to Fig 2-10's portion (2.3) and its negative (-2.3)."""
    response = lambda p: float(convolve2d(p, HORIZONTAL_EDGE, "VALID")[0, 0])
    return response(FIG_2_10_PORTION), response(-FIG_2_10_PORTION)
