"""Build the Lightning Trainer from the resolved config: devices, DDP, precision, callbacks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import Logger

from drivseg.errors import ConfigError

BEST_CHECKPOINT = "best"


def resolve_devices(cfg: argparse.Namespace) -> tuple[str, int, str]:
    """(accelerator, devices, strategy). ``--gpus N`` is shorthand for N CUDA devices with DDP."""
    if cfg.gpus:
        found = torch.cuda.device_count()
        if found < cfg.gpus:
            raise ConfigError(
                f"--gpus {cfg.gpus} asked for {cfg.gpus} CUDA devices, found {found}. "
                f"To run DDP on CPU use --accelerator cpu --devices {cfg.gpus}"
            )
        return "gpu", cfg.gpus, "ddp" if cfg.gpus > 1 or cfg.num_nodes > 1 else cfg.strategy
    many = cfg.devices > 1 or cfg.num_nodes > 1
    strategy = "ddp" if many and cfg.strategy == "auto" else cfg.strategy
    return cfg.accelerator, cfg.devices, strategy


def use_sync_batchnorm(accelerator: str, processes: int) -> bool:
    """SyncBatchNorm only with several processes, and only on CUDA (torch refuses it on CPU:
    CPU DDP keeps per-process BatchNorm statistics)."""
    on_cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return processes > 1 and on_cuda


def max_time(text: Optional[str]) -> Optional[str]:
    """``HH:MM:SS`` -> Lightning's ``DD:HH:MM:SS``."""
    if text is None:
        return None
    h, m, s = (int(x) for x in text.split(":"))
    return f"{h // 24:02d}:{h % 24:02d}:{m:02d}:{s:02d}"


def build_trainer(cfg: argparse.Namespace, run_dir: Path, logger: Optional[Logger], callbacks: list) -> pl.Trainer:
    """Trainer with best-by-val/mIoU and last checkpoints under ``run_dir/checkpoints``."""
    accelerator, devices, strategy = resolve_devices(cfg)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename=BEST_CHECKPOINT,
        monitor="val/mIoU",
        mode="max",
        save_last=True,
        auto_insert_metric_name=False,
    )
    callbacks = [checkpoint, *callbacks]
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        num_nodes=cfg.num_nodes,
        sync_batchnorm=use_sync_batchnorm(accelerator, devices * cfg.num_nodes),
        precision=cfg.precision,
        max_epochs=cfg.epochs,
        max_time=max_time(cfg.max_time),
        gradient_clip_val=cfg.grad_clip or None,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        fast_dev_run=cfg.fast_dev_run,
        limit_train_batches=_limit(cfg.limit_train_batches),
        limit_val_batches=_limit(cfg.limit_val_batches),
        deterministic=False,
        log_every_n_steps=5,
        num_sanity_val_steps=0,
    )


def _limit(value: float):
    """Lightning reads 1.0 as "all" and 5 as "5 batches": keep integers integral."""
    return int(value) if value > 1 or value == 0 else value
