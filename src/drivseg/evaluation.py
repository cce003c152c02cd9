"""Score a model on a split: a confusion matrix at the label resolution, IoU, accuracy, plots.

The ground truth is never resized: probabilities are brought to the mask's size, so scores of
models run at different input scales are comparable. Scores follow ``drivseg.metrics`` (the
training metrics): a class absent from both predictions and ground truth has no IoU (``None`` in
JSON) and is left out of the mean. Dice, frequency-weighted IoU, class accuracy, per-image mIoU and
the BF score come from ``drivseg.scores``, whose docstrings give their empty-class rules.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure  # draws to files without pyplot's global state or a display
from tqdm import tqdm

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.data.transforms import to_unit_float
from drivseg.errors import DataError
from drivseg.inference import InferenceSettings, ProbFn, predict_probs, resize
from drivseg.module import class_ids
from drivseg.scores import BoundaryF1, PerImageMIoU, matrix_per_class, matrix_summary


class ConfusionMatrix:
    """Pixel counts ``matrix[true, predicted]`` (C, C); pixels labelled 255 are skipped."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """``preds`` and ``target`` (B, H, W) class ids of the same size."""
        if preds.shape != target.shape:
            raise ValueError(f"predictions {tuple(preds.shape)} and labels {tuple(target.shape)} differ")
        valid = target != IGNORE_INDEX
        t, p = target[valid].long(), preds[valid].long()
        c = self.num_classes
        if t.numel() and int(t.max()) >= c:
            raise DataError(f"a mask holds class id {int(t.max())} but the model has {c} classes; "
                            "is --data the dataset the checkpoint was trained on?")
        self.matrix += torch.bincount(t * c + p, minlength=c * c).reshape(c, c).cpu().numpy()


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU of every class (C,); NaN for a class absent from both predictions and ground truth."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def scores(matrix: np.ndarray, class_names: Sequence[str]) -> dict:
    """``mIoU`` (mean over measured classes), ``pixel_acc``, ``IoU`` {class: value or None}, and
    ``mDice``, ``Dice``, ``fwIoU``, ``mean_class_acc``, ``class_acc`` (see ``drivseg.scores``)."""
    iou = iou_per_class(matrix)
    total = matrix.sum()
    return {
        "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        "pixel_acc": float(np.trace(matrix) / total) if total else None,
        "IoU": per_class_dict(iou, class_names),
        **matrix_summary(matrix),
        **{key: per_class_dict(values, class_names) for key, values in matrix_per_class(matrix).items()},
    }


def per_class_dict(values: Sequence[float], class_names: Sequence[str]) -> dict:
    """{class: float, or None where the value is NaN (not measured)} for JSON."""
    return {name: (None if math.isnan(v) else float(v)) for name, v in zip(class_names, values)}


class Evaluation:
    """What one pass over a split accumulates: the confusion matrix and the per-image metrics.

    ``matrix`` is the confusion matrix (as ``ConfusionMatrix.matrix``); ``boundary_tolerance`` is
    the BF tolerance in pixels (None: 0.75% of each image's diagonal).
    """

    def __init__(self, num_classes: int, boundary_tolerance: Optional[float] = None) -> None:
        self.confusion = ConfusionMatrix(num_classes)
        self.per_image_miou = PerImageMIoU(num_classes)
        self.boundary_f1 = BoundaryF1(num_classes, boundary_tolerance)

    @property
    def matrix(self) -> np.ndarray:
        return self.confusion.matrix

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """``preds`` and ``target`` (B, H, W) class ids of the same size, target 255 = ignore."""
        self.confusion.update(preds, target)  # first: it checks the shapes and class ids
        self.per_image_miou.update(preds, target)
        self.boundary_f1.update(preds, target)

    def scores(self, class_names: Sequence[str]) -> dict:
        """``scores(matrix)`` plus ``mIoU_per_image``, ``mBF`` and ``BF`` {class: value or None}."""
        result = scores(self.matrix, class_names)
        empty = self.per_image_miou.images == 0  # compute() would warn that nothing was updated
        miou_per_image = math.nan if empty else float(self.per_image_miou.compute())
        mbf = math.nan if empty else float(self.boundary_f1.compute())
        result["mIoU_per_image"] = None if math.isnan(miou_per_image) else miou_per_image
        result["mBF"] = None if math.isnan(mbf) else mbf
        result["BF"] = per_class_dict(self.boundary_f1.per_class().tolist(), class_names)
        return result


@torch.no_grad()
def evaluate(
    model: ProbFn,
    batches: Iterable[dict],
    num_classes: int,
    settings: InferenceSettings = InferenceSettings(),
    device: torch.device = torch.device("cpu"),
    progress: bool = True,
    total: Optional[int] = None,
    boundary_tolerance: Optional[float] = None,
) -> Evaluation:
    """Accumulate the confusion matrix and per-image metrics of ``model`` over ``batches`` of
    {"image" in [0, 1], "mask"}. Keep batches of one image (or images of one size): padding would
    enlarge the image diagonal the default BF tolerance is taken from."""
    cm = Evaluation(num_classes, boundary_tolerance)
    for batch in tqdm(batches, desc="evaluating", unit="batch", total=total, disable=not progress):
        images, masks = to_unit_float(batch["image"].to(device)), batch["mask"]  # (B, 3, H, W) in [0, 1], (B, H, W)
        probs = predict_probs(model, images, settings)
        cm.update(class_ids(resize(probs, masks.shape[-2:])).cpu(), masks)
    return cm


SUMMARY_ROWS = (
    ("mIoU", "mIoU"),
    ("mIoU_per_image", "mIoU, mean per image"),
    ("mDice", "mean Dice (F1)"),
    ("fwIoU", "frequency-weighted IoU"),
    ("pixel_acc", "pixel accuracy"),
    ("mean_class_acc", "mean class accuracy"),
    ("mBF", "mean BF score"),
)


def score_table(result: dict, class_names: Sequence[str]) -> str:
    """Per class IoU, Dice, accuracy (recall) and BF, then the summary scores, in percent; n/a where
    a class was not measured (see ``drivseg.scores`` for each rule)."""

    def pct(value: Optional[float]) -> str:
        return "   n/a" if value is None else f"{100 * value:6.2f}"

    width = max(len(label) for label in [*class_names, *(label for _, label in SUMMARY_ROWS)])
    header = f"{'class':<{width}}  {'IoU':>6}  {'Dice':>6}  {'Acc':>6}  {'BF':>6}   (%)"
    lines = [header, "-" * len(header)]
    for name in class_names:
        values = [result[key].get(name) for key in ("IoU", "Dice", "class_acc", "BF") if key in result]
        lines.append(f"{name:<{width}}  " + "  ".join(pct(v) for v in values))
    lines.append("-" * len(header))
    lines += [f"{label:<{width}}  {pct(result.get(key))}" for key, label in SUMMARY_ROWS if key in result]
    return "\n".join(lines)


def write_confusion_csv(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Rows are ground-truth classes, columns predicted classes, values pixel counts."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, matrix):
            writer.writerow([name, *(int(v) for v in row)])


def read_confusion_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """The class names and matrix written by ``write_confusion_csv``."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0][1:], np.array([[int(v) for v in row[1:]] for row in rows[1:]], dtype=np.int64)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Heat map of the row-normalised matrix: row i is where the pixels of class i went (recall)."""
    rows = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=np.float64), where=rows > 0)
    n = len(class_names)
    fig = Figure(figsize=(2 + 0.55 * n, 1.5 + 0.5 * n))
    ax = fig.subplots()
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), class_names, rotation=60, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if n <= 30:  # beyond that the numbers no longer fit in the cells
        for i in range(n):
            for j in range(n):
                value = normalised[i, j]
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.5 else "black")
    ax.set_title("confusion matrix (each row sums to 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_iou(iou: dict, miou: Optional[float], path: Path) -> None:
    """Horizontal bar per class with its IoU in percent; classes never seen are marked n/a."""
    names = list(iou)
    values = [0.0 if v is None else 100 * v for v in iou.values()]
    fig = Figure(figsize=(7, 1 + 0.35 * len(names)))
    ax = fig.subplots()
    bars = ax.barh(range(len(names)), values, color="tab:blue")
    for bar, v in zip(bars, iou.values()):
        label = "n/a" if v is None else f"{100 * v:.1f}"
        ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()  # first class on top, like the table
    ax.set_xlim(0, 110)
    ax.set_xlabel("IoU (%)")
    if miou is not None:
        ax.axvline(100 * miou, color="tab:red", linestyle="--", label=f"mIoU {100 * miou:.1f}")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)

