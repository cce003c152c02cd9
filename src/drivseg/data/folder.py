"""The "folder" dataset: any data laid out as ``images/`` + ``masks/`` + ``classes.yaml``.

Layout (mask and image share a stem; masks are PNG)::

    root/classes.yaml
    root/images/<name>.jpg  root/masks/<name>.png            one pool, split by ``val_fraction``
  or
    root/images/train/  root/masks/train/  root/images/val/  root/masks/val/  [images/test/ masks/test/]

``classes.yaml`` for index masks (pixel value = class)::

    classes: [road, car, background]     # train id i is classes[i]
    values: [1, 2, 0]                    # the mask value of each class
    void: [255]                          # optional: mask values to ignore
    palette: [[128, 64, 128], ...]       # optional: display colours

or for colour-coded RGB masks::

    classes: [road, car, background]
    colors: [[128, 64, 128], [0, 0, 142], [70, 70, 70]]
    void_colors: [[0, 0, 0]]             # optional: colours to ignore

plus optionally ``val_fraction: 0.2`` (used only without split folders).

Sequences: a frame's sequence is its file name up to the first underscore (``seqA_000123.png``
-> ``seqA``); a name without an underscore is a sequence of its own. Without split folders, whole
sequences go to val until ``val_fraction`` of the frames is reached, in an order fixed by a hash of
the sequence id, so the same files always give the same split.

This module also holds two helpers the other colour-coded / self-split datasets use:
``ColourMaskReader`` (RGB label PNG -> raw ids through a 2^24 lookup table) and
``split_by_sequence``.
"""

from __future__ import annotations

import colorsys
import sys
import zlib
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import cv2
import numpy as np
import yaml

from drivseg.data.label_spec import LabelSpec
from drivseg.data.source import (
    VALUES,
    DatasetSource,
    Pair,
    file_error,
    list_images,
    pair_files,
    read_index_mask,
    require_dir,
    sequence_from_prefix,
    undecodable,
)
from drivseg.errors import ConfigError, DataError

CLASSES_FILE = "classes.yaml"
DEFAULT_VAL_FRACTION = 0.2
_ALLOWED_KEYS = ("classes", "values", "void", "palette", "colors", "void_colors", "val_fraction")
_LAYOUT = (
    "expected root/images/ + root/masks/ (same stems) and root/classes.yaml, optionally with "
    "split folders images/train, images/val [images/test] and the same under masks/"
)
_YAML_EXAMPLE = "classes: [road, car, background]\nvalues: [1, 2, 0]\nvoid: [255]"

# ---------------------------------------------------------------------------------------------
# colour-coded masks


_UNKNOWN = 255  # raw id written for colours outside the table; real ids are 0..254


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) int32 ``R << 16 | G << 8 | B``."""
    return (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]


def pack_bgr(bgr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR as OpenCV reads it -> (H, W) ``R << 16 | G << 8 | B``."""
    if sys.byteorder != "little":
        return pack_rgb(bgr[..., ::-1])
    # B, G, R, 0 bytes read as one little-endian uint32 are the packed value: 1.5 ms instead of
    # 9 ms of shifts for 2048x1024
    bgra = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = 0
    return bgra.view(np.uint32)[..., 0]


class ColourMaskReader:
    """Reads an RGB label PNG and maps each colour to its raw id: its position in ``colours``.

    The map is one gather through a 2^24-entry uint8 table (16 MB, built on first use, not
    pickled to DataLoader workers), a few ms for a 2048x1024 mask on top of the PNG decode.
    """

    def __init__(self, colours: Sequence[Sequence[int]], what: str) -> None:
        self.colours = tuple(tuple(int(c) for c in colour) for colour in colours)
        if len(self.colours) >= _UNKNOWN:
            raise ValueError(f"{what}: {len(self.colours)} colours; at most {_UNKNOWN - 1} are supported")
        if len(set(self.colours)) != len(self.colours):
            raise ValueError(f"{what}: colours are not unique")
        self.what = what
        self._table: Optional[np.ndarray] = None

    def __getstate__(self) -> dict[str, Any]:
        # workers rebuild the table on first use instead of receiving 16 MB each
        return {**self.__dict__, "_table": None}

    def table(self) -> np.ndarray:
        """The packed-RGB -> raw id table; unknown colours map to 255."""
        if self._table is None:
            table = np.full(1 << 24, _UNKNOWN, dtype=np.uint8)
            table[pack_rgb(np.asarray(self.colours, dtype=np.uint8))] = np.arange(len(self.colours))
            self._table = table
        return self._table

    def decode(self, rgb: np.ndarray, path: Path) -> np.ndarray:
        """(H, W, 3) RGB -> (H, W) uint8 raw ids; a colour outside the table is a ``DataError``."""
        return self._lookup(pack_rgb(rgb), path)

    def __call__(self, path: Path) -> np.ndarray:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # ~2x faster than PIL for large PNGs
        if bgr is None:
            raise undecodable(path, "mask", "OpenCV could not read it as an image")
        return self._lookup(pack_bgr(bgr), path)

    def _lookup(self, packed: np.ndarray, path: Path) -> np.ndarray:
        raw = np.take(self.table(), packed)  # np.take: ~2x faster than fancy indexing here
        if (raw == _UNKNOWN).any():
            bad = np.unique(packed[raw == _UNKNOWN])
            colours = [((int(v) >> 16) & 255, (int(v) >> 8) & 255, int(v) & 255) for v in bad[:20]]
            shown = colours[:8]
            raise file_error(
                VALUES,
                path,
                f"mask {path} has {bad.size} colour(s) outside {self.what}, e.g. {shown}; "
                f"expected only {list(self.colours)[:12]}{' ...' if len(self.colours) > 12 else ''}. "
                "Is it a colour-coded mask of this dataset (not an index mask or a resized JPEG)?",
                f"{bad.size} colour(s) outside {self.what}, e.g. {shown}",
                colours,
            )
        return raw


