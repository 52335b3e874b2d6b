"""The Wrodl fashion data set (book 1.2): 50 observations of 5 categorical features.

data/wrodl.csv agrees with the 10 rows printed in the book (Fig 1-8) and with every count of
Fig 1-9; the remaining 40 rows are one random arrangement of the remaining counts, with the
combination (LongHairStraight, Red, Round, ShirtScoopNeck, White) present exactly twice.
"""

from __future__ import annotations

import csv
import pathlib
from typing import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from gdl_jax.errors import DataError

CSV_PATH = pathlib.Path(__file__).parent / "data" / "wrodl.csv"

# The order of the sample space; categories in the order of the book's lists.
FEATURES: dict[str, tuple[str, ...]] = {
    "topType": ("NoHair", "LongHairBun", "LongHairCurly", "LongHairStraight",
                "ShortHairShortWaved", "ShortHairShortFlat", "ShortHairFrizzle"),
    "hairColor": ("Black", "Blonde", "Brown", "PastelPink", "Red", "SilverGrey"),
    "accessoriesType": ("Blank", "Round", "Sunglasses"),
    "clotheType": ("Hoodie", "Overall", "ShirtScoopNeck", "ShirtVNeck"),
    "clotheColor": ("Black", "Blue01", "Grey01", "PastelGreen", "PastelOrange", "Pink", "Red", "White"),
}
CARDINALITIES = tuple(len(v) for v in FEATURES.values())
# The book spells some values two ways (Fig 1-8 vs its lists): accept both.
ALIASES = {"SilverGray": "SilverGrey", "ShortHairFrizz": "ShortHairFrizzle"}


def encode(rows: Sequence[Mapping[str, str]] | Sequence[Sequence[str]]) -> np.ndarray:
    """Observations (dicts keyed by feature, or sequences in FEATURES order) -> codes (N, 5)."""
    if len(rows) == 0:
        raise DataError("no observations to encode")
    codes = np.empty((len(rows), len(FEATURES)), np.int32)
    for n, row in enumerate(rows):
        values = [row.get(f) for f in FEATURES] if isinstance(row, Mapping) else list(row)
        if len(values) != len(FEATURES):
            raise DataError(f"observation {n} has {len(values)} features; expected {len(FEATURES)} "
                            f"({', '.join(FEATURES)})")
        for k, (feature, value) in enumerate(zip(FEATURES, values)):
            value = ALIASES.get(value, value)
            if value not in FEATURES[feature]:
                raise DataError(f"observation {n}: unknown {feature} {value!r}; "
                                f"expected one of {', '.join(FEATURES[feature])}")
            codes[n, k] = FEATURES[feature].index(value)
    return codes


def decode(codes: ArrayLike) -> list[dict[str, str]]:
    """Codes (N, 5) back to observations: {feature: value} per row (encode's inverse)."""
    return [{f: FEATURES[f][int(c)] for f, c in zip(FEATURES, row)} for row in np.asarray(codes)]


def load(path: str | pathlib.Path = CSV_PATH) -> np.ndarray:
    """The Wrodl observations as codes (50, 5)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"cannot read Wrodl data {path}: {e}") from None
    return encode(rows)
