"""Chapter 2's convolution by hand (Fig 2-10) and the edge filters (Fig 2-11)."""

import numpy as np
import pytest

from gdl_jax import ops


def test_fig_2_10_numbers():
    pos, neg = ops.fig_2_10()
    assert round(pos, 4) == 2.3 and round(neg, 4) == -2.3


def test_edge_filters_respond_to_their_edges_only():
    img = np.zeros((8, 8), np.float32)
    img[:4] = 1.0  # bright top half: one horizontal edge
    h = np.asarray(ops.convolve2d(img, ops.HORIZONTAL_EDGE, "VALID"))
    v = np.asarray(ops.convolve2d(img, ops.VERTICAL_EDGE, "VALID"))
    assert h.max() == 3.0 and np.all(v == 0)
    assert ops.convolve2d(img, ops.HORIZONTAL_EDGE).shape == (8, 8)
    with pytest.raises(ValueError, match="2-D image and kernel"):
        ops.convolve2d(img[None], ops.HORIZONTAL_EDGE)
