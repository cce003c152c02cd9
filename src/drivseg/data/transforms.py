"""Albumentations pipelines. Image and mask always go through the same geometric transforms;
masks are resized with nearest neighbour only and padded with the ignore index 255."""

from __future__ import annotations

from typing import Optional, Sequence

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

from drivseg.data.label_spec import IGNORE_INDEX


def train_transform(
    mean: Sequence[float],
    std: Sequence[float],
    crop_size: Optional[Sequence[int]] = None,
    image_scale: float = 1.0,
    scale_range: Sequence[float] = (0.75, 1.5),
    hflip: bool = True,
    color_jitter: float = 0.2,
) -> A.Compose:
    """Scale jitter around ``image_scale``, random crop (padded with 255), flip, colour jitter.

    Without ``crop_size`` there is no scale jitter (samples would differ in size): only the fixed
    ``image_scale`` resize, flip and colour.
    """
    ops: list = []
    if crop_size:
        lo, hi = scale_range
        ops += [
            A.RandomScale(
                scale_limit=(image_scale * lo - 1, image_scale * hi - 1),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                p=1.0,
            ),
            A.PadIfNeeded(*crop_size, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE_INDEX),
            A.RandomCrop(*crop_size),
        ]
    elif image_scale != 1.0:
        ops.append(ScaleBoth(image_scale))
    if hflip:
        ops.append(A.HorizontalFlip(p=0.5))
    if color_jitter:
        ops.append(A.ColorJitter(color_jitter, color_jitter, color_jitter, 0.02, p=0.8))
    ops += [A.Normalize(mean=mean, std=std), ToTensorV2()]
    return A.Compose(ops)


def eval_transform(mean: Sequence[float], std: Sequence[float], image_scale: float = 1.0) -> A.Compose:
    """Normalise only. With ``image_scale`` != 1 the IMAGE is resized but the mask is not: the
    module upsamples logits to the label resolution, so metrics are always at the original size."""
    ops: list = [A.Normalize(mean=mean, std=std), ToTensorV2()]
    if image_scale != 1.0:
        ops.insert(0, ScaleImageOnly(image_scale))
    return A.Compose(ops)


def _scaled(shape: Sequence[int], scale: float) -> tuple[int, int]:
    return max(1, round(shape[1] * scale)), max(1, round(shape[0] * scale))  # cv2 wants (W, H)


class ScaleBoth(A.DualTransform):
    """Resize image (linear) and mask (nearest) by a fixed factor."""

    def __init__(self, scale: float, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.scale = scale

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return cv2.resize(img, _scaled(img.shape, self.scale), interpolation=cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, **params) -> np.ndarray:
        return cv2.resize(mask, _scaled(mask.shape, self.scale), interpolation=cv2.INTER_NEAREST)


class ScaleImageOnly(A.ImageOnlyTransform):
    """Resize the image by a fixed factor and leave the mask at its original resolution."""

    def __init__(self, scale: float, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.scale = scale

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return cv2.resize(img, _scaled(img.shape, self.scale), interpolation=cv2.INTER_LINEAR)
