"""Online hard example mining (OHEM) cross-entropy: train on the pixels the network still gets wrong.

References: Abhinav Shrivastava, Abhinav Gupta, Ross Girshick, "Training Region-based Object
Detectors with Online Hard Example Mining", CVPR 2016 (the idea); its per-pixel form as used to
train PSPNet (Zhao et al., CVPR 2017) and BiSeNet (Yu et al., ECCV 2018; BiSeNetV2, IJCV 2021).

A pixel is hard when the probability of its true class is below ``threshold`` (0.7, the value of
the PSPNet/HRNet/BiSeNet training code). When fewer than ``min_kept`` pixels are hard, the
``min_kept`` hardest ones are kept instead, so the loss never rests on a handful of pixels late in
training. The loss is the (class-weighted) mean cross-entropy over the kept pixels.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from drivseg.data.label_spec import IGNORE_INDEX

# BiSeNet's rule: keep at least 1/16 of the labelled pixels of the batch. A fraction follows the
# crop size; HRNet's fixed min_kept = 100000 assumes about eight 1024x512 Cityscapes crops.
DEFAULT_MIN_KEPT_FRACTION = 1 / 16


class OhemCrossEntropy(nn.Module):
    """Cross-entropy over the hard pixels of a batch (see the module docstring).

    Args:
        threshold: a pixel whose true-class probability is below this is hard.
        min_kept: at least this many pixels are kept; None: 1/16 of the batch's labelled pixels.
        class_weights: (C,) weights, as in ``nn.CrossEntropyLoss`` (weighted mean over kept pixels).
        label_smoothing: as in ``nn.CrossEntropyLoss``; pixels are still selected by the true class.
    """

    def __init__(
        self,
        threshold: float = 0.7,
        min_kept: Optional[int] = None,
        class_weights: Optional[torch.Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.threshold = threshold
        self.min_kept = min_kept
        self.label_smoothing = label_smoothing
        self.register_buffer("class_weights", None if class_weights is None else class_weights.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != IGNORE_INDEX  # (B, H, W)
        # per-pixel losses already multiplied by the weight of the pixel's class
        pixel_loss = F.cross_entropy(logits, target, weight=self.class_weights, ignore_index=IGNORE_INDEX,
                                     reduction="none", label_smoothing=self.label_smoothing)[valid]
        labels = target[valid]
        weights = torch.ones_like(pixel_loss) if self.class_weights is None else self.class_weights[labels]
        if labels.numel() == 0:
            return logits.sum() * 0.0
        with torch.no_grad():  # the selection is a choice of pixels, not something to differentiate
            safe = target.masked_fill(~valid, 0)[:, None]  # gather needs a class id at void pixels too
            p_true = logits.softmax(dim=1).gather(1, safe)[:, 0][valid]
            n_min = self.min_kept
            if n_min is None:
                n_min = int(labels.numel() * DEFAULT_MIN_KEPT_FRACTION)
            n_min = min(max(n_min, 1), labels.numel())
            kept = p_true < self.threshold
            if int(kept.sum()) < n_min:
                kept = torch.zeros_like(kept)
                kept[p_true.topk(n_min, largest=False).indices] = True
        return pixel_loss[kept].sum() / weights[kept].sum()
