"""Segmentation scores next to IoU: Dice/F1, frequency-weighted IoU, class accuracy, per-image mIoU, BF.

Two kinds, both ignoring label 255 (in predictions too: a prediction on a void pixel is not scored):

- functions of the split's confusion matrix ``matrix[true, predicted]`` (numpy int64, see
  ``drivseg.evaluation.ConfusionMatrix``): ``dice_per_class``, ``mean_dice``,
  ``frequency_weighted_iou``, ``class_accuracy``, ``mean_class_accuracy``;
- torchmetrics objects for scores that need each image on its own, ``PerImageMIoU`` and
  ``BoundaryF1``, whose states are sums (``dist_reduce_fx="sum"``) so they sync across DDP processes.

Empty classes. As for IoU, a class absent from both the ground truth and the predictions has no
Dice (NaN; None in JSON) and is left out of the means. Class accuracy (recall) divides by the
class's ground-truth pixels, so it is NaN for a class absent from the ground truth even when it is
predicted (those false positives lower its IoU and Dice instead); the mean class accuracy averages
the classes present in the ground truth, like scikit-learn's ``balanced_accuracy_score``. The
per-image rules are in the docstrings of the two metric classes.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np
import torch
from torchmetrics import Metric

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError


# ---------------------------------------------------------------- from a confusion matrix


def _counts(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, fn) per class of ``matrix[true, predicted]``, float64."""
    tp = np.diag(matrix).astype(np.float64)
    return tp, matrix.sum(0) - tp, matrix.sum(1) - tp


def _nanmean(values: np.ndarray) -> Optional[float]:
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def dice_per_class(matrix: np.ndarray) -> np.ndarray:
    """Dice = F1 = 2 tp / (2 tp + fp + fn) of every class (C,); NaN when absent from both."""
    tp, fp, fn = _counts(matrix)
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def mean_dice(matrix: np.ndarray) -> Optional[float]:
    """Mean Dice (macro F1) over the classes present in the ground truth or the predictions."""
    return _nanmean(dice_per_class(matrix))


def frequency_weighted_iou(matrix: np.ndarray) -> Optional[float]:
    """IoU of each class weighted by its share of the ground-truth pixels (Long et al., FCN, 2015).

    Classes absent from the ground truth weigh 0 (their IoU, 0 or undefined, does not matter);
    None when nothing is labelled.
    """
    tp, fp, fn = _counts(matrix)
    true = tp + fn
    if true.sum() == 0:
        return None
    iou = np.divide(tp, tp + fp + fn, out=np.zeros_like(tp), where=true > 0)
    return float((true * iou).sum() / true.sum())


