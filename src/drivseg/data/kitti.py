"""KITTI semantic segmentation (``data_semantics.zip``) with a deterministic validation split.

Layout::

    root/training/image_2/000000_10.png ... 000199_10.png   RGB frames
    root/training/semantic/000000_10.png ...                 uint8 Cityscapes label ids
    root/testing/image_2/*.png                               no labels (not a split here)

The devkit README (devkit_semantics) says the masks use the Cityscapes label ids, so masks are
decoded with ``CITYSCAPES19_SPEC``; ``semantic_rgb/`` (colour) is rejected.

Sequences: the 200 training frames are the reference frames (``_10``) of the 200 scenes of the
KITTI stereo/flow 2015 benchmark, so every file id ``xxxxxx`` is its own scene and the sequence id
is that file id. Several scenes were cut from the same raw drive (devkit_scene_flow
``mapping/train_mapping.txt``: line i maps scene i to ``<date> <drive>_sync <frame>``, e.g.
scene 000010 -> 2011_09_26_drive_0009_sync frame 384; empty line: drive not public). When that
file is copied to ``root/mapping/train_mapping.txt``, scenes are grouped by raw drive instead,
so near-duplicate street views cannot land on both sides of the split.

Split: there is no official validation set. A sequence goes to ``val`` when
``crc32(sequence id) % 5 == 0`` (about 20%; crc32 is stable across runs and machines, unlike
``hash``), otherwise to ``train``.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from pathlib import Path

from drivseg.data.cityscapes import CITYSCAPES19_SPEC
from drivseg.data.source import DatasetSource, Pair, file_stem, list_images, pair_files, require_dir
from drivseg.errors import DataError

VAL_EVERY = 5  # 1 in VAL_EVERY sequences (by crc32) is validation
SPLITS = ("train", "val")
MAPPING_FILE = Path("mapping") / "train_mapping.txt"
LAYOUT = (
    "expected training/image_2/*_10.png and training/semantic/*_10.png (from data_semantics.zip) "
    "under --data-root"
)
_SCENE_RE = re.compile(r"^(\d{6})_\d{2}\.png$")


def kitti_split_of(sequence_id: str) -> str:
    """``"val"`` for about 1 in 5 sequence ids (stable crc32), else ``"train"``."""
    return "val" if zlib.crc32(sequence_id.encode("utf-8")) % VAL_EVERY == 0 else "train"


def read_raw_drive_mapping(path: Path) -> dict[str, str]:
    """Parse devkit ``train_mapping.txt`` into scene id (``000010``) -> raw drive name.

    Empty lines (scene not in the public raw data) are left out.
    """
    drives: dict[str, str] = {}
    for index, line in enumerate(Path(path).read_text().splitlines()):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DataError(
                f"{path} line {index + 1} is {line!r}; expected '<date> <drive>_sync <frame>' as in "
                "the KITTI scene flow devkit mapping/train_mapping.txt"
            )
        drives[f"{index:06d}"] = fields[1]
    return drives


def _drive_mapping(path: Path) -> dict[str, str]:
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    return _cached_mapping(path, stamp)


@lru_cache(maxsize=8)
def _cached_mapping(path: Path, stamp: int) -> dict[str, str]:
    # keyed on the modification time so an edited or newly copied mapping file is picked up
    return read_raw_drive_mapping(path)


def kitti_sequence_of(path: Path) -> str:
    """Sequence id of a training frame: its raw drive when the devkit mapping is present, else its
    scene id (``000010_10.png`` -> ``000010``)."""
    path = Path(path)
    match = _SCENE_RE.match(path.name)
    if match is None:
        raise DataError(
            f"file {path} is not named like a KITTI frame; expected <6-digit scene>_<2-digit frame>.png "
            "(e.g. 000010_10.png)"
        )
    scene = match.group(1)
    # path is root/training/{image_2,semantic}/name
    mapping = _drive_mapping(path.parent.parent.parent / MAPPING_FILE)
    return mapping.get(scene, scene)


def find_kitti_pairs(root: Path, split: str) -> list[Pair]:
    """List (image, mask) pairs of ``train`` or ``val`` (both carved from ``training/``)."""
    if split not in SPLITS:
        raise DataError(
            f"KITTI split {split!r} does not exist; use one of {SPLITS} (testing/ has no labels)"
        )
    root = Path(root)
    images_dir = require_dir(root / "training" / "image_2", "KITTI training image folder", LAYOUT)
    masks_dir = root / "training" / "semantic"
    if not masks_dir.is_dir() and (root / "training" / "semantic_rgb").is_dir():
        raise DataError(
            f"{masks_dir} does not exist, only the colour masks semantic_rgb/; training needs "
            "semantic/ (label ids): re-extract data_semantics.zip completely"
        )
    require_dir(masks_dir, "KITTI training mask folder", LAYOUT)
    pairs = pair_files(
        list_images(images_dir), list_images(masks_dir), file_stem, file_stem, f"{images_dir} vs {masks_dir}"
    )
    if not pairs:
        raise DataError(f"{images_dir} holds no images; {LAYOUT}")
    return [pair for pair in pairs if kitti_split_of(kitti_sequence_of(pair[1])) == split]



KITTI = DatasetSource(
    name="kitti",
    label_spec=CITYSCAPES19_SPEC,
    find_pairs=find_kitti_pairs,
    splits=SPLITS,
    optional_splits=(),
    sequence_of=kitti_sequence_of,
    download_hint=(
        "KITTI semantic segmentation: download data_semantics.zip from "
        "https://www.cvlibs.net/datasets/kitti/eval_semseg.php and unzip it into --data-root so it "
        "holds training/image_2 and training/semantic"
    ),
)
