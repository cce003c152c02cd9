"""Segmentation architectures written from scratch in plain PyTorch, one readable file each.

``SCRATCH_ARCHS[name](num_classes=..., encoder=None, encoder_weights=None, in_channels=3)``
follows the architecture registry contract. These networks build their own backbones, so they
reject ``encoder`` / ``encoder_weights``. Names are prefixed so they never collide with the
segmentation_models_pytorch ones (``unet`` vs ``scratch_unet``).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch.nn as nn

from drivseg.errors import ConfigError
from drivseg.models.scratch.bisenetv2 import BiSeNetV2
from drivseg.models.scratch.deeplabv3plus import DeepLabV3Plus
from drivseg.models.scratch.dilated_context import DilatedContextNet
from drivseg.models.scratch.fast_scnn import FastSCNN
from drivseg.models.scratch.hrnet import HRNetV2
from drivseg.models.scratch.pspnet import PSPNet
from drivseg.models.scratch.segformer import SegFormerB0
from drivseg.models.scratch.segmenter import Segmenter
from drivseg.models.scratch.unet import UNet

ScratchBuilder = Callable[..., nn.Module]


def _builder(name: str, network: Callable[..., nn.Module]) -> ScratchBuilder:
    """Wrap a network class in the registry signature, rejecting pretrained-encoder arguments."""

    def build(
        num_classes: int,
        encoder: Optional[str] = None,
        encoder_weights: Optional[str] = None,
        in_channels: int = 3,
    ) -> nn.Module:
        if encoder is not None:
            raise ConfigError(
                f"{name} is built from scratch and takes no --encoder (got {encoder!r}); drop --encoder"
            )
        if encoder_weights is not None and str(encoder_weights).lower() != "none":
            raise ConfigError(
                f"{name} is built from scratch and takes no --encoder (got encoder_weights="
                f"{encoder_weights!r}); drop --encoder-weights or pass 'none'"
            )
        if num_classes < 1 or in_channels < 1:
            raise ConfigError(
                f"{name} needs num_classes >= 1 and in_channels >= 1, got {num_classes} and {in_channels}"
            )
        return network(num_classes=num_classes, in_channels=in_channels)

    build.__name__ = f"build_{name}"
    build.__doc__ = f"Build {name} ({network.__name__}) with random initialisation."
    return build


SCRATCH_ARCHS: dict[str, ScratchBuilder] = {
    "scratch_unet": _builder("scratch_unet", UNet),
    "scratch_pspnet": _builder("scratch_pspnet", PSPNet),
    "scratch_deeplabv3plus": _builder("scratch_deeplabv3plus", DeepLabV3Plus),
    "scratch_segformer": _builder("scratch_segformer", SegFormerB0),
    "fast_scnn": _builder("fast_scnn", FastSCNN),
}
# papers of the reading list, tested in tests/models/test_reading_list_archs.py (dilated_context is a
# 134 M-parameter VGG-16: too slow for the 360x480 checks every entry above goes through)
READING_LIST_ARCHS: dict[str, ScratchBuilder] = {
    "hrnet": _builder("hrnet", HRNetV2),
    "segmenter": _builder("segmenter", Segmenter),
    "bisenetv2": _builder("bisenetv2", BiSeNetV2),
    "dilated_context": _builder("dilated_context", DilatedContextNet),
}

__all__ = [
    "SCRATCH_ARCHS", "READING_LIST_ARCHS", "UNet", "PSPNet", "DeepLabV3Plus", "SegFormerB0", "FastSCNN",
    "HRNetV2", "Segmenter", "BiSeNetV2", "DilatedContextNet",
]  # fmt: skip
