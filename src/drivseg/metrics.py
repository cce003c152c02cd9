"""The metric objects every stage uses: macro mIoU, per-class IoU and pixel accuracy.

All three come from torchmetrics and accumulate a confusion matrix over the whole epoch, synced
across processes, so the value is dataset-wide rather than a mean of per-batch values.

Classes absent from both prediction and target: ``MulticlassJaccardIndex(average="macro")`` leaves
them out of the mean (weight 0), and the per-class IoU reports 0 for them (``zero_division=0``) —
read per-class numbers of a class with no pixels as "not measured", not as a failure.
"""

from __future__ import annotations

import torch.nn as nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from drivseg.data.label_spec import IGNORE_INDEX


class StageMetrics(nn.Module):
    """One stage's metric objects (train, val or test each get their own instance)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.miou = MulticlassJaccardIndex(num_classes, average="macro", ignore_index=IGNORE_INDEX)
        self.iou_per_class = MulticlassJaccardIndex(num_classes, average="none", ignore_index=IGNORE_INDEX)
        self.pixel_acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE_INDEX)

    def update(self, preds, target) -> None:
        """``preds`` (B, H, W) class ids, ``target`` (B, H, W) with 255 = ignore."""
        self.miou.update(preds, target)
        self.iou_per_class.update(preds, target)
        self.pixel_acc.update(preds, target)
