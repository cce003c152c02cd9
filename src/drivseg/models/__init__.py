"""Architecture registry: ``ARCHS[name](num_classes=..., encoder=..., encoder_weights=..., in_channels=...)``.

Every entry returns a plain ``nn.Module`` mapping images (B, 3, H, W) to logits (B, C, H, W).
A network may instead return ``{"out": logits, "aux": aux_logits | [aux_logits, ...]}`` in training
mode (deep supervision); aux logits may be at any resolution. Networks know nothing about training.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch.nn as nn

from drivseg.errors import ConfigError
from drivseg.models.smp_models import SMP_ARCHS

ArchBuilder = Callable[..., nn.Module]

ARCHS: dict[str, ArchBuilder] = {**SMP_ARCHS}


def build_model(
    arch: str,
    num_classes: int,
    encoder: Optional[str] = None,
    encoder_weights: Optional[str] = None,
    in_channels: int = 3,
) -> nn.Module:
    """Build a registered architecture; unknown names fail with the list of valid ones."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; valid: {', '.join(sorted(ARCHS))}")
    return ARCHS[arch](
        num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights, in_channels=in_channels
    )
