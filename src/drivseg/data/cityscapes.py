"""Cityscapes: the official label table, the Cityscapes-19 taxonomy and the gtFine layout.

Layout (as unzipped from ``leftImg8bit_trainvaltest.zip`` + ``gtFine_trainvaltest.zip``)::

    root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png       (official)
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelTrainIds.png  (made by
        cityscapesScripts' createTrainIdLabelImgs.py; accepted too)

Mask choice, per frame and never guessed: ``*_labelIds.png`` is used when it exists, otherwise
``*_labelTrainIds.png``. Both decode to raw *label ids* (train id masks go through the inverse
table), so one label spec (``CITYSCAPES19_SPEC``) covers both and label ids can never be read as
train ids. ``*_gtFine_color.png`` files are display images and are rejected, as is ``gtCoarse/``
(coarse labels are a different benchmark and not read by this source).

Splits: train / val / test. The official ``gtFine/test`` masks hold only what is known without
annotation (ego vehicle, rectification border, out of roi), so every test pixel encodes to 255:
test is optional and only useful for exporting predictions (``train_ids_to_label_ids``).

Sequences: a frame name ``aachen_000000_000019`` is city, sequence number, frame number; frames
sharing ``{city}_{seq}`` (``aachen_000000``) come from one recording and stay in one split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from drivseg.data.label_spec import IGNORE_INDEX, LabelSpec, identity_spec
from drivseg.data.source import DatasetSource, Pair, pair_files, read_index_mask, require_dir
from drivseg.errors import DataError


class CityscapesLabel(NamedTuple):
    """One row of cityscapesScripts ``helpers/labels.py`` (category columns left out)."""

    name: str
    id: int
    train_id: int
    color: tuple[int, int, int]


# cityscapesScripts/cityscapesscripts/helpers/labels.py (github.com/mcordts/cityscapesScripts):
# name, id, trainId, color of the official release.
LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, 255, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, 255, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, 255, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, 255, (0, 0, 0)),
    CityscapesLabel("static", 4, 255, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, 255, (111, 74, 0)),
    CityscapesLabel("ground", 6, 255, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, (244, 35, 232)),
    CityscapesLabel("parking", 9, 255, (250, 170, 160)),
    CityscapesLabel("rail track", 10, 255, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, 255, (180, 165, 180)),
    CityscapesLabel("bridge", 15, 255, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, 255, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, 255, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, (0, 60, 100)),
    CityscapesLabel("caravan", 29, 255, (0, 0, 90)),
    CityscapesLabel("trailer", 30, 255, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, (119, 11, 32)),
    CityscapesLabel("license plate", -1, -1, (0, 0, 142)),
)

# the 19 evaluated classes, ordered by train id
_EVALUATED = sorted((lb for lb in LABELS if 0 <= lb.train_id < IGNORE_INDEX), key=lambda lb: lb.train_id)

CITYSCAPES19_SPEC = LabelSpec(
    name="cityscapes19",
    class_names=tuple(lb.name for lb in _EVALUATED),
    palette=tuple(lb.color for lb in _EVALUATED),
    raw_to_train={lb.id: lb.train_id for lb in _EVALUATED},
    # license plate (id -1) is never drawn into labelIds PNGs, so only ids >= 0 can occur
    void_values=frozenset(lb.id for lb in LABELS if lb.id >= 0 and lb.train_id in (-1, IGNORE_INDEX)),
)
"""Raw Cityscapes label ids (``*_labelIds.png``, KITTI ``semantic/``) -> the 19 train ids."""

CITYSCAPES19_TRAINID_SPEC = identity_spec(
    "cityscapes19_trainids",
    CITYSCAPES19_SPEC.class_names,
    CITYSCAPES19_SPEC.palette,
    void_values=frozenset({IGNORE_INDEX}),
)
"""Masks that already hold train ids 0..18 and 255 (``*_labelTrainIds.png``)."""

# train id -> official label id; 255 (void) -> 0 "unlabeled"; -1 marks values that are no train id
_TRAIN_TO_LABEL_ID = np.full(256, -1, dtype=np.int16)
_TRAIN_TO_LABEL_ID[IGNORE_INDEX] = 0
for _lb in _EVALUATED:
    _TRAIN_TO_LABEL_ID[_lb.train_id] = _lb.id


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map train ids (0..18, 255 = void) to official label ids (uint8, same shape).

    Predictions must be written with label ids for the Cityscapes benchmark server. Void (255)
    becomes 0 ("unlabeled"). Raises ``ValueError`` listing values that are not train ids.
    """
    arr = np.asarray(train_ids)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        bad = sorted(int(v) for v in np.unique(arr[(arr < 0) | (arr > 255)]))
        raise ValueError(f"values {bad[:20]} are not Cityscapes train ids (expected 0..18 or 255)")
    mapped = _TRAIN_TO_LABEL_ID[arr.astype(np.intp, copy=False)]
    if (mapped < 0).any():
        bad = sorted(int(v) for v in np.unique(arr[mapped < 0]))
        raise ValueError(f"values {bad[:20]} are not Cityscapes train ids (expected 0..18 or 255)")
    return mapped.astype(np.uint8)


IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"
COLOR_SUFFIX = "_gtFine_color.png"
LAYOUT = (
    "expected leftImg8bit/{split}/{city}/*_leftImg8bit.png and "
    "gtFine/{split}/{city}/*_gtFine_labelIds.png (or *_gtFine_labelTrainIds.png) under --data-root"
)
_FRAME_RE = re.compile(r"^(?P<city>[a-z_]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_")


def read_cityscapes_mask(path: Path) -> np.ndarray:
    """Read a gtFine mask as raw label ids (H, W) uint8; train id masks are mapped back to ids."""
    path = Path(path)
    raw = read_index_mask(path)
    if not path.name.endswith(TRAIN_IDS_SUFFIX):
        return raw
    try:
        return train_ids_to_label_ids(raw)
    except ValueError as err:
        raise DataError(
            f"mask {path}: {err}; regenerate it with cityscapesScripts' createTrainIdLabelImgs.py "
            f"or delete it so the {LABEL_IDS_SUFFIX} file is used"
        ) from err


def cityscapes_sequence_of(path: Path) -> str:
    """``{city}_{seq}`` of a frame file (``aachen_000000_000019_leftImg8bit.png`` -> ``aachen_000000``)."""
    match = _FRAME_RE.match(Path(path).name)
    if match is None:
        raise DataError(
            f"file {path} is not named like a Cityscapes frame; expected "
            "{city}_{6-digit sequence}_{6-digit frame}_..., e.g. aachen_000000_000019_leftImg8bit.png"
        )
    return f"{match['city']}_{match['seq']}"


def find_cityscapes_pairs(root: Path, split: str) -> list[Pair]:
    """List (image, mask) pairs of one split of the gtFine layout (see module docstring)."""
    root = Path(root)
    if root.name in ("leftImg8bit", "gtFine", "gtCoarse"):
        raise DataError(
            f"--data-root {root} points inside the Cityscapes tree; point it at the parent folder "
            f"that holds leftImg8bit/ and gtFine/ ({LAYOUT})"
        )
    images_dir = require_dir(root / "leftImg8bit" / split, f"Cityscapes {split} image folder", LAYOUT)
    masks_dir = root / "gtFine" / split
    if not masks_dir.is_dir() and (root / "gtCoarse").is_dir():
        raise DataError(
            f"{masks_dir} does not exist but {root / 'gtCoarse'} does: this source reads the fine "
            "annotations only (gtFine_trainvaltest.zip); coarse labels (gtCoarse) are not supported"
        )
    require_dir(masks_dir, f"Cityscapes {split} mask folder", LAYOUT)

    images = sorted(images_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    masks = _pick_masks(masks_dir)
    if not images:
        flat = sorted(images_dir.glob("*.png"))
        hint = f" ({len(flat)} PNGs lie directly in it: city subfolders are missing)" if flat else ""
        raise DataError(f"{images_dir} holds no */*{IMAGE_SUFFIX} files{hint}; {LAYOUT}")
    return pair_files(
        images,
        masks,
        lambda p: p.name[: -len(IMAGE_SUFFIX)],
        _mask_key,
        f"{images_dir} vs {masks_dir}",
    )


def _pick_masks(masks_dir: Path) -> list[Path]:
    """One mask per frame: labelIds when present, else labelTrainIds; colour-only is an error."""
    by_frame: dict[str, Path] = {}
    for path in sorted(masks_dir.glob(f"*/*{TRAIN_IDS_SUFFIX}")):
        by_frame[_mask_key(path)] = path
    for path in sorted(masks_dir.glob(f"*/*{LABEL_IDS_SUFFIX}")):
        by_frame[_mask_key(path)] = path  # labelIds wins over labelTrainIds
    if not by_frame:
        colour = sorted(masks_dir.glob(f"*/*{COLOR_SUFFIX}"))
        coarse = sorted(masks_dir.glob("*/*_gtCoarse_*.png"))
        if colour:
            raise DataError(
                f"{masks_dir} holds only colour masks (e.g. {colour[0].name}); those are for display. "
                f"Training needs *{LABEL_IDS_SUFFIX}: re-extract gtFine_trainvaltest.zip completely"
            )
        if coarse:
            raise DataError(
                f"{masks_dir} holds coarse masks (e.g. {coarse[0].name}); this source reads gtFine "
                "fine annotations only"
            )
        raise DataError(f"{masks_dir} holds no */*{LABEL_IDS_SUFFIX} masks; {LAYOUT}")
    return list(by_frame.values())


def _mask_key(path: Path) -> str:
    name = path.name
    for suffix in (LABEL_IDS_SUFFIX, TRAIN_IDS_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


CITYSCAPES = DatasetSource(
    name="cityscapes",
    label_spec=CITYSCAPES19_SPEC,
    find_pairs=find_cityscapes_pairs,
    # the official test masks are all void (scored on the benchmark server): no test stage here;
    # predict on leftImg8bit/test and write label ids with train_ids_to_label_ids instead
    splits=("train", "val"),
    optional_splits=(),
    read_mask=read_cityscapes_mask,
    sequence_of=cityscapes_sequence_of,
    download_hint=(
        "Cityscapes needs a free account at https://www.cityscapes-dataset.com/downloads/ ; download "
        "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip and unzip both into --data-root so "
        "it holds leftImg8bit/ and gtFine/"
    ),
)
