"""How a dataset lies on disk: which files pair up in each split and how a mask is decoded.

A ``DatasetSource`` is pure description (no torch). The generic ``SegmentationDataset`` and
``SegmentationDataModule`` turn any source into tensors, so adding a dataset is one file that
builds one ``DatasetSource`` and one line in ``drivseg.data.DATASETS``.
"""

from __future__ import annotations

import struct
import zlib
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Sequence

import numpy as np
from PIL import Image

from drivseg.data.label_spec import LabelSpec
from drivseg.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# (image path, mask path); one sample of a split
Pair = tuple[Path, Path]

# ``DataError.kind`` of file problems, so ``--check-data`` can group them (the error stays a plain
# DataError: entry points print it as one line, also when re-raised from a DataLoader worker)
DECODE, MODE, VALUES, MISSING_FOLDER = "decode", "mode", "values", "missing_folder"

# what PIL raises for a file it cannot decode: truncated or broken data (OSError, also for
# unidentified formats), malformed chunks (SyntaxError), bad header fields (ValueError, struct.error)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)

INDEX_MASK_MODES = ("L", "P", "1", "I;16", "I;16L", "I;16B", "I;16N", "I")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
EXIF_ORIENTATION = 0x0112


def file_error(kind: str, path: Path, message: str, detail: str = "", values: Sequence = ()) -> DataError:
    """A ``DataError`` about one file, tagged with ``kind``, ``path``, a short ``detail`` and the
    offending mask ``values``."""
    err = DataError(message)
    err.kind, err.path, err.detail, err.values = kind, Path(path), detail or message, tuple(values)
    return err


def undecodable(path: Path, what: str, reason: str) -> DataError:
    """The error for a file that exists in the listing but cannot be decoded."""
    path = Path(path)
    if not path.exists():
        detail = "does not exist (moved or deleted after the dataset was listed?)"
    elif path.stat().st_size == 0:
        detail = "is empty (0 bytes)"
    else:
        detail = f"cannot be decoded ({' '.join(reason.split())})"
    return file_error(
        DECODE,
        path,
        f"{what} {path} {detail}: the file is truncated or corrupt; re-extract it from the dataset "
        "archive, or delete the image and its mask",
        detail,
    )


@contextmanager
def opened(path: Path, what: str) -> Iterator[Image.Image]:
    """``Image.open(path)`` for ``what`` ("image" / "mask"): every decode failure inside the block
    becomes a ``DataError`` naming the file. PIL decodes lazily, so a truncated file often passes
    ``Image.open`` and fails only at ``load()`` / ``np.asarray``: do those inside the block."""
    try:
        with Image.open(path) as im:
            yield im
    except DECODE_ERRORS as err:
        raise undecodable(path, what, f"{type(err).__name__}: {err}") from err


def _sixteen_bit_to_uint8(values: np.ndarray) -> np.ndarray:
    # keep the high byte (v >> 8): what PIL itself does for 16-bit RGB(A) PNGs, so every 16-bit
    # image follows one rule; 32-bit "I" images are taken as 16-bit (clipped to 0..65535)
    return (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)


def rgb_array(im: Image.Image, path: Path) -> np.ndarray:
    """An opened image as RGB uint8 (H, W, 3), by the rule of ``read_rgb_image``."""
    if im.mode == "RGB":
        return np.array(im)  # writable: torch warns on read-only arrays
    if im.mode in SIXTEEN_BIT_MODES:
        grey = _sixteen_bit_to_uint8(np.asarray(im))
        return np.repeat(grey[..., None], 3, axis=-1)
    if im.mode == "F":
        raise file_error(
            MODE, path, f"image {path} is a 32-bit float image (mode F), which has no fixed value range; "
            "save it as an 8-bit RGB or grey PNG/JPEG", "mode F (32-bit float): no RGB rule",
        )  # fmt: skip
    # palette transparency is dropped like any alpha; without this PIL warns on every such file
    im.info.pop("transparency", None)
    try:
        return np.array(im.convert("RGB"))
    except ValueError as err:  # a mode PIL cannot convert (e.g. La)
        raise file_error(
            MODE, path, f"image {path} is in mode {im.mode}, which cannot be converted to RGB ({err}); "
            "save it as an 8-bit RGB PNG/JPEG", f"mode {im.mode}: no RGB rule",
        ) from err  # fmt: skip


