"""Turn trained networks into class probabilities: test-time augmentation, sliding windows, ensembles.

Everything here maps a batch of RGB images in [0, 1] (B, 3, H, W) to softmax probabilities
(B, C, H, W) at the input resolution. Each ``ModelMember`` applies its own normalisation and input
scale, so members trained with different encoders (different mean/std) or image scales can be
ensembled. Augmented views, windows and members are averaged as probabilities, not logits: logits of
different networks are not on a common scale, probabilities are.

Whole images are passed to the network as they are: every registered architecture accepts any size
(SMP networks pad to their stride and crop the logits back, see ``drivseg.models.padding``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn

from drivseg.checkpoint import load_module
from drivseg.errors import ConfigError
from drivseg.sizes import parse_size
from drivseg.module import resize_logits as resize  # images and probabilities too
from drivseg.module import split_outputs

TTA_MODES = ("none", "flip", "ms")
DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)

# (B, 3, H, W) images in [0, 1] -> (B, C, H, W) probabilities
ProbFn = Callable[[torch.Tensor], torch.Tensor]


class ModelMember(nn.Module):
    """One network as a probability function: rescale -> normalise -> logits -> softmax -> input size.

    Args:
        net: maps normalised images (B, 3, h, w) to logits (B, C, h, w) (a ``SegmentationModule`` or
            a registry network in eval mode).
        mean, std: the normalisation the network was trained with (per RGB channel, for [0, 1] input).
        image_scale: the input scale the network was trained at (``--image-scale``).
    """

    def __init__(
        self,
        net: Callable[[torch.Tensor], torch.Tensor],
        mean: Sequence[float],
        std: Sequence[float],
        image_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.image_scale = float(image_scale)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = images.shape[-2:]
        x = rescale(images, self.image_scale)
        logits = split_outputs(self.net((x - self.mean) / self.std))[0]
        probs = logits.float().softmax(dim=1)
        return resize(probs, size)


class Ensemble(nn.Module):
    """Weighted mean of the members' probabilities. Weights default to equal and are normalised."""

    def __init__(self, members: Sequence[nn.Module], weights: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one model")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members):
            raise ConfigError(
                f"--weights has {len(weights)} values for {len(members)} checkpoints; give one per --ckpt"
            )
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"--weights {weights}: expected non-negative values with a positive sum")
        self.members = nn.ModuleList(members)
        self.weights = [w / sum(weights) for w in weights]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        total = None
        for member, weight in zip(self.members, self.weights):
            probs = weight * member(images)
            if total is not None and probs.shape[1] != total.shape[1]:
                raise ConfigError(f"ensemble members predict {total.shape[1]} and {probs.shape[1]} classes; "
                                  "all checkpoints must share one class set")
            total = probs if total is None else total + probs
        return total


