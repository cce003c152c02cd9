"""Rebuild a trained network from a checkpoint written by ``train.py``.

Checkpoints are read with ``torch.load(weights_only=True)``: only tensors and plain containers are
unpickled, so a checkpoint from an untrusted source cannot run code. ``train.py`` stores everything
needed to rebuild the network (architecture, encoder, classes, normalisation) as plain values in
``hyper_parameters["model_config"]``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from drivseg.errors import ConfigError
from drivseg.losses import build_loss
from drivseg.models import build_model
from drivseg.module import SegmentationModule


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely; a missing, truncated or foreign file gives one clear error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, wrong format, unsafe pickle: all unusable here
        raise ConfigError(f"checkpoint {path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0]}); "
                          "is it complete and written by train.py?") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "model_config" not in ckpt.get("hyper_parameters", {}):
        raise ConfigError(f"checkpoint {path} has no state_dict/model_config; it was not written by train.py")
    return ckpt


def load_module(path: Path) -> SegmentationModule:
    """The ``SegmentationModule`` of a checkpoint, in eval mode, on the CPU."""
    ckpt = read_checkpoint(path)
    hp = dict(ckpt["hyper_parameters"])
    cfg = hp.pop("model_config")
    hp["compile"] = False  # a training speed-up; inference and export use the plain network
    net = build_model(cfg["arch"], cfg["num_classes"], cfg["encoder"], encoder_weights=None)
    module = SegmentationModule(net, build_loss("ce"), **hp, model_config=cfg)
    # the loss is a training device: weights of a weighted loss live in the state dict, skip them
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("loss.")}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("loss.")]
    if missing or unexpected:
        raise ConfigError(f"checkpoint {path} does not match {cfg['arch']}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return module.eval()
