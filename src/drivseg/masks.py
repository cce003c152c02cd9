"""Class-id masks on disk: palette PNGs whose pixel values are class ids (predict.py, cv.py's OOF masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from drivseg.data.label_spec import LabelSpec
from drivseg.errors import DataError


def save_index_mask(mask: np.ndarray, spec: LabelSpec, path: Path) -> None:
    """A palette PNG: pixel values are class ids, the palette shows them in the dataset's colours."""
    data = np.ascontiguousarray(mask, dtype=np.uint8).tobytes()
    image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), data)
    image.putpalette([v for colour in spec.palette for v in colour])
    image.save(path)


def read_index_mask_png(path: Path) -> np.ndarray:
    """The class ids (H, W) uint8 of a mask written by ``save_index_mask`` (the palette is ignored)."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise DataError(f"mask {path} is {im.mode}; expected a palette (P) or grey (L) class-id PNG")
            return np.array(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"mask {path} cannot be read ({err}); delete it and predict it again") from None
