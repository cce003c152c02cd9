"""How a dataset lies on disk: which files pair up in each split and how a mask is decoded.

A ``DatasetSource`` is pure description (no torch). The generic ``SegmentationDataset`` and
``SegmentationDataModule`` turn any source into tensors, so adding a dataset is one file that
builds one ``DatasetSource`` and one line in ``drivseg.data.DATASETS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
from PIL import Image

from drivseg.data.label_spec import LabelSpec
from drivseg.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# (image path, mask path); one sample of a split
Pair = tuple[Path, Path]


def read_index_mask(path: Path) -> np.ndarray:
    """Read a single-channel label PNG as raw values (H, W). RGB masks are rejected."""
    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16", "I;16B", "1"):
            raise DataError(
                f"mask {path} is {im.mode} (colour); expected a single-channel index PNG. "
                "Is --data pointing at a colour-coded label folder?"
            )
        # "P" images: the index values are the labels, the palette is only for display
        return np.asarray(im)


def read_rgb_image(path: Path) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3)."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # writable: torch warns on read-only arrays
    except OSError as err:
        raise DataError(f"image {path} cannot be read ({err}); re-extract or delete it") from err


def list_images(folder: Path, suffix: str = "") -> list[Path]:
    """Image files directly in ``folder`` whose names end with ``suffix``, sorted."""
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.name.endswith(suffix)
    )


def require_dir(path: Path, what: str, fix: str) -> Path:
    """Fail early with a message naming the missing folder and how to fix it."""
    if not path.is_dir():
        raise DataError(f"{what} {path} does not exist; {fix}")
    return path


def pair_files(
    images: Iterable[Path],
    masks: Iterable[Path],
    image_key: Callable[[Path], str],
    mask_key: Callable[[Path], str],
    where: str,
) -> list[Pair]:
    """Pair images with masks by key; raise listing unpaired files on either side."""
    by_key = {mask_key(m): m for m in masks}
    image_by_key = {image_key(i): i for i in images}
    no_mask = sorted(k for k in image_by_key if k not in by_key)
    no_image = sorted(k for k in by_key if k not in image_by_key)
    if no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(f"{len(no_mask)} images without a mask (e.g. {image_by_key[no_mask[0]].name})")
        if no_image:
            parts.append(f"{len(no_image)} masks without an image (e.g. {by_key[no_image[0]].name})")
        raise DataError(f"{where}: " + "; ".join(parts) + ". Every image needs exactly one mask.")
    return [(image_by_key[k], by_key[k]) for k in sorted(image_by_key)]


def file_stem(path: Path) -> str:
    """Pairing key for layouts where image and mask share a file name up to the extension."""
    return path.stem


def sequence_from_prefix(path: Path) -> str:
    """Sequence id = file name up to the first underscore (CamVid ``0001TP_006690.png``)."""
    return path.name.split("_", 1)[0]


@dataclass(frozen=True)
class DatasetSource:
    """Everything the generic loader needs to know about one dataset's layout and labels.

    Attributes:
        name: registry name (``--data``).
        label_spec: classes and raw -> train id map.
        find_pairs: ``(root, split) -> [(image, mask), ...]``; raises ``DataError`` when the split
            folder is missing or files don't pair up.
        splits: every split the layout knows; ``optional_splits`` may be absent (skipped with a
            message).
        read_mask: decodes a mask file into raw values (H, W).
        sequence_of: video sequence id of a frame, used to keep sequences together in splits.
        default_root: where the data lives when ``--data-root`` is not given (None: required).
        prepare: called once on rank 0 before loading (generate or download); None for nothing.
        download_hint: what to download and where to put it, shown when the root is missing.
    """

    name: str
    label_spec: LabelSpec
    find_pairs: Callable[[Path, str], list[Pair]]
    splits: tuple[str, ...] = ("train", "val", "test")
    optional_splits: tuple[str, ...] = ("test",)
    read_mask: Callable[[Path], np.ndarray] = read_index_mask
    sequence_of: Callable[[Path], str] = sequence_from_prefix
    default_root: Optional[Callable[[], Path]] = None
    prepare: Optional[Callable[[Path], None]] = None
    download_hint: str = ""

    def has_split(self, root: Path, split: str) -> bool:
        """True when ``split`` can be listed under ``root`` (used to skip optional splits)."""
        try:
            return bool(self.find_pairs(root, split))
        except DataError:
            return False
