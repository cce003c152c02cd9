"""Turn a resolved config into the objects ``train.py`` wires together."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from drivseg.data.datamodule import IMAGENET_MEAN, IMAGENET_STD, SegmentationDataModule
from drivseg.data.label_spec import LabelSpec
from drivseg.data.source import DatasetSource
from drivseg.data.transforms import load_augment
from drivseg.errors import ConfigError
from drivseg.losses import build_loss, median_frequency_weights
from drivseg.models import build_model
from drivseg.models.pretrained import OFFLINE_IMAGENET
from drivseg.module import SegmentationModule
from drivseg.performance import resolve_channels_last

RUN_NAME_ENV = "DRIVSEG_RUN_NAME"


def normalization(encoder: Optional[str], encoder_weights: Optional[str]) -> tuple[tuple, tuple]:
    """Input mean/std the encoder's pretrained weights expect (ImageNet statistics by default)."""
    if encoder in OFFLINE_IMAGENET:
        entry = OFFLINE_IMAGENET[encoder]
        return tuple(entry["mean"]), tuple(entry["std"])
    if encoder and encoder.startswith("tu-"):
        import timm

        cfg = timm.models.get_pretrained_cfg(encoder[3:])
        if cfg is not None:
            return tuple(cfg.mean), tuple(cfg.std)
    return IMAGENET_MEAN, IMAGENET_STD


def build_datamodule(cfg: argparse.Namespace, source: DatasetSource, root: Path) -> SegmentationDataModule:
    """The loaders of ``cfg``; with ``--folds-file`` / ``--fold`` the train and val splits are those of the fold."""
    split_pairs = None
    if cfg.folds_file is not None:
        from drivseg.folds import fold_split

        split_pairs = fold_split(Path(cfg.folds_file), cfg.fold, source, root)
    return SegmentationDataModule(
        source, root, cfg.batch_size, cfg.eval_batch_size, cfg.num_workers, cfg.crop_size, cfg.image_scale,
        cfg.scale_range, load_augment(cfg.augment), cfg.seed, cfg.bad_samples, split_pairs,
    )  # fmt: skip


def class_weights(spec: Optional[str], dm: SegmentationDataModule) -> Optional[torch.Tensor]:
    """``none`` | ``median-freq`` (from the train split) | ``w0,w1,...`` (one per class)."""
    if spec is None or str(spec).lower() in ("none", "null", ""):
        return None
    if spec == "median-freq":
        return median_frequency_weights(*dm.class_pixel_stats())
    try:
        weights = [float(w) for w in str(spec).split(",")]
    except ValueError:
        raise ConfigError(f"--class-weights {spec!r}: expected none, median-freq or a comma-separated list") from None
    if len(weights) != dm.num_classes:
        raise ConfigError(f"--class-weights has {len(weights)} values; {dm.source.name} has {dm.num_classes} classes")
    return torch.tensor(weights)


def build_module(
    cfg: argparse.Namespace, spec: LabelSpec, weights: Optional[torch.Tensor], mean: Sequence, std: Sequence
) -> SegmentationModule:
    """Network + loss + optimisation settings -> the LightningModule."""
    if cfg.num_classes is not None and cfg.num_classes != spec.num_classes:
        raise ConfigError(
            f"--num-classes {cfg.num_classes} but the {spec.name} label spec has {spec.num_classes} classes; "
            "drop --num-classes (the dataset defines it)"
        )
    net = build_model(cfg.arch, spec.num_classes, cfg.encoder, cfg.encoder_weights)
    loss = build_loss(cfg.loss, weights, cfg.label_smoothing)
    model_config = {
        "arch": cfg.arch,
        "encoder": cfg.encoder,
        "num_classes": spec.num_classes,
        "data": cfg.data,
        "taxonomy": cfg.taxonomy,
        "class_names": list(spec.class_names),
        "palette": [list(c) for c in spec.palette],
        "mean": list(mean),
        "std": list(std),
        "image_scale": cfg.image_scale,
    }
    return SegmentationModule(
        net,
        loss,
        spec.class_names,
        optimizer=cfg.optimizer,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        scheduler=cfg.scheduler,
        warmup_epochs=cfg.warmup_epochs,
        aux_weight=cfg.aux_weight,
        channels_last=resolve_channels_last(cfg.channels_last, cfg.arch),
        compile=cfg.compile,
        model_config=model_config,
    )


def run_name(cfg: argparse.Namespace) -> str:
    """``--run-name`` or ``<data>-<arch>-<encoder>-<time>``, the same in every DDP process.

    Lightning starts the other DDP ranks by re-running this script; they inherit the environment,
    so the first process's name is passed down through it.
    """
    name = cfg.run_name or os.environ.get(RUN_NAME_ENV)
    if not name:
        encoder = (cfg.encoder or "default").replace("/", "_")
        name = f"{cfg.data}-{cfg.arch}-{encoder}-{time.strftime('%Y%m%d-%H%M%S')}"
    os.environ[RUN_NAME_ENV] = name
    return name
