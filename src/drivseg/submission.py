"""Benchmark submissions: label-id PNGs named for the Cityscapes and KITTI servers, the Cityscapes table.

The Cityscapes and KITTI semantic segmentation servers (and cityscapesScripts'
``evalPixelLevelSemanticLabeling.py``, which both run) read single-channel 8-bit PNGs holding
official Cityscapes *label ids* (road = 7, car = 26, ...), not train ids. Any model that predicts
the 19 Cityscapes classes in train id order can write them: ``--data cityscapes``, ``kitti``,
``bdd100k``, or ``mapillary`` with ``--taxonomy cityscapes19``.

File names (``submission_name``):

- Cityscapes: the evaluator looks, recursively under its results folder, for exactly one file
  matching ``<city>_<seq>_<frame>*.png`` per ground-truth frame, so ``aachen_000000_000019_leftImg8bit.png``
  becomes ``aachen_000000_000019_labelIds.png``. Nothing else matching that pattern may sit in the
  same tree (an overlay would count as a second prediction).
- KITTI: the devkit asks for results named exactly like the test images (``000000_10.png``).
- anything else: ``<stem>_labelIds.png``.

The Cityscapes table (``cityscapes_table``) follows the evaluator's printout: class IoU of the 19
classes and category IoU of the 7 categories (classes merged in the confusion matrix), with their
means. iIoU needs instance masks and is not computed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from drivseg.data.cityscapes import CITYSCAPES19_SPEC, train_ids_to_label_ids
from drivseg.errors import ConfigError
from drivseg.evaluation import iou_per_class

# how predict.py writes masks: palette PNG + overlay, plain train ids, benchmark label ids
PREDICTION_FORMATS = ("palette", "trainids", "labelids")

# category -> its evaluated classes, as in cityscapesScripts helpers/labels.py (ignoreInEval
# labels such as parking or caravan never reach a train id, so they are not listed)
CITYSCAPES_CATEGORIES: dict[str, tuple[str, ...]] = {
    "flat": ("road", "sidewalk"),
    "construction": ("building", "wall", "fence"),
    "object": ("pole", "traffic light", "traffic sign"),
    "nature": ("vegetation", "terrain"),
    "sky": ("sky",),
    "human": ("person", "rider"),
    "vehicle": ("car", "truck", "bus", "train", "motorcycle", "bicycle"),
}

IIOU_NOTE = (
    "iIoU (instance-weighted IoU) needs the gtFine *_instanceIds.png instance masks; "
    "it is not computed here (n/a)."
)

_CITYSCAPES_FRAME = re.compile(r"^(?P<frame>[^_]+_\d{6}_\d{6})(?:_|$)")
_KITTI_FRAME = re.compile(r"^\d{6}_\d{2}$")


def has_label_ids(class_names: Sequence[str]) -> bool:
    """True when the classes are the 19 Cityscapes ones in train id order (label ids exist)."""
    return tuple(class_names) == CITYSCAPES19_SPEC.class_names


def require_label_ids(
    class_names: Sequence[str],
    what: str,
    option: str = "--format labelids",
    instead: str = "--format palette or --format trainids",
) -> None:
    """Raise ``ConfigError`` naming what works instead when ``class_names`` have no label ids."""
    if not has_label_ids(class_names):
        names = list(class_names)
        raise ConfigError(
            f"{option}: {what} predicts {len(names)} classes {names[:4]}..., which have no Cityscapes "
            "label ids; it needs a model of the 19 Cityscapes classes (--data cityscapes, kitti, "
            f"bdd100k, or --taxonomy cityscapes19). This model supports {instead}"
        )


def to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Cityscapes train ids (0..18) -> official label ids (uint8); see ``train_ids_to_label_ids``."""
    try:
        return train_ids_to_label_ids(train_ids)
    except ValueError as err:
        raise ConfigError(f"cannot write label ids: {err}") from None


def submission_name(image: Path) -> str:
    """The file name a benchmark server expects for the prediction of ``image`` (module docstring)."""
    stem = Path(image).stem
    match = _CITYSCAPES_FRAME.match(stem)
    if match:
        return f"{match['frame']}_labelIds.png"
    if _KITTI_FRAME.match(stem):
        return f"{stem}.png"
    return f"{stem}_labelIds.png"


def trainids_name(image: Path) -> str:
    """``<stem>_trainIds.png``: a plain single-channel train id map."""
    return f"{Path(image).stem}_trainIds.png"


def save_single_channel(values: np.ndarray, path: Path) -> None:
    """An 8-bit greyscale (mode L) PNG whose pixel values are ``values``, no palette."""
    Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8), mode="L").save(path)


def merge_classes(
    matrix: np.ndarray, class_names: Sequence[str], groups: dict[str, Sequence[str]]
) -> np.ndarray:
    """Confusion matrix of groups of classes: rows and columns of one group summed (G, G)."""
    index = {name: i for i, name in enumerate(class_names)}
    onehot = np.zeros((len(class_names), len(groups)), dtype=np.int64)  # class -> group
    for g, members in enumerate(groups.values()):
        for name in members:
            onehot[index[name], g] = 1
    return onehot.T @ np.asarray(matrix, dtype=np.int64) @ onehot


def cityscapes_scores(matrix: np.ndarray, class_names: Sequence[str]) -> dict:
    """Class and category IoU (None when not measured) and their means, from a 19x19 train id matrix.

    Equal to cityscapesScripts' scores for the same pixels: void ground truth is left out of the
    matrix, and a class absent from ground truth and predictions is NaN there and left out here.
    """
    require_label_ids(class_names, "the confusion matrix", "--format cityscapes", "the default --format")
    classes = iou_per_class(matrix)
    categories = iou_per_class(merge_classes(matrix, class_names, CITYSCAPES_CATEGORIES))

    def mean(values: np.ndarray) -> Optional[float]:
        return float(np.nanmean(values)) if np.isfinite(values).any() else None

    def named(names: Sequence[str], values: np.ndarray) -> dict[str, Optional[float]]:
        return {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, values)}

    return {
        "classes": named(class_names, classes),
        "categories": named(list(CITYSCAPES_CATEGORIES), categories),
        "class_mean": mean(classes),
        "category_mean": mean(categories),
    }


def cityscapes_table(result: dict, title: str = "") -> str:
    """The evaluator's layout: classes then categories, IoU and iIoU (n/a) in [0, 1], averages,
    then the benchmark's four summary numbers in percent."""

    def fmt(value: Optional[float]) -> str:
        return "  nan" if value is None else f"{value:5.3f}"

    def block(header: str, scores: dict, average: Optional[float]) -> list[str]:
        rule = "-" * 32
        lines = [f"{header:<16} IoU     iIoU", rule]
        lines += [f"{name:<14}: {fmt(v)}    n/a" for name, v in scores.items()]
        return lines + [rule, f"Score Average : {fmt(average)}    n/a", rule]

    def pct(value: Optional[float]) -> str:
        return "nan" if value is None else f"{100 * value:.1f}"

    lines = [title] if title else []
    lines += block("classes", result["classes"], result["class_mean"])
    lines.append("")
    lines += block("categories", result["categories"], result["category_mean"])
    lines.append("")
    lines.append(
        f"IoU class {pct(result['class_mean'])}   iIoU class n/a   "
        f"IoU category {pct(result['category_mean'])}   iIoU category n/a   (%)"
    )
    lines.append(IIOU_NOTE)
    return "\n".join(lines)
