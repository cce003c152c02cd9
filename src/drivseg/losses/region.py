"""Region (overlap) losses from soft per-class counts: Generalized Dice, Focal Tversky, log-cosh Dice.

Soft counts are summed over the whole batch and over the labelled pixels only (label 255 adds
nothing): ``tp[c] = sum p_c over pixels of class c``, ``pred[c] = sum p_c``, ``true[c]`` = number
of pixels of class c, with p the softmax probabilities.
"""

from __future__ import annotations

from typing import Optional

import segmentation_models_pytorch.losses as smp_losses
import torch
import torch.nn as nn

from drivseg.data.label_spec import IGNORE_INDEX


def soft_counts(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tp, pred, true), each (C,): soft true positives, soft predicted and true pixel counts."""
    num_classes = logits.shape[1]
    valid = target != IGNORE_INDEX  # (B, H, W)
    probs = logits.softmax(dim=1) * valid[:, None]  # (B, C, H, W), 0 at void pixels
    labels = target[valid]
    # gather + index_add instead of a one-hot (B, C, H, W) tensor: for a 360x480 batch of 8 with
    # 11 classes that would be a 120 MB int64 one-hot
    p_true = probs.gather(1, target.masked_fill(~valid, 0)[:, None])[:, 0][valid]
    tp = probs.new_zeros(num_classes).index_add(0, labels, p_true)
    true = torch.bincount(labels, minlength=num_classes).to(probs.dtype)
    return tp, probs.sum(dim=(0, 2, 3)), true


class GeneralizedDiceLoss(nn.Module):
    """Generalized Dice loss, class weights ``1 / volume**2``.

    Reference: Carole H. Sudre, Wenqi Li, Tom Vercauteren, Sebastien Ourselin, M. Jorge Cardoso,
    "Generalised Dice overlap as a deep learning loss function for highly unbalanced
    segmentations", DLMIA 2017, arXiv:1707.03237.

    ``1 - 2 sum_c w_c tp_c / sum_c w_c (pred_c + true_c)`` with ``w_c = 1 / true_c**2``, over the
    batch. A class absent from the batch has an infinite weight in the paper; it gets the largest
    finite weight instead (as MONAI does), so its false positives still cost something.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        tp, pred, true = soft_counts(logits, target)
        present = true > 0
        if not present.any():
            return logits.sum() * 0.0
        weights = torch.where(present, 1.0 / true.clamp_min(1) ** 2, torch.zeros_like(true))
        weights = torch.where(present, weights, weights.max())
        return 1.0 - 2.0 * (weights * tp).sum() / (weights * (pred + true)).sum()


class FocalTverskyLoss(nn.Module):
    """Focal Tversky loss: ``mean_c (1 - TI_c) ** (1 / gamma)``.

    Reference: Nabila Abraham, Naimul Mefraz Khan, "A Novel Focal Tversky loss function with
    improved Attention U-Net for lesion segmentation", ISBI 2019, arXiv:1810.07842.

    ``TI_c = (tp + s) / (tp + alpha fn + beta fp + s)`` with the paper's alpha = 0.7 (false
    negatives), beta = 0.3 (false positives), gamma = 4/3 and the authors' smoothing s = 1. The
    paper sums over classes; the mean keeps the scale of the other losses. A class absent from the
    batch has TI = 1 / (1 + beta fp): its false positives are penalised. Class weights, when given,
    make the mean over classes a weighted one.
    """

    def __init__(
        self,
        alpha: float = 0.7,
        beta: float = 0.3,
        gamma: float = 4 / 3,
        smooth: float = 1.0,
        class_weights: Optional[torch.Tensor] = None,
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.gamma, self.smooth = alpha, beta, gamma, smooth
        self.register_buffer("class_weights", None if class_weights is None else class_weights.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        tp, pred, true = soft_counts(logits, target)
        fn, fp = true - tp, pred - tp
        tversky = (tp + self.smooth) / (tp + self.alpha * fn + self.beta * fp + self.smooth)
        # x ** 0.75 has an infinite slope at 0: a class predicted perfectly (to float precision)
        # would turn the backward pass into NaN
        per_class = (1.0 - tversky).clamp_min(1e-7) ** (1.0 / self.gamma)
        if self.class_weights is None:
            return per_class.mean()
        return (self.class_weights * per_class).sum() / self.class_weights.sum()


class LogCoshDiceLoss(nn.Module):
    """``log(cosh(dice))`` of the registry's ``dice`` loss (SMP's multiclass Dice).

    Reference: Shruti Jadon, "A survey of loss functions for semantic segmentation", IEEE CIBCB
    2020, arXiv:2006.14822. The log-cosh wrapping smooths the Dice loss: ``log cosh x`` is about
    ``x**2 / 2`` near 0 (gentler steps once the overlap is good) and ``|x| - log 2`` for large x.
    """

    def __init__(self, class_weights: Optional[list[float]] = None) -> None:
        super().__init__()
        self.dice = smp_losses.DiceLoss("multiclass", ignore_index=IGNORE_INDEX, class_weights=class_weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.cosh(self.dice(logits, target)))
