"""The metric object every stage uses, and the scores computed from it.

One torchmetrics ``MulticlassJaccardIndex`` per stage accumulates the confusion matrix of the whole
epoch (a ``bincount`` per batch, synced across processes as a sum); mIoU, per-class IoU and pixel
accuracy all come from that one matrix at the end of the epoch, so the value is dataset-wide rather
than a mean of per-batch values, and a batch costs one ``bincount``. ``validate_args=False``: the
default checks run ``torch.unique`` over every batch's labels, which costs more than the update.

Classes absent from both prediction and target are left out of the macro mean (as torchmetrics'
``average="macro"`` does), and their per-class IoU is reported as 0 — read per-class numbers of a
class with no pixels as "not measured", not as a failure.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torchmetrics.classification import MulticlassJaccardIndex

from drivseg.data.label_spec import IGNORE_INDEX


class StageMetrics(nn.Module):
    """One stage's confusion matrix (train, val or test each get their own instance)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.jaccard = MulticlassJaccardIndex(
            num_classes, average="none", ignore_index=IGNORE_INDEX, validate_args=False
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """``preds`` (B, H, W) class ids, ``target`` (B, H, W) with 255 = ignore."""
        self.jaccard.update(preds, target)

    def matrix(self) -> torch.Tensor:
        """The epoch's confusion matrix ``[true, predicted]`` (C, C), summed over all processes."""
        with self.jaccard.sync_context():
            return self.jaccard.confmat.clone()

    def compute(self) -> dict[str, torch.Tensor]:
        """``mIoU``, ``pixel_acc`` and ``iou`` (C,) from the synced matrix."""
        return confusion_scores(self.matrix())

    def reset(self) -> None:
        self.jaccard.reset()


def confusion_scores(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    """mIoU over the classes seen in prediction or target, pixel accuracy, per-class IoU (0 when unseen)."""
    m = matrix.double()
    tp = m.diag()
    union = m.sum(0) + m.sum(1) - tp
    seen = union > 0
    iou = torch.where(seen, tp / union.clamp_min(1), torch.zeros_like(tp))
    miou = iou[seen].mean() if seen.any() else torch.tensor(0.0, dtype=torch.float64)
    total = m.sum()
    pixel_acc = tp.sum() / total if total > 0 else torch.tensor(0.0, dtype=torch.float64)
    return {"mIoU": miou.float(), "pixel_acc": pixel_acc.float(), "iou": iou.float()}
