"""BDD100K semantic segmentation (the "10K Images" + "Semantic Segmentation" downloads).

Layout (bdd100k/doc/source/download.rst)::

    root/images/10k/{train,val,test}/<name>.jpg
    root/labels/sem_seg/masks/{train,val}/<name>.png    uint8 train ids 0..18, 255 = unknown

``root`` is the ``bdd100k/`` folder the zips create. Mask values are the 19 Cityscapes classes in
Cityscapes train id order (bdd100k/doc/source/format.rst: "category_id ranges from 0 ... 255 is
used for unknown"), so the class names and palette are Cityscapes-19's. ``labels/sem_seg/
colormaps`` holds colour PNGs and is rejected. The test split has no masks and is not offered.

The 2018 release (``bdd100k_seg.zip``) is read too::

    root/seg/images/{train,val}/<name>.jpg
    root/seg/labels/{train,val}/<name>_train_id.png

When both exist under ``root`` the current layout (``images/10k``) is used.

Sequences: 10K images are single frames; ``<name>`` is ``<8 hex>-<8 hex>`` as for BDD100K video
clips, and several clips share the first block (e.g. MOT val clips ``b1c81faa-3df17267`` and
``b1c81faa-c80764c5``). The sequence id is that first block: grouping by it can only put more
frames together, never split one clip across train and val.
"""

from __future__ import annotations

from pathlib import Path

from drivseg.data.cityscapes import CITYSCAPES19_SPEC
from drivseg.data.label_spec import IGNORE_INDEX, identity_spec
from drivseg.data.source import DatasetSource, Pair, file_stem, list_images, pair_files, require_dir
from drivseg.errors import DataError

BDD100K_SPEC = identity_spec(
    "bdd100k",
    CITYSCAPES19_SPEC.class_names,
    CITYSCAPES19_SPEC.palette,
    void_values=frozenset({IGNORE_INDEX}),
)

SPLITS = ("train", "val")
LEGACY_MASK_SUFFIX = "_train_id.png"
LAYOUT = (
    "expected images/10k/{split}/*.jpg and labels/sem_seg/masks/{split}/*.png under --data-root "
    "(the bdd100k/ folder of the 10K Images and Semantic Segmentation zips)"
)


def bdd100k_sequence_of(path: Path) -> str:
    """First block of the clip name (``b1c81faa-3df17267.jpg`` -> ``b1c81faa``)."""
    stem = Path(path).name.split(".", 1)[0]
    return stem.split("-", 1)[0]


def find_bdd100k_pairs(root: Path, split: str) -> list[Pair]:
    """List (image, mask) pairs of ``train`` or ``val`` (see module docstring for layouts)."""
    if split not in SPLITS:
        raise DataError(f"BDD100K split {split!r} has no masks; use one of {SPLITS}")
    root = Path(root)
    if (root / "bdd100k").is_dir() and not (root / "images").is_dir():
        raise DataError(f"--data-root {root} holds bdd100k/; point --data-root at {root / 'bdd100k'}")
    if not (root / "images" / "10k").is_dir() and (root / "seg" / "labels").is_dir():
        return _legacy_pairs(root, split)

    images_dir = require_dir(root / "images" / "10k" / split, f"BDD100K {split} image folder", LAYOUT)
    masks_dir = root / "labels" / "sem_seg" / "masks" / split
    colour_dir = root / "labels" / "sem_seg" / "colormaps" / split
    if not masks_dir.is_dir() and colour_dir.is_dir():
        raise DataError(
            f"{masks_dir} does not exist, only the colour masks {colour_dir}; training needs "
            "labels/sem_seg/masks (train ids): re-extract the Semantic Segmentation zip completely"
        )
    require_dir(masks_dir, f"BDD100K {split} mask folder", LAYOUT)
    return _pair(images_dir, masks_dir, "")


def _legacy_pairs(root: Path, split: str) -> list[Pair]:
    fix = "expected seg/images/{split}/*.jpg and seg/labels/{split}/*_train_id.png (2018 layout)"
    images_dir = require_dir(root / "seg" / "images" / split, f"BDD100K {split} image folder", fix)
    masks_dir = require_dir(root / "seg" / "labels" / split, f"BDD100K {split} mask folder", fix)
    return _pair(images_dir, masks_dir, LEGACY_MASK_SUFFIX)


def _pair(images_dir: Path, masks_dir: Path, mask_suffix: str) -> list[Pair]:
    images = list_images(images_dir)
    masks = list_images(masks_dir, mask_suffix or ".png")
    pairs = pair_files(
        images,
        masks,
        file_stem,
        lambda p: p.name[: -len(mask_suffix)] if mask_suffix else p.stem,
        f"{images_dir} vs {masks_dir}",
    )
    if not pairs:
        raise DataError(f"{images_dir} holds no images; {LAYOUT}")
    return pairs


BDD100K = DatasetSource(
    name="bdd100k",
    label_spec=BDD100K_SPEC,
    find_pairs=find_bdd100k_pairs,
    splits=SPLITS,
    optional_splits=(),
    sequence_of=bdd100k_sequence_of,
    download_hint=(
        "BDD100K needs a free account at https://bdd-data.berkeley.edu/ ; download '10K Images' and "
        "'Semantic Segmentation' and unzip both so --data-root (bdd100k/) holds images/10k and "
        "labels/sem_seg/masks"
    ),
)