@dataclass(frozen=True)
class InferenceSettings:
    """How to turn images into probabilities.

    Attributes:
        tta: ``none``; ``flip`` (mean of the image and its horizontal mirror); ``ms`` (every scale in
            ``scales``, each with and without the mirror: 2 x len(scales) views).
        scales: input scales of ``ms``, relative to the model's own ``image_scale``.
        window: (h, w) of the sliding window, in pixels of the (scaled) view; None: whole image.
        stride: (h, w) step between windows (None: half the window); overlaps are averaged.
    """

    tta: str = "none"
    scales: tuple[float, ...] = DEFAULT_SCALES
    window: Optional[tuple[int, int]] = None
    stride: Optional[tuple[int, int]] = None

    def __post_init__(self) -> None:
        if self.tta not in TTA_MODES:
            raise ConfigError(f"--tta {self.tta!r}: expected one of {', '.join(TTA_MODES)}")
        if self.tta == "ms" and (not self.scales or min(self.scales) <= 0):
            raise ConfigError(f"--scales {self.scales}: expected positive scales such as 0.75,1.0,1.25")
        if self.stride is not None and self.window is None:
            raise ConfigError("--stride needs --slide HxW (the window it moves)")
        if self.window is not None and self.stride is None:
            object.__setattr__(self, "stride", (max(1, self.window[0] // 2), max(1, self.window[1] // 2)))
        if self.window is not None and any(s < 1 or s > w for s, w in zip(self.stride, self.window)):
            raise ConfigError(f"--stride {self.stride[0]}x{self.stride[1]} must be between 1 and the window "
                              f"{self.window[0]}x{self.window[1]}, or pixels would be skipped")

    def views(self) -> list[tuple[float, bool]]:
        """(scale, mirrored) of every augmented view."""
        if self.tta == "none":
            return [(1.0, False)]
        scales = (1.0,) if self.tta == "flip" else self.scales
        return [(s, flip) for s in scales for flip in (False, True)]


@torch.no_grad()
def predict_probs(
    model: ProbFn, images: torch.Tensor, settings: InferenceSettings = InferenceSettings()
) -> torch.Tensor:
    """Probabilities (B, C, H, W) of ``images`` (B, 3, H, W), averaged over the TTA views."""
    size = images.shape[-2:]
    views = settings.views()
    total = None
    for scale, mirrored in views:
        x = rescale(images, scale)
        if mirrored:
            x = x.flip(-1)
        if settings.window:
            probs = slide_probs(model, x, settings.window, settings.stride)
        else:
            probs = model(x)
        if mirrored:
            probs = probs.flip(-1)
        probs = resize(probs, size)
        total = probs if total is None else total + probs
    return total / len(views)


@torch.no_grad()
def predict_views(
    model: ProbFn, images: torch.Tensor, views: Sequence[tuple[float, bool]]
) -> list[torch.Tensor]:
    """Probabilities (B, C, H, W) of each (scale, mirrored) view on its own, at the input size.

    The mean over ``InferenceSettings(...).views()`` is ``predict_probs`` (whole images); kept
    apart so ensemble.py can score every combination of views from one forward pass per view.
    """
    size = images.shape[-2:]
    out = []
    for scale, mirrored in views:
        x = rescale(images, scale)
        probs = model(x.flip(-1) if mirrored else x)
        out.append(resize(probs.flip(-1) if mirrored else probs, size))
    return out


@torch.no_grad()
def slide_probs(
    model: ProbFn, images: torch.Tensor, window: Sequence[int], stride: Sequence[int]
) -> torch.Tensor:
    """Run ``model`` on overlapping windows and average the probabilities where windows overlap.

    Windows never leave the image: the last one of a row/column is shifted inward, and an image
    smaller than the window is one window of the image's own size.
    """
    h, w = images.shape[-2:]
    total = count = None
    for top in window_starts(h, window[0], stride[0]):
        for left in window_starts(w, window[1], stride[1]):
            crop = images[..., top : top + window[0], left : left + window[1]]
            probs = model(crop)  # (B, C, wh, ww)
            if total is None:
                total = probs.new_zeros((*probs.shape[:2], h, w))
                count = probs.new_zeros((1, 1, h, w))
            total[..., top : top + crop.shape[-2], left : left + crop.shape[-1]] += probs
            count[..., top : top + crop.shape[-2], left : left + crop.shape[-1]] += 1
    return total / count


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Offsets of windows of ``window`` pixels every ``stride`` pixels, the last one ending at ``size``."""
    if size <= window:
        return [0]
    return [*range(0, size - window, stride), size - window]


def rescale(images: torch.Tensor, scale: float) -> torch.Tensor:
    """Resize images by ``scale`` (bilinear); scale 1 returns them unchanged."""
    if scale == 1.0:
        return images
    h, w = images.shape[-2:]
    return resize(images, (max(1, round(h * scale)), max(1, round(w * scale))))


def member_from_checkpoint(path: Path) -> tuple[ModelMember, dict]:
    """A checkpoint as an ensemble member, with its ``model_config`` (classes, palette, normalisation)."""
    module = load_module(path)
    cfg = dict(module.hparams.model_config)
    return ModelMember(module, cfg["mean"], cfg["std"], cfg.get("image_scale", 1.0)).eval(), cfg


def ensemble_from_checkpoints(
    paths: Sequence[Path], weights: Optional[Sequence[float]] = None
) -> tuple[Ensemble, dict]:
    """Load every checkpoint; fail when their class sets differ. Returns the first one's config."""
    members, configs = [], []
    for path in paths:
        member, cfg = member_from_checkpoint(Path(path))
        first = configs[0]["class_names"] if configs else None
        if first is not None and cfg["class_names"] != first:
            raise ConfigError(
                f"checkpoint {path} predicts {len(cfg['class_names'])} classes {cfg['class_names'][:4]}... "
                f"but {paths[0]} predicts {len(first)} {first[:4]}...; "
                "an ensemble needs checkpoints trained on the same classes"
            )
        members.append(member)
        configs.append(cfg)
    return Ensemble(members, weights).eval(), configs[0]


def add_inference_flags(parser: argparse.ArgumentParser, ckpt_required: bool = True) -> None:
    """The checkpoint / TTA / sliding-window flags eval.py and predict.py share."""
    g = parser.add_argument_group("model and test-time augmentation")
    g.add_argument("--ckpt", type=Path, action="append", required=ckpt_required, default=[],
                   help="checkpoint written by train.py; repeat for an ensemble")
    g.add_argument("--weights", help="ensemble weights, one per --ckpt, e.g. 0.6,0.4 (default: equal)")
    g.add_argument("--tta", default="none", choices=TTA_MODES, 
                   help="none (default) | flip | ms (scales x flip)")
    scales = ",".join(str(s) for s in DEFAULT_SCALES)
    g.add_argument("--scales", default=scales, help=f"scales of --tta ms (default: {scales})")
    g.add_argument("--slide", help="sliding window HxW (default: whole image)")
    g.add_argument("--stride", help="sliding window stride HxW (default: half the window)")
    g.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default: cpu")


def settings_from_flags(args: argparse.Namespace) -> InferenceSettings:
    """``InferenceSettings`` from the flags of ``add_inference_flags``."""
    return InferenceSettings(
        tta=args.tta,
        scales=tuple(parse_floats(args.scales, "--scales")),
        window=parse_size(args.slide, "--slide"),
        stride=parse_size(args.stride, "--stride"),
    )


def parse_weights(text: Optional[str], count: int) -> Optional[list[float]]:
    """``--weights 0.6,0.4`` -> [0.6, 0.4] (one per checkpoint); None -> equal weights."""
    if text is None:
        return None
    weights = parse_floats(text, "--weights")
    if len(weights) != count:
        raise ConfigError(
            f"--weights {text!r} has {len(weights)} values for {count} --ckpt; give one per checkpoint"
        )
    return weights


def parse_floats(text: str, flag: str) -> list[float]:
    """``"0.5,1.0,1.5"`` -> [0.5, 1.0, 1.5]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0.75,1.0,1.25") from None


def pick_device(name: str) -> torch.device:
    """``cpu`` | ``cuda``; asking for CUDA on a machine without it fails clearly."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA device is available; use --device cpu")
    return torch.device(name)
