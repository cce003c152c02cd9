"""Lyft-Udacity Perception Challenge (2018): CARLA 0.8 frames reduced to other / road / vehicle.

Layout: ``CameraRGB/*.png`` and ``CameraSeg/*.png`` with the same names, either directly under
--data-root (the challenge's ``Train/`` folder, frames ``0.png`` ... ``999.png``) or in any
sub-folders (the Kaggle copy ``dataA/dataA/CameraRGB`` ... ``dataE/dataE/CameraRGB``, frames like
``02_00_000.png``); every ``CameraRGB`` folder below the root is used with its sibling ``CameraSeg``.

Labels: 800x600 RGB PNGs with the CARLA 0.8 semantic tag in the RED channel (CARLA
Docs/cameras_and_sensors.md; the challenge's table): 0 None, 1 Buildings, 2 Fences, 3 Other,
4 Pedestrians, 5 Poles, 6 RoadLines, 7 Roads, 8 Sidewalks, 9 Vegetation, 10 Vehicles, 11 Walls,
12 TrafficSigns. Other tag values (e.g. CARLA 0.9's 13+) are out of spec and reported.

Reduction (the challenge's ``preprocess_labels``): road = Roads + RoadLines, vehicle = Vehicles,
everything else = other. The camera sees the ego car's hood in the bottom rows; the challenge
relabels Vehicles pixels in rows >= 496 (of 600) as None, so they count as "other". ``read_mask``
does this with the raw value ``EGO_HOOD``; the row is ``hood_row`` of ``lyft_carla_source`` and is
scaled to frames stored at another height (row r of an H-row mask is hood when r * 600 / H >= 496).

Sequences: the challenge has no official split and its frames are consecutive simulator frames,
so neighbouring frames are near duplicates. A name ``<prefix>_<number>`` belongs to sequence
``<prefix>``, a plain number to no prefix; within a prefix, consecutive frame numbers are grouped
in blocks of ``block_size`` (default 100) and a block is the unit kept together by the split. The
sub-folder (dataA ... dataE) is NOT part of the id: those copies are the same drives offset by a
fraction of a second, so equal names must land in the same split.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from drivseg.data.folder import split_by_sequence
from drivseg.data.label_spec import LabelSpec
from drivseg.data.source import DatasetSource, Pair, list_images, pair_files, require_dir, undecodable
from drivseg.errors import DataError

# CARLA 0.8 tags (red channel)
CARLA_TAGS = (
    "None", "Buildings", "Fences", "Other", "Pedestrians", "Poles", "RoadLines",
    "Roads", "Sidewalks", "Vegetation", "Vehicles", "Walls", "TrafficSigns",
)  # fmt: skip
ROAD_LINES, ROADS, VEHICLES = 6, 7, 10
# not a CARLA tag: read_mask writes it for Vehicles pixels of the ego hood
EGO_HOOD = 100

FRAME_HEIGHT = 600  # the challenge's frames are 800x600
HOOD_ROW = 496  # first hood row in a 600-row frame (the challenge's preprocess_labels)
DEFAULT_BLOCK_SIZE = 100
DEFAULT_VAL_FRACTION = 0.2

LYFT_CARLA_SPEC = LabelSpec(
    name="lyft_carla",
    class_names=("other", "road", "vehicle"),
    palette=((70, 70, 70), (128, 64, 128), (0, 0, 142)),
    raw_to_train={
        **{tag: 0 for tag in range(len(CARLA_TAGS))},
        ROAD_LINES: 1,
        ROADS: 1,
        VEHICLES: 2,
        EGO_HOOD: 0,
    },
)

_LAYOUT = (
    "expected CameraRGB/*.png + CameraSeg/*.png (same names) under --data-root or its sub-folders "
    "(e.g. Train/CameraRGB, or dataA/dataA/CameraRGB ... from the Kaggle copy)"
)
_NAME = re.compile(r"^(?:(?P<prefix>.*)_)?(?P<frame>\d+)$")


def first_hood_row(height: int, hood_row: int = HOOD_ROW) -> int:
    """First mask row that belongs to the hood, for a mask ``height`` rows high."""
    return -(-hood_row * height // FRAME_HEIGHT)  # ceil without floats


def read_lyft_mask(path: Path, hood_row: int = HOOD_ROW) -> np.ndarray:
    """CARLA tags (H, W) uint8 from the red channel, with hood Vehicles pixels set to ``EGO_HOOD``."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey masks come back with red == grey
    if bgr is None:
        raise undecodable(path, "mask", "OpenCV could not read it as an image")
    tags = np.ascontiguousarray(bgr[..., 2])
    hood = tags[first_hood_row(tags.shape[0], hood_row) :]  # a view: edits land in ``tags``
    hood[hood == VEHICLES] = EGO_HOOD
    return tags


def lyft_sequence_of(path: Path, block_size: int = DEFAULT_BLOCK_SIZE) -> str:
    """``<prefix>/<block>`` for ``<prefix>_<frame>`` names, ``/<block>`` for plain frame numbers."""
    match = _NAME.match(path.stem)
    if match is None:
        return path.stem  # no frame number: a sequence of its own
    return f"{match['prefix'] or ''}/{int(match['frame']) // block_size}"


def find_all_lyft_pairs(root: Path) -> list[Pair]:
    """Every (CameraRGB, CameraSeg) pair under ``root``; unpaired files are a ``DataError``."""
    root = require_dir(Path(root), "data root", _LAYOUT)
    rgb_dirs = sorted(d for d in root.rglob("CameraRGB") if d.is_dir())  # root/CameraRGB included
    if not rgb_dirs:
        raise DataError(f"no CameraRGB folder under {root}; {_LAYOUT}")
    pairs: list[Pair] = []
    for rgb_dir in rgb_dirs:
        seg_dir = require_dir(rgb_dir.parent / "CameraSeg", "mask folder", _LAYOUT)
        pairs += pair_files(list_images(rgb_dir), list_images(seg_dir), _stem, _stem, f"{rgb_dir} vs {seg_dir}")
    if not pairs:
        raise DataError(f"{', '.join(map(str, rgb_dirs))} hold(s) no images; {_LAYOUT}")
    return pairs


def find_lyft_pairs(
    root: Path,
    split: str,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> list[Pair]:
    """Pairs of ``split`` (train / val) from the deterministic sequence-keeping split."""
    return split_by_sequence(
        find_all_lyft_pairs(root),
        split,
        val_fraction,
        partial(lyft_sequence_of, block_size=block_size),
        f"Lyft-CARLA data under {root}",
    )


def _stem(path: Path) -> str:
    return path.stem


def lyft_carla_source(
    hood_row: int = HOOD_ROW,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> DatasetSource:
    """The Lyft-CARLA source; ``hood_row`` is the first hood row of a 600-row frame."""
    return DatasetSource(
        name="lyft_carla",
        label_spec=LYFT_CARLA_SPEC,
        find_pairs=partial(find_lyft_pairs, val_fraction=val_fraction, block_size=block_size),
        splits=("train", "val"),
        optional_splits=(),
        read_mask=partial(read_lyft_mask, hood_row=hood_row),
        sequence_of=partial(lyft_sequence_of, block_size=block_size),
        download_hint=(
            "the Lyft-Udacity challenge data (CARLA) is on Kaggle as kumaresanmanickavelu/"
            "lyft-udacity-challenge; extract it and point --data-root at the folder holding "
            "CameraRGB/ + CameraSeg/ (or dataA ... dataE)"
        ),
    )


LYFT_CARLA = lyft_carla_source()
