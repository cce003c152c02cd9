"""segmentation_models_pytorch architectures, any SMP or timm (``tu-...``) encoder by name."""

from __future__ import annotations

from functools import partial
from typing import Optional

import segmentation_models_pytorch as smp
import torch.nn as nn

from drivseg.errors import ConfigError
from drivseg.models.padding import PadToMultiple

# encoder used when --encoder is not given; SMP's own defaults are large ImageNet models
DEFAULT_ENCODERS = {
    "segformer": "mit_b0",
    "dpt": "tu-vit_tiny_patch16_224",
}
# EfficientNet-Lite0: its ImageNet weights ship as a dependency (they load without internet) and it
# is among the fastest ImageNet encoders on CPUs; resnet18 and every other encoder stay one flag away
FALLBACK_ENCODER = "tf_efficientnet_lite0"
# DPT halves its ViT token grid (patch 16) and upsamples back: it needs an even number of tokens
MIN_MULTIPLE = {"dpt": 32}
# PAN's pyramid attention pools down to 1/128 of the input and fails on smaller inputs
MIN_SIZE = {"pan": 128}
# extra constructor arguments some architectures need to accept arbitrary input sizes
ARCH_KWARGS = {"dpt": {"dynamic_img_size": True}}


def build_smp(
    arch: str,
    num_classes: int,
    encoder: Optional[str] = None,
    encoder_weights: Optional[str] = None,
    in_channels: int = 3,
) -> nn.Module:
    """Build SMP architecture ``arch`` wrapped so any input size works (padded to the stride)."""
    encoder = smp_encoder_name(encoder or default_encoder(arch))
    try:
        net = smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=num_classes,
            **ARCH_KWARGS.get(arch, {}),
        )
    except (RuntimeError, ValueError, KeyError) as err:
        raise ConfigError(f"cannot build {arch} with encoder {encoder}: {err}") from err
    except AssertionError as err:  # timm asserts (without a message) on output strides a backbone lacks
        raise ConfigError(
            f"cannot build {arch} with encoder {encoder}: the encoder does not support this architecture's "
            f"output stride{f' ({err})' if str(err) else ''}; use unet, fpn, upernet or segformer with it"
        ) from err
    multiple = max(getattr(net.encoder, "output_stride", 32), MIN_MULTIPLE.get(arch, 1))
    return PadToMultiple(net, multiple, MIN_SIZE.get(arch, 1))


def default_encoder(arch: str) -> str:
    return DEFAULT_ENCODERS.get(arch, FALLBACK_ENCODER)


def smp_encoder_name(encoder: str) -> str:
    """SMP's encoder name: SMP's own names as they are, any timm model as ``tu-<name>``.

    Unknown names fail listing similar valid ones.
    """
    if encoder in smp.encoders.get_encoder_names() or encoder.startswith("tu-"):
        return encoder
    import timm

    if timm.is_model(encoder):
        return f"tu-{encoder}"
    import difflib

    names = list(dict.fromkeys([*smp.encoders.get_encoder_names(), *timm.list_models()]))
    close = difflib.get_close_matches(encoder, names, n=8, cutoff=0.6)
    raise ConfigError(
        f"unknown encoder {encoder!r}; similar valid names: {', '.join(close) or 'none'}. "
        "Valid: segmentation_models_pytorch.encoders.get_encoder_names() or any timm model name"
    )


SMP_ARCHS = {name: partial(build_smp, name) for name in smp.MODEL_ARCHITECTURES_MAPPING}
