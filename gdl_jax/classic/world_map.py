"""The world-map game (book 1.1, Fig 1-4..1-6): p_data uniform over land, p_model a box.

The land mask is an embedded coarse map: 5-degree cells on an equirectangular grid (36 rows
from 90N to 90S, 72 columns from 180W to 180E), drawn by hand from an atlas. Coarse, but it has
every inhabited continent where it should be, which is all the game needs. Antarctica is left
out, as on the book's map.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from gdl_jax.errors import ConfigError, DataError

CELL = 5.0
# row (0 = 90..85N): column spans [start, end] inclusive (column 0 = 180..175W).
_LAND_SPANS = {
    1: [(25, 32)],
    2: [(12, 22), (25, 33), (38, 40), (56, 58)],
    3: [(10, 22), (24, 33), (47, 49), (56, 66)],
    4: [(4, 22), (25, 32), (31, 33), (38, 71)],
    5: [(3, 16), (20, 23), (27, 30), (37, 71)],
    6: [(6, 9), (11, 16), (20, 24), (34, 35), (37, 68)],
    7: [(11, 25), (34, 35), (36, 63), (67, 67)],
    8: [(11, 24), (35, 41), (44, 63), (64, 64)],
    9: [(11, 22), (34, 36), (38, 44), (47, 60), (61, 61), (64, 65)],
    10: [(12, 21), (34, 35), (36, 38), (41, 44), (45, 60), (61, 61), (63, 64)],
    11: [(13, 20), (34, 48), (48, 60), (62, 63)],
    12: [(13, 14), (16, 19), (33, 41), (43, 47), (47, 60)],
    13: [(14, 18), (19, 21), (33, 43), (43, 47), (50, 59)],
    14: [(15, 18), (33, 44), (44, 46), (50, 53), (55, 57), (60, 60)],
    15: [(17, 19), (33, 46), (51, 52), (56, 57), (60, 61)],
    16: [(20, 24), (34, 45), (52, 52), (56, 56), (61, 61)],
    17: [(21, 26), (38, 45), (55, 59)],
    18: [(20, 28), (38, 44), (56, 62), (63, 66)],
    19: [(21, 29), (38, 44), (57, 59), (63, 66)],
    20: [(21, 29), (38, 44), (44, 45), (62, 65)],
    21: [(22, 28), (38, 43), (45, 45), (60, 65)],
    22: [(22, 28), (38, 42), (45, 45), (59, 66)],
    23: [(22, 27), (39, 42), (59, 66)],
    24: [(22, 26), (39, 42), (59, 61), (64, 66)],
    25: [(21, 24), (64, 66), (70, 71)],
    26: [(21, 23), (65, 65), (70, 71)],
    27: [(21, 23), (69, 70)],
    28: [(21, 22)],
}


def land_mask() -> np.ndarray:
    """bool (36, 72): True where the 5-degree cell is mostly land."""
    mask = np.zeros((int(180 / CELL), int(360 / CELL)), bool)
    for row, spans in _LAND_SPANS.items():
        for a, b in spans:
            mask[row, a:b + 1] = True
    return mask


def is_land(points: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """points (N, 2) of (lon, lat) degrees -> bool (N,): p_data(x) > 0."""
    mask = land_mask() if mask is None else mask
    points = np.asarray(points)
    col = np.clip(((points[:, 0] + 180) // CELL).astype(int), 0, mask.shape[1] - 1)
    row = np.clip(((90 - points[:, 1]) // CELL).astype(int), 0, mask.shape[0] - 1)
    inside = (np.abs(points[:, 0]) <= 180) & (np.abs(points[:, 1]) <= 90)
    return mask[row, col] & inside


def sample_data(key: jax.Array, n: int, mask: np.ndarray | None = None) -> jax.Array:
    """n points from p_data: uniform over the land cells of the map (uniform in lon, lat)."""
    mask = land_mask() if mask is None else mask
    rows, cols = np.nonzero(mask)
    k_cell, k_pos = jax.random.split(key)
    cell = jax.random.randint(k_cell, (n,), 0, len(rows))
    offset = jax.random.uniform(k_pos, (n, 2)) * CELL
    lon = -180 + jnp.asarray(cols)[cell] * CELL + offset[:, 0]
    lat = 90 - jnp.asarray(rows)[cell] * CELL - offset[:, 1]
    return jnp.stack([lon, lat], axis=-1)


class BoxModel(struct.PyTreeNode):
    """p_model uniform over an axis-aligned box: 4 parameters (lower-left, upper-right corners)."""
    low: jax.Array    # (2,)
    high: jax.Array   # (2,)

    @classmethod
    def fit(cls, points) -> "BoxModel":
        """The maximum-likelihood box: the tightest box around the data (any larger box has
        lower density at every point; any smaller one gives some point density 0)."""
        points = jnp.asarray(points)
        if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 2:
            raise DataError(f"expected at least 2 points of shape (N, 2), got {points.shape}")
        return cls(low=points.min(axis=0), high=points.max(axis=0))

    def log_prob(self, points) -> jax.Array:
        points = jnp.asarray(points)
        inside = jnp.all((points >= self.low) & (points <= self.high), axis=-1)
        return jnp.where(inside, -jnp.log(jnp.prod(self.high - self.low)), -jnp.inf)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        return self.low + jax.random.uniform(key, (n, 2)) * (self.high - self.low)


RULE_1, RULE_2, SUCCESS = "breaks rule 1", "breaks rule 2", "success"


def judge(samples, training, min_distance: float, mask: np.ndarray | None = None) -> list[str]:
    """The framework's verdict per sample: rule 1 (p_data = 0: in the sea), rule 2 (within
    min_distance degrees of a training point: a copy), or success."""
    if min_distance < 0:
        raise ConfigError(f"min_distance must be >= 0, got {min_distance}")
    samples, training = np.asarray(samples), np.asarray(training)
    land = is_land(samples, mask)
    nearest = np.sqrt(((samples[:, None, :] - training[None, :, :]) ** 2).sum(-1)).min(axis=1)
    return [RULE_1 if not l else RULE_2 if d < min_distance else SUCCESS for l, d in zip(land, nearest)]
