"""Image-only finishing of a rendered frame: textures, clouds, uneven light, sensor noise and blur."""

from __future__ import annotations

import cv2
import numpy as np

from drivseg.data.synthetic.labels import (
    BICYCLIST,
    BUILDING,
    CAR,
    FENCE,
    PAVEMENT,
    PEDESTRIAN,
    POLE,
    ROAD,
    SIGN,
    SKY,
    TREE,
)
from drivseg.data.synthetic.style import SceneStyle

# per-class texture strength (grey levels): fine grain and blotches; leaves are busy, sky is smooth
_FINE = np.zeros(256, np.float32)
_BLOTCH = np.zeros(256, np.float32)
for _cls, _fine, _blotch in (
    (SKY, 1.5, 3), (BUILDING, 4, 6), (POLE, 3, 2), (ROAD, 5, 4), (PAVEMENT, 5, 5), (TREE, 20, 14),
    (SIGN, 2, 2), (FENCE, 6, 5), (CAR, 3, 3), (PEDESTRIAN, 4, 3), (BICYCLIST, 4, 3),
):  # fmt: skip
    _FINE[_cls], _BLOTCH[_cls] = _fine, _blotch


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Low-frequency noise (H, W), roughly unit variance: blotches, clouds, uneven light."""
    gh, gw = max(2, round(height / cell) + 2), max(2, round(width / cell) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def finish(image: np.ndarray, mask: np.ndarray, style: SceneStyle, rng: np.random.Generator) -> np.ndarray:
    """Textures, clouds, uneven light, camera noise and blur (the mask is untouched)."""
    h, w = mask.shape
    img = image.astype(np.float32)
    grain = _FINE[mask] * rng.standard_normal((h, w)).astype(np.float32)
    blotch = _BLOTCH[mask] * _smooth_noise(rng, h, w, max(3.0, h / 30))
    clouds = np.maximum(_smooth_noise(np.random.default_rng(style.cloud_seed), h, w, h / 5), 0)
    img += (grain + blotch + (mask == SKY) * style.clouds * 45 * clouds)[..., None]
    light = 1 + 0.07 * _smooth_noise(rng, h, w, h / 2)
    gain = style.exposure * float(rng.uniform(0.95, 1.05))
    img = img * light[..., None] * gain * np.asarray(style.tint, np.float32)
    img += rng.normal(0, style.noise, img.shape).astype(np.float32)
    if style.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), style.blur)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
