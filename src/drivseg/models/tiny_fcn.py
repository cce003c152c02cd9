"""A deliberately small fully convolutional network: the template for adding your own model.

To add a model: copy this file, change the network, and add one line to
``drivseg/models/__init__.py``: ``ARCHS["my_net"] = build_my_net``. ``--arch my_net`` then works in
train.py, eval.py and predict.py, and the parametrised architecture tests pick it up.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from drivseg.errors import ConfigError


class TinyFCN(nn.Module):
    """Three strided conv blocks and a 1x1 classifier, upsampled to the input size."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(in_channels, width), block(width, 2 * width), block(2 * width, 2 * width))
        self.classifier = nn.Conv2d(2 * width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.features(x))  # (B, C, H/8, W/8)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_tiny_fcn(
    num_classes: int, encoder: Optional[str] = None, encoder_weights: Optional[str] = None, in_channels: int = 3
) -> nn.Module:
    """Registry builder: every architecture takes these four keyword arguments."""
    if encoder is not None or encoder_weights is not None:
        raise ConfigError("tiny_fcn has no pretrained encoder; drop --encoder/--encoder-weights")
    return TinyFCN(num_classes, in_channels)
