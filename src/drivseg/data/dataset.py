"""The generic torch Dataset: (image, mask) pairs of any ``DatasetSource`` -> tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.data.source import DatasetSource, Pair, read_rgb_image
from drivseg.errors import DataError


class SegmentationDataset(Dataset):
    """Reads a pair, maps raw mask values to train ids through the label spec, transforms both."""

    def __init__(self, pairs: Sequence[Pair], source: DatasetSource, transform: Optional[Callable] = None):
        self.pairs = list(pairs)
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Untransformed (image (H, W, 3) uint8, train-id mask (H, W) uint8)."""
        image_path, mask_path = self.pairs[index]
        image = read_rgb_image(image_path)
        raw = self.source.read_mask(mask_path)
        if raw.shape[:2] != image.shape[:2]:
            raise DataError(
                f"mask {mask_path} is {raw.shape[1]}x{raw.shape[0]} but image {image_path.name} is "
                f"{image.shape[1]}x{image.shape[0]} (WxH); a mask must have its image's size"
            )
        try:
            mask = self.source.label_spec.encode(raw)
        except ValueError as err:
            raise DataError(f"mask {mask_path} {err}; is --data {self.source.name} the right dataset?") from None
        return image, mask

    def __getitem__(self, index: int) -> dict:
        image, mask = self.load(index)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        else:
            image = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
            mask = torch.from_numpy(mask)
        # uint8 masks: 8x less to pass from workers than int64; the module widens them
        return {"image": image, "mask": torch.as_tensor(mask).to(torch.uint8), "name": self.pairs[index][0].name}


def check_sizes(pairs: Sequence[Pair]) -> None:
    """Compare image and mask sizes from the file headers (cheap) before any worker starts."""
    for image_path, mask_path in pairs:
        with Image.open(image_path) as im, Image.open(mask_path) as m:
            if im.size != m.size:
                raise DataError(
                    f"mask {mask_path} is {m.size[0]}x{m.size[1]} but image {image_path.name} is "
                    f"{im.size[0]}x{im.size[1]} (WxH); a mask must have its image's size"
                )


def pad_collate(samples: list[dict]) -> dict:
    """Stack samples, padding different sizes to the largest (images with 0, masks with 255)."""
    h = max(s["image"].shape[-2] for s in samples)
    w = max(s["image"].shape[-1] for s in samples)
    mh = max(s["mask"].shape[-2] for s in samples)
    mw = max(s["mask"].shape[-1] for s in samples)

    def pad(t: torch.Tensor, th: int, tw: int, value: float) -> torch.Tensor:
        return F.pad(t, (0, tw - t.shape[-1], 0, th - t.shape[-2]), value=value)

    return {
        "image": torch.stack([pad(s["image"], h, w, 0.0) for s in samples]),
        "mask": torch.stack([pad(s["mask"], mh, mw, IGNORE_INDEX) for s in samples]),
        "name": [s["name"] for s in samples],
    }
