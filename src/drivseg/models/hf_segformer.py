"""Hugging Face ``transformers`` SegFormer, chosen by model id or local folder through ``--encoder``.

    --arch hf_segformer                                       # nvidia/mit-b0 layout, random init
    --arch hf_segformer --encoder nvidia/mit-b2 --encoder-weights imagenet    # hub weights (online)
    --arch hf_segformer --encoder path/to/folder              # a folder written by save_pretrained()

``transformers`` is optional (``pip install transformers``). The network is
``SegformerForSemanticSegmentation`` (Xie et al., "SegFormer: Simple and Efficient Design for
Semantic Segmentation with Transformers", NeurIPS 2021, arXiv:2105.15203); its 1/4-resolution
logits are upsampled to the input size. A folder's or the hub's decode-head classifier is
re-initialised when its number of classes differs from the dataset's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from drivseg.errors import ConfigError
from drivseg.models.padding import PadToMultiple

DEFAULT_MODEL_ID = "nvidia/mit-b0"
# MiT-B0..B5 (SegFormer paper, Table 6): random initialisation of these ids needs no download
MIT_CONFIGS: dict[str, dict[str, Any]] = {
    "b0": {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b1": {"hidden_sizes": [64, 128, 320, 512], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b2": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 4, 6, 3], "decoder_hidden_size": 768},
    "b3": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 4, 18, 3], "decoder_hidden_size": 768},
    "b4": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 8, 27, 3], "decoder_hidden_size": 768},
    "b5": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 6, 40, 3], "decoder_hidden_size": 768},
}
NVIDIA_ID = re.compile(r"^nvidia/(?:mit|segformer)-(b[0-5])(?:-|$)")
# the encoder's last stage is at 1/32 and its spatial reduction needs maps at least 8 wide at 1/4
STRIDE = 32
INSTALL_HINT = "pip install transformers (or pip install -r requirements.txt)"
SAVED = "save_pretrained()"


class HFSegformer(nn.Module):
    """``SegformerForSemanticSegmentation`` returning plain logits at the input size."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, C_in, H, W) images to (B, num_classes, H, W) logits."""
        logits = self.model(pixel_values=x).logits  # (B, num_classes, H/4, W/4)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_hf_segformer(
    num_classes: int,
    encoder: Optional[str] = None,
    encoder_weights: Optional[str] = None,
    in_channels: int = 3,
) -> nn.Module:
    """Registry builder: ``encoder`` is a hub model id (default nvidia/mit-b0) or a local folder.

    A folder always loads its weights; a model id loads hub weights with ``encoder_weights=
    "imagenet"`` and is randomly initialised from its configuration otherwise.
    """
    transformers = _import_transformers()
    source = encoder or DEFAULT_MODEL_ID
    weights = None if str(encoder_weights).lower() == "none" else str(encoder_weights)
    if weights not in (None, "imagenet"):
        raise ConfigError(
            f"hf_segformer takes --encoder-weights none or imagenet, got {weights!r}; to load your own "
            "weights pass the folder written by save_pretrained() as --encoder"
        )
    # id2label fixes the number of classes (a bare num_labels conflicts with a checkpoint's own map)
    id2label = {i: f"class_{i}" for i in range(num_classes)}
    label2id = {v: k for k, v in id2label.items()}
    overrides = {"id2label": id2label, "label2id": label2id, "num_channels": in_channels}
    folder = _local_folder(source)
    if folder is not None:
        model = _from_pretrained(transformers, str(folder), overrides, is_folder=True)
    elif weights == "imagenet":
        model = _from_pretrained(transformers, source, overrides, is_folder=False)
    else:
        model = transformers.SegformerForSemanticSegmentation(_config(transformers, source, overrides))
    return PadToMultiple(HFSegformer(model), STRIDE)


def _import_transformers():
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "--arch hf_segformer needs the optional package transformers, which is not installed: "
            f"{INSTALL_HINT}"
        ) from None
    return transformers


def _local_folder(source: str) -> Optional[Path]:
    """The folder ``source`` names, None for a hub model id; a path that is not a folder is an error."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ConfigError(f"--encoder {source} is a file; hf_segformer expects a folder written by {SAVED}")
    if source.startswith((".", "/", "~")):
        raise ConfigError(f"--encoder {source}: no such folder (expected a folder written by {SAVED})")
    return None


def _config(transformers, model_id: str, overrides: dict):
    """The model id's configuration: built in for nvidia's MiT-B0..B5, else from the hub (or its cache)."""
    match = NVIDIA_ID.match(model_id)
    if match:
        return transformers.SegformerConfig(**MIT_CONFIGS[match.group(1)], **overrides)
    try:
        return transformers.SegformerConfig.from_pretrained(model_id, **overrides)
    except Exception:  # hub / network failures surface as many exception types
        raise ConfigError(_hub_message(model_id)) from None


def _from_pretrained(transformers, source: str, overrides: dict, is_folder: bool):
    try:
        # ignore_mismatched_sizes: another class count (or input channels) re-initialises those layers
        return transformers.SegformerForSemanticSegmentation.from_pretrained(
            source, ignore_mismatched_sizes=True, **overrides
        )
    except Exception as err:  # hub / network / file-format failures surface as many exception types
        if is_folder:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise ConfigError(
                f"--encoder {source} cannot be loaded ({first}); expected a folder written by {SAVED}"
            ) from None
        raise ConfigError(_hub_message(source)) from None


def _hub_message(model_id: str) -> str:
    """One line: why a hub model id could not be loaded, and what works offline."""
    reason = "HF_HUB_OFFLINE is set" if _hub_offline() else "no connection to the hub, or no such model id"
    return (
        f"--encoder {model_id}: cannot download it from the Hugging Face hub ({reason}); offline, pass a "
        "folder written by save_pretrained() as --encoder, or --encoder-weights none for a randomly "
        "initialised nvidia/mit-b0..b5"
    )


def _hub_offline() -> bool:
    """What huggingface_hub decided from HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE at import time."""
    try:
        from huggingface_hub import constants

        return bool(constants.is_offline_mode())
    except (ImportError, AttributeError):
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