def read_rgb_image(path: Path) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3), whatever its mode.

    The rule: grey (L) and 1-bit images are replicated to three channels (1-bit: 0 / 255);
    palette (P) images are looked up in their palette; alpha (LA, RGBA, PA, palette transparency)
    is dropped, not composited; 16-bit samples (I;16, I;16B, 16-bit RGB/RGBA PNGs, which PIL opens
    as 8-bit RGB/RGBA by keeping the high byte) become ``v >> 8``, 32-bit ``I`` images likewise
    after clipping to 0..65535; CMYK, YCbCr and other modes are converted by PIL. A float (F)
    image, or a file that cannot be decoded, is a ``DataError`` naming the file.

    The EXIF orientation is ignored: the stored pixel order is returned. Masks carry no
    orientation and are labelled in stored order, so rotating the image alone would misalign it
    with its mask; PIL does not auto-rotate either (``--check-data`` warns about such images).
    """
    with opened(path, "image") as im:
        return rgb_array(im, path)


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag of an opened image (1 = stored order, also when absent or broken).
    For PNGs the EXIF block may follow the pixels: call it after decoding."""
    try:
        return int(im.getexif().get(EXIF_ORIENTATION, 1))
    except (*DECODE_ERRORS, TypeError):
        return 1


def image_size(path: Path, what: str = "image") -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    with opened(path, what) as im:
        return im.size


def read_index_mask(path: Path) -> np.ndarray:
    """Read a single-channel label image (L, P, 1-bit, 16-bit I;16) as raw values (H, W).

    Colour masks are rejected (kind ``MODE``); 16-bit values are kept as they are, so a label
    spec with values above 255 works; 32-bit values outside 0..65535 are rejected.
    """
    with opened(path, "mask") as im:
        if im.mode not in INDEX_MASK_MODES:
            kind = "with alpha" if "A" in im.mode else "float" if im.mode == "F" else "colour"
            raise file_error(
                MODE,
                path,
                f"mask {path} is {im.mode} ({kind}); expected a single-channel index PNG (L, P or "
                "16-bit). Is --data pointing at a colour-coded label folder?",
                f"mode {im.mode} ({kind})",
            )
        # "P" images: the index values are the labels, the palette is only for display
        raw = np.asarray(im)
    if im.mode == "I" and raw.size and (raw.min() < 0 or raw.max() > 65535):
        bad = sorted(int(v) for v in np.unique(raw[(raw < 0) | (raw > 65535)])[:20])
        raise file_error(
            VALUES, path, f"mask {path} has values {bad} outside 0..65535; label values must be 8 or 16 bit",
            f"values {bad}", bad,
        )  # fmt: skip
    return raw


def list_images(folder: Path, suffix: str = "") -> list[Path]:
    """Image files directly in ``folder`` whose names end with ``suffix``, sorted."""
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.name.endswith(suffix)
    )


def require_dir(path: Path, what: str, fix: str) -> Path:
    """Fail early with a message naming the missing folder and how to fix it."""
    if not path.is_dir():
        raise file_error(MISSING_FOLDER, path, f"{what} {path} does not exist; {fix}", "does not exist")
    return path


class Pairing(NamedTuple):
    """One ``pair_files`` call seen by ``report_unpaired``: its unpaired files on each side."""

    where: str
    pairs: int
    images_without_mask: list[Path]
    masks_without_image: list[Path]


# set by ``report_unpaired``; a context variable so other threads keep failing early
_PAIRINGS: ContextVar[Optional[list[Pairing]]] = ContextVar("drivseg_pairings", default=None)


@contextmanager
def report_unpaired() -> Iterator[list[Pairing]]:
    """Inside this block ``pair_files`` records every call (with its unpaired files) in the
    yielded list and returns the complete pairs instead of raising: ``--check-data`` lists every
    problem in one pass, while training keeps failing early."""
    pairings: list[Pairing] = []
    token = _PAIRINGS.set(pairings)
    try:
        yield pairings
    finally:
        _PAIRINGS.reset(token)


def pair_files(
    images: Iterable[Path],
    masks: Iterable[Path],
    image_key: Callable[[Path], str],
    mask_key: Callable[[Path], str],
    where: str,
) -> list[Pair]:
    """Pair images with masks by key; raise listing unpaired files on either side (inside
    ``report_unpaired``: record them and return the complete pairs)."""
    by_key = {mask_key(m): m for m in masks}
    image_by_key = {image_key(i): i for i in images}
    no_mask = sorted(k for k in image_by_key if k not in by_key)
    no_image = sorted(k for k in by_key if k not in image_by_key)
    pairings = _PAIRINGS.get()
    if pairings is not None:
        pairs = len(image_by_key) - len(no_mask)
        unpaired = [image_by_key[k] for k in no_mask], [by_key[k] for k in no_image]
        pairings.append(Pairing(where, pairs, *unpaired))
    elif no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(f"{len(no_mask)} images without a mask (e.g. {image_by_key[no_mask[0]].name})")
        if no_image:
            parts.append(f"{len(no_image)} masks without an image (e.g. {by_key[no_image[0]].name})")
        raise DataError(f"{where}: " + "; ".join(parts) + ". Every image needs exactly one mask.")
    return [(image_by_key[k], by_key[k]) for k in sorted(image_by_key) if k in by_key]


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
