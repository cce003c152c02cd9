"""Albumentations pipelines. Image and mask always go through the same geometric transforms;
masks are resized with nearest neighbour only and padded with the ignore index 255.

A train pipeline is: scale jitter + pad + crop (from ``--image-scale``, ``--scale-range``,
``--crop-size``), then the augmentation named by ``--augment`` (a YAML file in albumentations'
own ``to_dict`` format, ``configs/augment/<name>.yaml`` or a path), then conversion to tensors.
Images leave the pipeline as uint8 (B, 3, H, W): 4x less to pass from DataLoader workers than
float32, and normalised on the device by the LightningModule (``normalize``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError
from drivseg.paths import configs_dir

AUGMENT_DIR = configs_dir() / "augment"
DEFAULT_AUGMENT = "default"


def augment_names() -> list[str]:
    """The named augmentation pipelines (``configs/augment/*.yaml``)."""
    return sorted(p.stem for p in AUGMENT_DIR.glob("*.yaml"))


def augment_path(name_or_path: str) -> Path:
    """``--augment NAME`` -> ``configs/augment/NAME.yaml``; a path to a YAML file is taken as is."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise ConfigError(f"--augment {name_or_path}: no such file")
        return path
    named = AUGMENT_DIR / f"{name_or_path}.yaml"
    if not named.is_file():
        raise ConfigError(
            f"--augment {name_or_path!r}: unknown pipeline; named pipelines: {', '.join(augment_names())} "
            f"(files in {AUGMENT_DIR}), or give the path of an albumentations YAML file"
        )
    return named


def load_augment(name_or_path: str) -> A.BaseCompose:
    """Load an augmentation pipeline and check it keeps masks exact (see ``check_mask_safe``)."""
    path = augment_path(name_or_path)
    try:
        pipeline = A.load(str(path), data_format="json" if path.suffix == ".json" else "yaml")
    except Exception as err:  # albumentations raises several types for a malformed file
        raise ConfigError(f"--augment {path}: not an albumentations pipeline ({type(err).__name__}: {err})") from None
    if not isinstance(pipeline, A.BaseCompose):
        pipeline = A.Compose([pipeline])
    check_mask_safe(pipeline, path)
    return pipeline


def _walk(transform) -> list:
    if isinstance(transform, A.BaseCompose):
        return [t for child in transform.transforms for t in _walk(child)]
    return [transform]


def check_mask_safe(pipeline: A.BaseCompose, where: Union[str, Path] = "pipeline") -> None:
    """Refuse ops that would blend mask values: a mask interpolated between labels invents classes,
    and border pixels filled with anything but 255 become a real class."""
    for op in _walk(pipeline):
        name = type(op).__name__
        interpolation = getattr(op, "mask_interpolation", cv2.INTER_NEAREST)
        if interpolation not in (cv2.INTER_NEAREST, cv2.INTER_NEAREST_EXACT):
            raise ConfigError(
                f"--augment {where}: {name} resizes masks with interpolation {interpolation}; masks must use "
                f"nearest neighbour (set mask_interpolation: 0 for {name})"
            )
        fill = getattr(op, "fill_mask", IGNORE_INDEX)
        if fill is not None and np.any(np.asarray(fill) != IGNORE_INDEX):
            raise ConfigError(
                f"--augment {where}: {name} fills new mask pixels with {fill}; they must be the ignore "
                f"index {IGNORE_INDEX} (set fill_mask: {IGNORE_INDEX} for {name})"
            )


def train_transform(
    crop_size: Optional[Sequence[int]] = None,
    image_scale: float = 1.0,
    scale_range: Sequence[float] = (0.75, 1.5),
    augment: Optional[A.BaseCompose] = None,
) -> A.Compose:
    """Scale jitter around ``image_scale``, random crop (padded with 255), then ``augment``.

    Without ``crop_size`` there is no scale jitter (samples would differ in size): only the fixed
    ``image_scale`` resize before the augmentation.
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
    if augment is not None:
        ops.append(augment)
    ops.append(ToTensorV2())
    return A.Compose(ops)


def eval_transform(image_scale: float = 1.0) -> A.Compose:
    """Tensors only. With ``image_scale`` != 1 the IMAGE is resized but the mask is not: the module
    upsamples logits to the label resolution, so metrics are always at the original size."""
    ops: list = [ToTensorV2()]
    if image_scale != 1.0:
        ops.insert(0, ScaleImageOnly(image_scale))
    return A.Compose(ops)


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, H, W) -> float in [0, 1]; float images are returned unchanged."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 1] float) images -> ``(x - mean) / std`` with (1, 3, 1, 1) statistics, on their device."""
    return (to_unit_float(images) - mean) / std


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
