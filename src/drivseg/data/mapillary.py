"""Mapillary Vistas v1.2: 65 classes, or reduced to the 19 Cityscapes classes.

Layout (the official archive; v2.0 archives keep v1.2 labels in ``<split>/v1.2/labels``)::

    training/images/<id>.jpg     training/labels/<id>.png
    validation/images/<id>.jpg   validation/labels/<id>.png
    testing/images/<id>.jpg      (no public labels)

Label PNGs are palette ("P") images whose pixel INDEX is the label id of ``config.json``; RGB
colour-coded copies (e.g. after a tool dropped the palette) are mapped back to ids through the
config colours. Ids 0..64 are the 65 evaluated classes, 65 is "unlabeled" (void -> 255).

Splits: the official ones (train = training, val = validation); testing has no labels, so the
optional test split is reported absent. Sequences: Vistas images are independent street-level
photos from many users and devices; the files carry no sequence id, so ``sequence_of`` makes
every image its own sequence (the repo never re-splits Vistas).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from drivseg.data.cityscapes import CITYSCAPES19_SPEC
from drivseg.data.folder import ColourMaskReader
from drivseg.data.label_spec import LabelSpec
from drivseg.data.source import DatasetSource, Pair, file_stem, list_images, opened, pair_files, require_dir
from drivseg.errors import DataError


class MapillaryLabel(NamedTuple):
    """One entry of the v1.2 ``config.json`` ``labels`` list (its position is the label id)."""

    name: str
    readable: str
    color: tuple[int, int, int]
    evaluate: bool


# config_v1.2.json ``labels`` in file order (name, readable, color, evaluate); the config ships
# with the dataset, this copy follows facebookresearch/Mask2Former
# mask2former/data/datasets/register_mapillary_vistas.py, which embeds it verbatim.
LABELS: tuple[MapillaryLabel, ...] = (
    MapillaryLabel("animal--bird", "Bird", (165, 42, 42), True),
    MapillaryLabel("animal--ground-animal", "Ground Animal", (0, 192, 0), True),
    MapillaryLabel("construction--barrier--curb", "Curb", (196, 196, 196), True),
    MapillaryLabel("construction--barrier--fence", "Fence", (190, 153, 153), True),
    MapillaryLabel("construction--barrier--guard-rail", "Guard Rail", (180, 165, 180), True),
    MapillaryLabel("construction--barrier--other-barrier", "Barrier", (90, 120, 150), True),
    MapillaryLabel("construction--barrier--wall", "Wall", (102, 102, 156), True),
    MapillaryLabel("construction--flat--bike-lane", "Bike Lane", (128, 64, 255), True),
    MapillaryLabel("construction--flat--crosswalk-plain", "Crosswalk - Plain", (140, 140, 200), True),
    MapillaryLabel("construction--flat--curb-cut", "Curb Cut", (170, 170, 170), True),
    MapillaryLabel("construction--flat--parking", "Parking", (250, 170, 160), True),
    MapillaryLabel("construction--flat--pedestrian-area", "Pedestrian Area", (96, 96, 96), True),
    MapillaryLabel("construction--flat--rail-track", "Rail Track", (230, 150, 140), True),
    MapillaryLabel("construction--flat--road", "Road", (128, 64, 128), True),
    MapillaryLabel("construction--flat--service-lane", "Service Lane", (110, 110, 110), True),
    MapillaryLabel("construction--flat--sidewalk", "Sidewalk", (244, 35, 232), True),
    MapillaryLabel("construction--structure--bridge", "Bridge", (150, 100, 100), True),
    MapillaryLabel("construction--structure--building", "Building", (70, 70, 70), True),
    MapillaryLabel("construction--structure--tunnel", "Tunnel", (150, 120, 90), True),
    MapillaryLabel("human--person", "Person", (220, 20, 60), True),
    MapillaryLabel("human--rider--bicyclist", "Bicyclist", (255, 0, 0), True),
    MapillaryLabel("human--rider--motorcyclist", "Motorcyclist", (255, 0, 100), True),
    MapillaryLabel("human--rider--other-rider", "Other Rider", (255, 0, 200), True),
    MapillaryLabel("marking--crosswalk-zebra", "Lane Marking - Crosswalk", (200, 128, 128), True),
    MapillaryLabel("marking--general", "Lane Marking - General", (255, 255, 255), True),
    MapillaryLabel("nature--mountain", "Mountain", (64, 170, 64), True),
    MapillaryLabel("nature--sand", "Sand", (230, 160, 50), True),
    MapillaryLabel("nature--sky", "Sky", (70, 130, 180), True),
    MapillaryLabel("nature--snow", "Snow", (190, 255, 255), True),
    MapillaryLabel("nature--terrain", "Terrain", (152, 251, 152), True),
    MapillaryLabel("nature--vegetation", "Vegetation", (107, 142, 35), True),
    MapillaryLabel("nature--water", "Water", (0, 170, 30), True),
    MapillaryLabel("object--banner", "Banner", (255, 255, 128), True),
    MapillaryLabel("object--bench", "Bench", (250, 0, 30), True),
    MapillaryLabel("object--bike-rack", "Bike Rack", (100, 140, 180), True),
    MapillaryLabel("object--billboard", "Billboard", (220, 220, 220), True),
    MapillaryLabel("object--catch-basin", "Catch Basin", (220, 128, 128), True),
    MapillaryLabel("object--cctv-camera", "CCTV Camera", (222, 40, 40), True),
    MapillaryLabel("object--fire-hydrant", "Fire Hydrant", (100, 170, 30), True),
    MapillaryLabel("object--junction-box", "Junction Box", (40, 40, 40), True),
    MapillaryLabel("object--mailbox", "Mailbox", (33, 33, 33), True),
    MapillaryLabel("object--manhole", "Manhole", (100, 128, 160), True),
    MapillaryLabel("object--phone-booth", "Phone Booth", (142, 0, 0), True),
    MapillaryLabel("object--pothole", "Pothole", (70, 100, 150), True),
    MapillaryLabel("object--street-light", "Street Light", (210, 170, 100), True),
    MapillaryLabel("object--support--pole", "Pole", (153, 153, 153), True),
    MapillaryLabel("object--support--traffic-sign-frame", "Traffic Sign Frame", (128, 128, 128), True),
    MapillaryLabel("object--support--utility-pole", "Utility Pole", (0, 0, 80), True),
    MapillaryLabel("object--traffic-light", "Traffic Light", (250, 170, 30), True),
    MapillaryLabel("object--traffic-sign--back", "Traffic Sign (Back)", (192, 192, 192), True),
    MapillaryLabel("object--traffic-sign--front", "Traffic Sign (Front)", (220, 220, 0), True),
    MapillaryLabel("object--trash-can", "Trash Can", (140, 140, 20), True),
    MapillaryLabel("object--vehicle--bicycle", "Bicycle", (119, 11, 32), True),
    MapillaryLabel("object--vehicle--boat", "Boat", (150, 0, 255), True),
    MapillaryLabel("object--vehicle--bus", "Bus", (0, 60, 100), True),
    MapillaryLabel("object--vehicle--car", "Car", (0, 0, 142), True),
    MapillaryLabel("object--vehicle--caravan", "Caravan", (0, 0, 90), True),
    MapillaryLabel("object--vehicle--motorcycle", "Motorcycle", (0, 0, 230), True),
    MapillaryLabel("object--vehicle--on-rails", "On Rails", (0, 80, 100), True),
    MapillaryLabel("object--vehicle--other-vehicle", "Other Vehicle", (128, 64, 64), True),
    MapillaryLabel("object--vehicle--trailer", "Trailer", (0, 0, 110), True),
    MapillaryLabel("object--vehicle--truck", "Truck", (0, 0, 70), True),
    MapillaryLabel("object--vehicle--wheeled-slow", "Wheeled Slow", (0, 0, 192), True),
    MapillaryLabel("void--car-mount", "Car Mount", (32, 32, 32), True),
    MapillaryLabel("void--ego-vehicle", "Ego Vehicle", (120, 10, 10), True),
    MapillaryLabel("void--unlabeled", "Unlabeled", (0, 0, 0), False),
)

_EVALUATED = [i for i, lb in enumerate(LABELS) if lb.evaluate]

MAPILLARY_SPEC = LabelSpec(
    name="mapillary",
    class_names=tuple(LABELS[i].readable for i in _EVALUATED),
    palette=tuple(LABELS[i].color for i in _EVALUATED),
    raw_to_train={raw: train for train, raw in enumerate(_EVALUATED)},
    void_values=frozenset(i for i, lb in enumerate(LABELS) if not lb.evaluate),
)

# Mapillary name -> Cityscapes-19 class, the reduction of CVRN (jxhuang0508/CVRN,
# "data loader and processing/init_vistas2cityscapes_format.py", id_to_trainid), also used by
# EDAPS. It follows the Cityscapes definitions: markings, bike and service lanes, plain
# crosswalks and parking are road; curbs, curb cuts and pedestrian areas are sidewalk; both
# sides of traffic signs are traffic sign. Everything not listed (guard rail, bridge, tunnel,
# street light, sign frame, caravan, trailer, ego vehicle, ...) is void.
MAPILLARY_TO_CITYSCAPES19: dict[str, str] = {
    "construction--flat--bike-lane": "road",
    "construction--flat--crosswalk-plain": "road",
    "construction--flat--parking": "road",
    "construction--flat--road": "road",
    "construction--flat--service-lane": "road",
    "marking--crosswalk-zebra": "road",
    "marking--general": "road",
    "construction--barrier--curb": "sidewalk",
    "construction--flat--curb-cut": "sidewalk",
    "construction--flat--pedestrian-area": "sidewalk",
    "construction--flat--sidewalk": "sidewalk",
    "construction--structure--building": "building",
    "construction--barrier--wall": "wall",
    "construction--barrier--fence": "fence",
    "object--support--pole": "pole",
    "object--support--utility-pole": "pole",
    "object--traffic-light": "traffic light",
    "object--traffic-sign--back": "traffic sign",
    "object--traffic-sign--front": "traffic sign",
    "nature--vegetation": "vegetation",
    "nature--terrain": "terrain",
    "nature--sky": "sky",
    "human--person": "person",
    "human--rider--bicyclist": "rider",
    "human--rider--motorcyclist": "rider",
    "human--rider--other-rider": "rider",
    "object--vehicle--car": "car",
    "object--vehicle--truck": "truck",
    "object--vehicle--bus": "bus",
    "object--vehicle--on-rails": "train",
    "object--vehicle--motorcycle": "motorcycle",
    "object--vehicle--bicycle": "bicycle",
}


def _cityscapes19_spec() -> LabelSpec:
    cs_train_id = {name: i for i, name in enumerate(CITYSCAPES19_SPEC.class_names)}
    missing = sorted(set(MAPILLARY_TO_CITYSCAPES19.values()) - set(cs_train_id))
    if missing:
        raise ValueError(f"Cityscapes-19 spec has no class {missing}; MAPILLARY_TO_CITYSCAPES19 is out of date")
    raw_to_train = {
        raw: cs_train_id[MAPILLARY_TO_CITYSCAPES19[lb.name]]
        for raw, lb in enumerate(LABELS)
        if lb.name in MAPILLARY_TO_CITYSCAPES19
    }
    return LabelSpec(
        name="mapillary_cs19",
        class_names=CITYSCAPES19_SPEC.class_names,
        palette=CITYSCAPES19_SPEC.palette,
        raw_to_train=raw_to_train,
        void_values=frozenset(range(len(LABELS))) - set(raw_to_train),
    )


MAPILLARY_CS19_SPEC = _cityscapes19_spec()

_COLOURS = ColourMaskReader([lb.color for lb in LABELS], "the Mapillary Vistas v1.2 config.json colours")
_SPLIT_DIRS = {"train": "training", "val": "validation", "test": "testing"}
_LAYOUT = (
    "expected the Mapillary Vistas layout training/images/*.jpg + training/labels/*.png, "
    "validation/images + validation/labels (v2.0 archives: <split>/v1.2/labels)"
)


def read_mapillary_mask(path: Path) -> np.ndarray:
    """Label ids (H, W) uint8 from a palette/grey label PNG, or from an RGB colour-coded one."""
    with opened(path, "mask") as im:
        if im.mode in ("P", "L"):
            # the index is the label id; the palette is only for display
            return np.asarray(im)
    return _COLOURS(path)


def find_mapillary_pairs(root: Path, split: str) -> list[Pair]:
    """(image, label) pairs of the official ``split`` (train / val); test has no public labels."""
    if split not in _SPLIT_DIRS:
        raise DataError(f"Mapillary Vistas has no split '{split}'; use one of {list(_SPLIT_DIRS)}")
    split_dir = Path(root) / _SPLIT_DIRS[split]
    images = require_dir(split_dir / "images", f"{split} image folder", _LAYOUT)
    if split == "test":
        raise DataError(
            f"{split_dir} has no public labels (Vistas test labels are held by the evaluation server)"
        )
    labels = next((d for d in (split_dir / "labels", split_dir / "v1.2" / "labels") if d.is_dir()), None)
    if labels is None:
        raise DataError(f"{split} label folder {split_dir / 'labels'} does not exist; {_LAYOUT}")
    pairs = pair_files(list_images(images), list_images(labels), file_stem, file_stem, f"{images} vs {labels}")
    if not pairs:
        raise DataError(f"split folder {images} holds no images; check --data-root")
    return pairs



def image_is_own_sequence(path: Path) -> str:
    """Vistas frames are independent photos: the sequence id is the image id itself."""
    return path.stem


_HINT = (
    "Mapillary Vistas v1.2 needs a (free) registration at https://www.mapillary.com/dataset/vistas; "
    "extract it so --data-root holds training/ and validation/ (each with images/ and labels/)"
)

MAPILLARY = DatasetSource(
    name="mapillary",
    label_spec=MAPILLARY_SPEC,
    find_pairs=find_mapillary_pairs,
    splits=("train", "val", "test"),
    optional_splits=("test",),
    read_mask=read_mapillary_mask,
    sequence_of=image_is_own_sequence,
    download_hint=_HINT,
)

# same files, labels reduced to the Cityscapes-19 classes
MAPILLARY_CS19 = replace(MAPILLARY, name="mapillary_cs19", label_spec=MAPILLARY_CS19_SPEC)