# ---------------------------------------------------------------------------------------------
# splits made by this repo


def split_by_sequence(
    pairs: Sequence[Pair],
    split: str,
    val_fraction: float,
    sequence_of: Callable[[Path], str],
    where: str,
) -> list[Pair]:
    """Deterministic train/val split that keeps every sequence in one split.

    Sequences (``sequence_of(image path)``) are ordered by CRC32 of their id and moved to val
    until at least ``val_fraction`` of the frames are there; at least one stays in train.
    """
    if split not in ("train", "val"):
        raise DataError(f"{where}: split '{split}' does not exist; this dataset only has train and val")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"{where}: val_fraction is {val_fraction}; expected a number between 0 and 1")
    by_sequence: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_sequence[sequence_of(pair[0])].append(pair)
    if len(by_sequence) < 2:
        raise DataError(
            f"{where}: all {len(pairs)} frames belong to one sequence ({next(iter(by_sequence), '-')}), "
            "so no split can keep sequences together; add frames of other sequences, or split the "
            "frames into train and val folders yourself where the layout allows it"
        )
    order = sorted(by_sequence, key=lambda s: (zlib.crc32(s.encode()), s))
    target = val_fraction * len(pairs)
    val: set[str] = set()
    count = 0
    for sequence in order[:-1]:
        if count >= target:
            break
        val.add(sequence)
        count += len(by_sequence[sequence])
    chosen = [p for s, ps in by_sequence.items() if (s in val) == (split == "val") for p in ps]
    return sorted(chosen)


# ---------------------------------------------------------------------------------------------
# classes.yaml


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


def _int_list(path: Path, key: str, value: Any, low: int, high: int) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _fail(path, f"'{key}' is {value!r}; expected a list of integers, e.g. {key}: [0, 1, 2]")
    bad = [v for v in value if not low <= v <= high]
    if bad:
        raise _fail(path, f"'{key}' has {bad} outside {low}..{high}")
    if len(set(value)) != len(value):
        raise _fail(path, f"'{key}' lists a value twice: {value}")
    return value


def _colour_list(path: Path, key: str, value: Any) -> list[tuple[int, int, int]]:
    example = f"{key}: [[128, 64, 128], [0, 0, 142]]"
    if not isinstance(value, list):
        raise _fail(path, f"'{key}' is {value!r}; expected a list of [R, G, B], e.g. {example}")
    colours = []
    for item in value:
        ok = isinstance(item, list) and len(item) == 3 and all(isinstance(c, int) for c in item)
        if not ok or not all(0 <= c <= 255 for c in item):
            raise _fail(path, f"'{key}' has {item!r}; expected [R, G, B] with 0..255 each, e.g. {example}")
        colours.append((item[0], item[1], item[2]))
    if len(set(colours)) != len(colours):
        raise _fail(path, f"'{key}' lists a colour twice: {colours}")
    return colours


