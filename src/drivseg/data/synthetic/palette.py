"""Base colours of the street, and the helpers that pick and vary them."""

from __future__ import annotations

from typing import Sequence

import numpy as np

RGB = tuple[int, int, int]

# base colours; every use is jittered so no class owns a colour
FACADES = (
    (196, 178, 150), (150, 82, 62), (218, 212, 200), (140, 138, 134), (206, 186, 120),
    (104, 84, 72), (168, 178, 186), (180, 120, 90), (230, 225, 210), (120, 110, 100),
)  # fmt: skip
GLASS = ((38, 46, 56), (70, 86, 104), (96, 112, 128), (52, 48, 44), (120, 132, 140))
PAINT = (
    (235, 235, 232), (24, 24, 28), (160, 162, 166), (150, 24, 28), (30, 52, 120), (40, 70, 50),
    (200, 170, 40), (90, 90, 96), (120, 40, 90), (210, 100, 30), (200, 200, 205), (60, 60, 64),
)  # fmt: skip
CLOTHES = (
    (30, 30, 34), (60, 60, 70), (28, 40, 90), (120, 30, 30), (200, 200, 195), (90, 70, 50),
    (60, 90, 60), (150, 120, 90), (170, 60, 100), (40, 90, 140), (210, 180, 60), (110, 110, 115),
)  # fmt: skip
SKIN = ((224, 184, 150), (190, 140, 100), (140, 96, 64), (96, 64, 44))
LEAVES = ((62, 96, 40), (44, 80, 36), (82, 110, 50), (70, 90, 30), (110, 118, 54), (52, 70, 44))
FENCES = ((140, 100, 60), (50, 55, 60), (220, 220, 215), (60, 90, 60), (110, 110, 100), (150, 130, 110))
POLES = ((110, 110, 112), (40, 60, 50), (100, 80, 60), (160, 160, 158), (45, 45, 48))
PAVEMENTS = ((150, 146, 140), (150, 112, 100), (176, 166, 146), (120, 118, 116))
HAIR = ((30, 24, 20), (90, 60, 30), (160, 130, 80), (60, 60, 60))
SIGN_SHAPES = ("rect", "circle", "triangle", "diamond", "lights")
SKIES = (  # (top, horizon): clear, overcast, hazy
    ((88, 136, 198), (190, 208, 228)), ((168, 174, 186), (222, 224, 228)), ((120, 150, 190), (230, 220, 200)),
)  # fmt: skip


def shade_colour(colour: RGB, factor: float) -> RGB:
    """``colour`` scaled by ``factor`` (< 1 darker, > 1 lighter), clipped to 0..255."""
    return tuple(int(min(255, max(0, c * factor))) for c in colour)  # type: ignore[return-value]


def jitter(rng: np.random.Generator, colour: RGB, amount: float = 16.0) -> RGB:
    """``colour`` with random brightness and per-channel shifts of about ``amount`` grey levels."""
    shift = rng.normal(0, amount) * 0.6  # brightness, shared by the channels
    out = (int(np.clip(c + shift + rng.normal(0, amount * 0.5), 0, 255)) for c in colour)
    return tuple(out)  # type: ignore[return-value]


def pick(rng: np.random.Generator, options: Sequence) -> object:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]
