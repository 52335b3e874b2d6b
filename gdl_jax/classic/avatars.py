"""A tiny avatar renderer for Wrodl styles (Fig 1-7, 1-10) and Planet Pixel (Fig 1-11).

Simple flat shapes on a 32-unit grid, drawn without anti-aliasing so that every pixel is exactly
one colour of PALETTE (Planet Pixel's 256-colour palette).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from PIL import Image, ImageDraw

from gdl_jax.classic.wrodl import FEATURES

HAIR = {"Black": (40, 40, 40), "Blonde": (240, 210, 110), "Brown": (120, 75, 40),
        "PastelPink": (245, 170, 200), "Red": (200, 50, 40), "SilverGrey": (190, 190, 205)}
CLOTHES = {"Black": (25, 25, 25), "Blue01": (100, 150, 230), "Grey01": (150, 150, 150),
           "PastelGreen": (170, 230, 170), "PastelOrange": (250, 190, 130), "Pink": (250, 130, 180),
           "Red": (220, 40, 50), "White": (250, 250, 250)}
SKIN = ((250, 210, 175), (225, 170, 130), (160, 110, 75))
BACKGROUND, INK, LENS, SHIRT = (225, 235, 245), (45, 30, 30), (35, 35, 50), (245, 245, 245)


def _palette() -> tuple[tuple[int, int, int], ...]:
    named = [BACKGROUND, INK, LENS, SHIRT, *SKIN, *HAIR.values(), *CLOTHES.values()]
    unique = list(dict.fromkeys(named))
    ramp = [(v, v, v) for v in np.linspace(0, 255, 256 - len(unique)).astype(int)]
    return tuple(unique + ramp)


PALETTE = _palette()  # 256 colours: every colour the renderer uses, then a grey ramp


def render(style: Mapping[str, str], size: int = 64, skin: int = 0, shift: int = 0) -> np.ndarray:
    """uint8 RGB (size, size, 3) avatar of a Wrodl style; `shift` moves it sideways (grid units)."""
    s = size / 32
    img = Image.new("RGB", (size, size), BACKGROUND)
    d = ImageDraw.Draw(img)
    box = lambda x0, y0, x1, y1: [round((x0 + shift) * s), round(y0 * s), round((x1 + shift) * s) - 1,
                                  round(y1 * s) - 1]
    pts = lambda *p: [(round((x + shift) * s), round(y * s)) for x, y in p]
    hair, cloth, face = HAIR[style["hairColor"]], CLOTHES[style["clotheColor"]], SKIN[skin]
    top = style["topType"]

    if top == "LongHairStraight":
        d.rectangle(box(8, 8, 12, 25), hair)
        d.rectangle(box(20, 8, 24, 25), hair)
    elif top == "LongHairCurly":
        for y in range(8, 24, 4):
            d.ellipse(box(7, y, 12, y + 5), hair)
            d.ellipse(box(20, y, 25, y + 5), hair)
    # body and clothes
    kind = style["clotheType"]
    d.polygon(pts((4, 32), (8, 24), (24, 24), (28, 32)), SHIRT if kind == "Overall" else cloth)
    d.rectangle(box(14, 19, 18, 24), face)
    if kind == "ShirtScoopNeck":
        d.ellipse(box(13, 21, 19, 27), face)
    elif kind == "ShirtVNeck":
        d.polygon(pts((13, 24), (19, 24), (16, 29)), face)
    elif kind == "Hoodie":
        d.rectangle(box(11, 20, 13, 25), cloth)
        d.rectangle(box(19, 20, 21, 25), cloth)
        d.line(pts((15, 25), (15, 29)), SHIRT)
        d.line(pts((17, 25), (17, 29)), SHIRT)
    elif kind == "Overall":
        d.rectangle(box(11, 27, 21, 32), cloth)
        d.line(pts((11, 27), (9, 24)), cloth, width=max(1, round(s)))
        d.line(pts((21, 27), (23, 24)), cloth, width=max(1, round(s)))
    # face
    d.ellipse(box(10, 6, 22, 21), face)
    d.rectangle(box(13, 12, 14, 13), INK)
    d.rectangle(box(18, 12, 19, 13), INK)
    d.rectangle(box(14, 17, 18, 18), INK)
    glasses = style["accessoriesType"]
    if glasses == "Round":
        d.ellipse(box(11, 10, 16, 15), outline=INK)
        d.ellipse(box(17, 10, 22, 15), outline=INK)
    elif glasses == "Sunglasses":
        d.rectangle(box(11, 11, 16, 14), LENS)
        d.rectangle(box(17, 11, 22, 14), LENS)
    if glasses != "Blank":
        d.line(pts((16, 12), (17, 12)), INK)
    # hair on top
    if top != "NoHair":
        d.chord(box(9, 4, 23, 16), 180, 360, hair)
    if top == "LongHairBun":
        d.ellipse(box(13, 0, 19, 6), hair)
    elif top == "ShortHairShortWaved":
        for x in range(9, 22, 3):
            d.ellipse(box(x, 5, x + 3, 8), hair)
    elif top == "ShortHairFrizzle":
        for x in range(9, 22, 3):
            d.polygon(pts((x, 8), (x + 1.5, 2), (x + 3, 8)), hair)
    return np.asarray(img)


def to_palette_indices(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images (..., 3) drawn from PALETTE -> uint8 palette indices (...)."""
    lookup = {c: i for i, c in enumerate(PALETTE)}
    flat = images.reshape(-1, 3)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    try:
        index = np.array([lookup[tuple(int(v) for v in c)] for c in colours], np.uint8)
    except KeyError as e:
        raise ValueError(f"colour {e} is not in the palette") from None
    return index[inverse.reshape(-1)].reshape(images.shape[:-1])


def from_palette_indices(indices: np.ndarray) -> np.ndarray:
    return np.asarray(PALETTE, np.uint8)[np.asarray(indices)]


assert set(FEATURES["hairColor"]) == set(HAIR) and set(FEATURES["clotheColor"]) == set(CLOTHES)