def default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """``n`` well-separated display colours (golden-ratio hues)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(out)


def load_folder_spec(path: Path) -> tuple[LabelSpec, Callable[[Path], np.ndarray], float]:
    """Read and validate ``classes.yaml`` -> (label spec, mask reader, val fraction)."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; {_LAYOUT}. A minimal {CLASSES_FILE}:\n{_YAML_EXAMPLE}")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise _fail(path, f"is not valid YAML ({err})") from None
    if not isinstance(config, dict):
        raise _fail(path, f"expected a mapping with keys {_ALLOWED_KEYS}, e.g.\n{_YAML_EXAMPLE}")
    unknown = sorted(set(config) - set(_ALLOWED_KEYS))
    if unknown:
        raise _fail(path, f"unknown key(s) {unknown}; allowed keys are {list(_ALLOWED_KEYS)}")
    names = config.get("classes")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise _fail(path, f"'classes' is {names!r}; expected a non-empty list of class names")
    if len(set(names)) != len(names):
        raise _fail(path, f"'classes' lists a name twice: {names}")
    val_fraction = config.get("val_fraction", DEFAULT_VAL_FRACTION)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise _fail(path, f"'val_fraction' is {val_fraction!r}; expected a number between 0 and 1")

    has_values, has_colours = "values" in config, "colors" in config
    if has_values == has_colours:
        raise _fail(path, "give exactly one of 'values' (index masks) or 'colors' (RGB masks)")
    name = path.parent.name or "folder"
    if has_values:
        if "void_colors" in config:
            raise _fail(path, "'void_colors' goes with 'colors'; with 'values' use 'void'")
        values = _int_list(path, "values", config["values"], 0, 65535)
        void = _int_list(path, "void", config.get("void", []), 0, 65535)
        if len(values) != len(names):
            raise _fail(path, f"{len(names)} classes but {len(values)} values; give one value per class")
        if set(values) & set(void):
            raise _fail(path, f"values {sorted(set(values) & set(void))} are both a class and void")
        palette = default_palette(len(names))
        if "palette" in config:
            palette = tuple(_colour_list(path, "palette", config["palette"]))
            if len(palette) != len(names):
                raise _fail(path, f"{len(names)} classes but {len(palette)} palette colours")
        spec = LabelSpec(name, tuple(names), palette, {v: i for i, v in enumerate(values)}, frozenset(void))
        return spec, read_index_mask, float(val_fraction)

    for key in ("void", "palette"):
        if key in config:
            raise _fail(path, f"'{key}' goes with 'values'; with 'colors' use 'void_colors' (colors are the palette)")
    colours = _colour_list(path, "colors", config["colors"])
    void_colours = _colour_list(path, "void_colors", config.get("void_colors", []))
    if len(colours) != len(names):
        raise _fail(path, f"{len(names)} classes but {len(colours)} colors; give one colour per class")
    if set(colours) & set(void_colours):
        raise _fail(path, f"colours {sorted(set(colours) & set(void_colours))} are both a class and void")
    if len(colours) + len(void_colours) > 254:
        raise _fail(path, "more than 254 colours (classes + void) are not supported")
    n = len(colours)
    spec = LabelSpec(
        name,
        tuple(names),
        tuple(colours),
        {i: i for i in range(n)},
        frozenset(range(n, n + len(void_colours))),
    )
    reader = ColourMaskReader(colours + void_colours, f"the colours of {path}")
    return spec, reader, float(val_fraction)


# ---------------------------------------------------------------------------------------------
# layout


def _stem(path: Path) -> str:
    return path.stem


def find_folder_pairs(root: Path, split: str, val_fraction: float = DEFAULT_VAL_FRACTION) -> list[Pair]:
    """(image, mask) pairs of ``split`` from split folders, or from one pool split by sequence."""
    root = Path(root)
    images = require_dir(root / "images", "image folder", _LAYOUT)
    masks = require_dir(root / "masks", "mask folder", _LAYOUT)
    if (images / "train").is_dir():
        split_images = require_dir(images / split, f"{split} image folder", _LAYOUT)
        split_masks = require_dir(masks / split, f"{split} mask folder", _LAYOUT)
        pairs = pair_files(
            list_images(split_images), list_images(split_masks), _stem, _stem, f"{split_images} vs {split_masks}"
        )
        if not pairs:
            raise DataError(f"split folder {split_images} holds no images; check --data-root")
        return pairs
    pairs = pair_files(list_images(images), list_images(masks), _stem, _stem, f"{images} vs {masks}")
    if not pairs:
        raise DataError(f"image folder {images} holds no images; {_LAYOUT}")
    if split == "test":
        raise DataError(f"{images} has no test/ split folder (test images need images/test + masks/test)")
    return split_by_sequence(pairs, split, val_fraction, sequence_from_prefix, f"{images}")


def folder_source(root: Path) -> DatasetSource:
    """A ``DatasetSource`` for ``root`` built from its ``classes.yaml`` (validated here)."""
    root = Path(root).expanduser()
    spec, reader, val_fraction = load_folder_spec(root / CLASSES_FILE)
    return DatasetSource(
        name="folder",
        label_spec=spec,
        find_pairs=partial(find_folder_pairs, val_fraction=val_fraction),
        splits=("train", "val", "test"),
        optional_splits=("test",),
        read_mask=reader,
        sequence_of=sequence_from_prefix,
        default_root=partial(Path, str(root)),
        download_hint=f"{_LAYOUT}. A minimal {CLASSES_FILE}:\n{_YAML_EXAMPLE}",
    )