def class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Per-class accuracy = recall = tp / ground-truth pixels (C,); NaN without ground-truth pixels."""
    tp, _, fn = _counts(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fn > 0, tp / (tp + fn), np.nan)


def mean_class_accuracy(matrix: np.ndarray) -> Optional[float]:
    """Mean of the class accuracies of the classes in the ground truth (SegNet's "class average")."""
    return _nanmean(class_accuracy(matrix))


# ---------------------------------------------------------------- per image


def matrix_summary(matrix: np.ndarray) -> dict[str, Optional[float]]:
    """The scalar scores of a confusion matrix beyond mIoU: ``mDice``, ``fwIoU``, ``mean_class_acc``."""
    return {"mDice": mean_dice(matrix), "fwIoU": frequency_weighted_iou(matrix),
            "mean_class_acc": mean_class_accuracy(matrix)}  # fmt: skip


def matrix_per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """The per-class scores of a confusion matrix beyond IoU: ``Dice``, ``class_acc`` (NaN: unmeasured)."""
    return {"Dice": dice_per_class(matrix), "class_acc": class_accuracy(matrix)}


def per_image_confusion(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, C, C) int64 confusion matrices ``[image, true, predicted]``; pixels labelled 255 skipped."""
    b = preds.shape[0]
    image = torch.arange(b, device=target.device).view(b, *[1] * (target.dim() - 1))
    index = (image * num_classes + target.long()) * num_classes + preds.long()  # (B, H, W)
    counts = torch.bincount(index[target != IGNORE_INDEX], minlength=b * num_classes * num_classes)
    return counts.view(b, num_classes, num_classes)


class PerImageMIoU(Metric):
    """Mean over images of each image's mIoU (the per-image score of Kaggle-style challenges).

    Within an image, a class absent from both its ground truth and its predictions (on labelled
    pixels) is skipped; an image with no labelled pixel is skipped altogether. Unlike the split's
    mIoU, every image weighs the same whatever its size, and a class missed in one image costs that
    image a full IoU of 0. ``update(preds, target)``: (B, H, W) class ids, target 255 = ignore.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("miou_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        cm = per_image_confusion(preds, target, self.num_classes).double()  # (B, C, C)
        tp = cm.diagonal(dim1=1, dim2=2)
        union = cm.sum(1) + cm.sum(2) - tp
        present = union > 0
        iou = torch.where(present, tp / union.clamp_min(1), torch.zeros_like(tp))
        scored = present.any(1)  # images with at least one labelled pixel
        per_image = iou.sum(1)[scored] / present.sum(1)[scored]
        self.miou_sum += per_image.sum()
        self.images += int(scored.sum())

    def compute(self) -> torch.Tensor:
        if self.images == 0:
            return torch.tensor(math.nan, dtype=torch.float64)
        return self.miou_sum / self.images


# ---------------------------------------------------------------- boundary F1


def boundary_map(labels: np.ndarray) -> np.ndarray:
    """(H, W) labels (255 = void) -> (H, W) bool: labelled pixels with a labelled 4-neighbour of
    another class. Void neighbours and the image border make no boundary (neither is a class edge)."""
    out = np.zeros(labels.shape, dtype=bool)
    labelled = labels != IGNORE_INDEX
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        edge = (labels[a] != labels[b]) & labelled[a] & labelled[b]
        out[a] |= edge
        out[b] |= edge
    return out


@functools.lru_cache(maxsize=32)
def _disk(tolerance: float) -> np.ndarray:
    """uint8 kernel of the pixel offsets strictly closer than ``tolerance`` to the centre."""
    r = max(0, math.ceil(tolerance) - 1)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return ((y**2 + x**2) < tolerance**2).astype(np.uint8)


def _within(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels closer than ``tolerance`` (Euclidean) to a True pixel of ``points``.

    A dilation by the disk of offsets is exactly the thresholded Euclidean distance transform
    (pixel distances are square roots of integers), and 60 times faster at 4.5 px.
    """
    import cv2  # imported here: only boundary scores need OpenCV

    return cv2.dilate(points.astype(np.uint8), _disk(tolerance)) > 0


def boundary_f1_per_class(
    preds: np.ndarray, target: np.ndarray, num_classes: int, tolerance: Optional[float] = None
) -> np.ndarray:
    """BF score of every class in one image (C,), NaN for classes the image does not score.

    Precision: the share of predicted boundary pixels of class c closer than ``tolerance`` pixels
    to a true boundary pixel of c; recall the other way round; BF = 2 P R / (P + R). ``tolerance``
    None: 0.75% of the image diagonal (Csurka et al.; 4.5 px for 360x480). Predictions on void
    pixels are dropped first. A class absent from both truth and prediction is NaN; present in one
    only, or with boundary pixels on one side only, 0; present in both without any boundary (it
    covers every labelled pixel in both), 1.
    """
    preds = np.where(target == IGNORE_INDEX, IGNORE_INDEX, preds)
    tol = 0.0075 * math.hypot(*target.shape) if tolerance is None else float(tolerance)
    true_edges, pred_edges = boundary_map(target), boundary_map(preds)
    scores = np.full(num_classes, np.nan)
    for c in np.union1d(np.unique(target), np.unique(preds)):
        if c == IGNORE_INDEX:
            continue
        true_c, pred_c = true_edges & (target == c), pred_edges & (preds == c)
        if not (true_c.any() and pred_c.any()):
            both_present = (target == c).any() and (preds == c).any()
            scores[c] = 1.0 if both_present and not (true_c.any() or pred_c.any()) else 0.0
            continue
        # the bounding box of both edge sets loses nothing: every edge pixel is in it
        rows, cols = np.nonzero(true_c | pred_c)
        box = np.s_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        true_c, pred_c = true_c[box], pred_c[box]
        precision = float(_within(true_c, tol)[pred_c].mean())
        recall = float(_within(pred_c, tol)[true_c].mean())
        scores[c] = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return scores


class BoundaryF1(Metric):
    """BF score (Csurka, Larlus, Perronnin, "What is a good evaluation measure for semantic
    segmentation?", BMVC 2013): per image and class, the F1 of boundary pixels matched within a
    tolerance; per class the mean over the images that score it (those where the class is in the
    truth or the prediction), then the mean over the classes scored at least once.

    ``tolerance`` in pixels; None (default): 0.75% of each image's diagonal, the paper's choice,
    which keeps scores comparable across resolutions. The diagonal is that of the (H, W) passed to
    ``update``: pass images at their own size, not padded into a larger batch.
    ``compute()`` is the mean over classes; ``per_class()`` the (C,) values (NaN: never scored).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, tolerance: Optional[float] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if tolerance is not None and not tolerance > 0:
            raise ConfigError(f"BF tolerance (--bf-tolerance) {tolerance}: expected pixels > 0, e.g. 2")
        self.num_classes = num_classes
        self.tolerance = tolerance
        self.add_state("f1_sum", torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        for p, t in zip(preds.detach().cpu().numpy(), target.detach().cpu().numpy()):
            f1 = boundary_f1_per_class(p, t, self.num_classes, self.tolerance)
            scored = torch.from_numpy(np.isfinite(f1)).to(self.images.device)
            self.f1_sum += torch.from_numpy(np.nan_to_num(f1)).to(self.f1_sum)
            self.images += scored.long()

    def per_class(self) -> torch.Tensor:
        """BF of every class (C,), NaN for classes no image scored; synced across processes."""
        with self.sync_context():
            return self._per_class()

    def _per_class(self) -> torch.Tensor:
        return torch.where(self.images > 0, self.f1_sum / self.images.clamp_min(1), math.nan)

    def compute(self) -> torch.Tensor:  # torchmetrics has synced the states before calling this
        values = self._per_class()
        scored = ~values.isnan()
        return values[scored].mean() if scored.any() else torch.tensor(math.nan, dtype=torch.float64)
