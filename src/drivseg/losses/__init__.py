"""Loss registry and weighted combinations: ``ce``, ``ce+dice``, ``ce:1.0,lovasz:0.5``.

Every loss ignores label 255 and is computed in fp32: under fp16 autocast a Dice sum over a
360x480 batch overflows, and log-softmax loses precision. SMP provides dice, jaccard, focal,
lovasz and tversky; ``ohem.py``, ``region.py`` and ``boundary.py`` hold the others, one paper each.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import segmentation_models_pytorch.losses as smp_losses
import torch
import torch.nn as nn

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError
from drivseg.losses.boundary import BoundaryLoss
from drivseg.losses.ohem import OhemCrossEntropy
from drivseg.losses.region import FocalTverskyLoss, GeneralizedDiceLoss, LogCoshDiceLoss


def _ce(class_weights: Optional[torch.Tensor], label_smoothing: float) -> nn.Module:
    return nn.CrossEntropyLoss(weight=class_weights, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)


def _weights_list(class_weights: Optional[torch.Tensor]) -> Optional[list[float]]:
    return None if class_weights is None else class_weights.tolist()


LOSSES: dict[str, Callable[[Optional[torch.Tensor], float], nn.Module]] = {
    "ce": _ce,
    "dice": lambda w, s: smp_losses.DiceLoss("multiclass", ignore_index=IGNORE_INDEX, class_weights=_weights_list(w)),
    "jaccard": lambda w, s: smp_losses.JaccardLoss(
        "multiclass", ignore_index=IGNORE_INDEX, class_weights=_weights_list(w)
    ),
    # SMP's multiclass focal loss is one-vs-rest (sigmoid per class), as in the RetinaNet paper
    "focal": lambda w, s: smp_losses.FocalLoss("multiclass", ignore_index=IGNORE_INDEX, class_weights=_weights_list(w)),
    # Lovasz optimises the IoU directly and takes no class weights
    "lovasz": lambda w, s: smp_losses.LovaszLoss("multiclass", ignore_index=IGNORE_INDEX),
    "tversky": lambda w, s: smp_losses.TverskyLoss(
        "multiclass", ignore_index=IGNORE_INDEX, alpha=0.3, beta=0.7, class_weights=_weights_list(w)
    ),
    "ohem": lambda w, s: OhemCrossEntropy(class_weights=w, label_smoothing=s),
    # weights its classes by 1 / volume**2 itself: --class-weights would contradict that
    "generalized_dice": lambda w, s: GeneralizedDiceLoss(),
    "focal_tversky": lambda w, s: FocalTverskyLoss(class_weights=w),
    "log_cosh_dice": lambda w, s: LogCoshDiceLoss(class_weights=_weights_list(w)),
    # a distance term meant to be added to a region loss (ce+boundary:0.01); no class weights
    "boundary": lambda w, s: BoundaryLoss(),
}


def parse_loss_spec(spec: str) -> list[tuple[str, float]]:
    """``"ce+dice"`` -> [("ce", 1.0), ("dice", 1.0)]; ``"ce:1,lovasz:0.5"`` -> weights as given."""
    terms = []
    for part in spec.replace("+", ",").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, weight = part.partition(":")
        name = name.strip().lower()
        if name not in LOSSES:
            raise ConfigError(f"--loss {spec!r}: unknown loss {name!r}; valid: {', '.join(sorted(LOSSES))}")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            w = math.nan
        if not (math.isfinite(w) and w >= 0):
            raise ConfigError(f"--loss {spec!r}: weight {weight!r} of {name} must be a finite number >= 0")
        terms.append((name, w))
    if not terms:
        raise ConfigError(f"--loss {spec!r} names no loss; e.g. ce, ce+dice, ce:1.0,lovasz:0.5")
    return terms


class CombinedLoss(nn.Module):
    """Weighted sum of registry losses, evaluated in fp32 outside autocast."""

    def __init__(self, terms: Sequence[tuple[str, float]], class_weights=None, label_smoothing: float = 0.0):
        super().__init__()
        self.names = [name for name, _ in terms]
        self.weights = [w for _, w in terms]
        self.losses = nn.ModuleList(LOSSES[name](class_weights, label_smoothing) for name in self.names)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (target != IGNORE_INDEX).any():
            # a crop that holds only void teaches nothing; CE would give NaN and Lovasz an empty tensor
            return logits.float().sum() * 0.0
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()  # (B, C, H, W)
            total = logits.new_zeros(())
            for w, loss in zip(self.weights, self.losses):
                total = total + w * loss(logits, target)
            return total


def build_loss(spec: str, class_weights: Optional[torch.Tensor] = None, label_smoothing: float = 0.0) -> CombinedLoss:
    """Build the loss named by ``spec`` (see ``parse_loss_spec``)."""
    return CombinedLoss(parse_loss_spec(spec), class_weights, label_smoothing)


def median_frequency_weights(pixel_counts: torch.Tensor, present_pixels: torch.Tensor) -> torch.Tensor:
    """Median-frequency balancing (Eigen & Fergus 2015), as used by SegNet on CamVid.

    ``pixel_counts[c]``: pixels of class c in the split; ``present_pixels[c]``: total pixels of the
    images in which c appears. freq(c) = pixel_counts / present_pixels, weight(c) = median(freq) /
    freq(c). Classes never seen get weight 0 (nothing to learn from, and an infinite weight would
    blow up the loss).
    """
    seen = present_pixels > 0
    if not seen.any():
        raise ConfigError("median-frequency class weights: the train split has no labelled pixels")
    freq = pixel_counts.double() / present_pixels.double().clamp_min(1)
    med = freq[seen].median()
    return torch.where(seen, med / freq.clamp_min(1e-12), torch.zeros_like(freq)).float()
