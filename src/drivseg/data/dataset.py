"""The generic torch Dataset: (image, mask) pairs of any ``DatasetSource`` -> tensors."""

from __future__ import annotations

import random
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.data.source import DatasetSource, Pair, image_size, read_rgb_image
from drivseg.errors import DataError

BAD_SAMPLE_MODES = ("error", "skip")


class SegmentationDataset(Dataset):
    """Reads a pair, maps raw mask values to train ids through the label spec, transforms both.

    Args:
        pairs: (image, mask) files.
        source: the dataset's layout and label spec.
        transform: an albumentations pipeline (image and mask together) ending in ``ToTensorV2``.
        bad_samples: ``error`` (a file that cannot be read ends the run, naming it) or ``skip`` (the
            sample comes back as ``{"skipped": name, "error": message}`` and ``pad_collate`` drops it).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        source: DatasetSource,
        transform: Optional[Callable] = None,
        bad_samples: str = "error",
    ):
        if bad_samples not in BAD_SAMPLE_MODES:
            raise ValueError(f"bad_samples {bad_samples!r}: expected one of {BAD_SAMPLE_MODES}")
        self.pairs = list(pairs)
        self.source = source
        self.transform = transform
        self.bad_samples = bad_samples

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

    def __getitem__(self, item: Union[int, tuple[int, int]]) -> dict:
        """``item`` is an index, or (index, seed) from ``EpochShuffleSampler``: the seed fixes this
        sample's augmentation whichever worker process loads it."""
        index, seed = item if isinstance(item, tuple) else (item, None)
        try:
            image, mask = self.load(index)
        except DataError as err:
            if self.bad_samples == "error":
                raise
            return {"skipped": self.pairs[index][0].name, "error": str(err)}
        if self.transform is not None:
            if seed is not None and hasattr(self.transform, "set_random_state"):
                self.transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        else:
            image = torch.from_numpy(image).permute(2, 0, 1)
            mask = torch.from_numpy(mask)
        # uint8 images and masks: 4x / 8x less to pass from workers than float32 / int64; the
        # module normalises images and widens masks on the device
        return {
            "image": torch.as_tensor(image).to(torch.uint8),
            "mask": torch.as_tensor(mask).to(torch.uint8),
            "name": self.pairs[index][0].name,
        }


def check_sizes(pairs: Sequence[Pair]) -> None:
    """Compare image and mask sizes from the file headers (cheap) before any worker starts."""
    for image_path, mask_path in pairs:
        image, mask = image_size(image_path), image_size(mask_path, "mask")  # unreadable -> DataError naming it
        if image != mask:
            raise DataError(
                f"mask {mask_path} is {mask[0]}x{mask[1]} but image {image_path.name} is "
                f"{image[0]}x{image[1]} (WxH); a mask must have its image's size"
            )


def pad_collate(samples: list[dict]) -> dict:
    """Stack samples, padding different sizes to the largest (images with 0, masks with 255).

    Samples skipped as unreadable (``--bad-samples skip``) are left out and listed under
    ``"skipped"`` as (file name, reason); a batch may then hold no image at all.
    """
    skipped = [(s["skipped"], s["error"]) for s in samples if "skipped" in s]
    samples = [s for s in samples if "skipped" not in s]
    if not samples:
        return {"image": torch.zeros(0, 3, 1, 1, dtype=torch.uint8), "mask": torch.zeros(0, 1, 1, dtype=torch.uint8),
                "name": [], "skipped": skipped}
    h = max(s["image"].shape[-2] for s in samples)
    w = max(s["image"].shape[-1] for s in samples)
    mh = max(s["mask"].shape[-2] for s in samples)
    mw = max(s["mask"].shape[-1] for s in samples)

    def pad(t: torch.Tensor, th: int, tw: int, value: float) -> torch.Tensor:
        return F.pad(t, (0, tw - t.shape[-1], 0, th - t.shape[-2]), value=value)

    return {
        "image": torch.stack([pad(s["image"], h, w, 0) for s in samples]),
        "mask": torch.stack([pad(s["mask"], mh, mw, IGNORE_INDEX) for s in samples]),
        "name": [s["name"] for s in samples],
        "skipped": skipped,
    }
