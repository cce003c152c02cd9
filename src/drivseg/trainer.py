"""Build the Lightning Trainer from the resolved config: devices, DDP, precision, callbacks."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import Logger
from pytorch_lightning.strategies import DDPStrategy

from drivseg.averaging import averaging_callbacks
from drivseg.budget import ValidationCadence, WallClockBudget
from drivseg.checkpointing import BestCheckpoint, RngState, RunCheckpoints, checkpoint_io
from drivseg.durations import parse_cadence, parse_duration
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


def build_strategy(name: str, timeout_seconds: Optional[float]):
    """``ddp`` with a bounded collective timeout: if a process dies where Lightning cannot notice,
    the others fail after this long instead of torch's default 30 minutes."""
    if name == "ddp":
        return DDPStrategy(timeout=timedelta(seconds=timeout_seconds or 1800))
    return name


def build_callbacks(cfg: argparse.Namespace, run_dir: Path, resume_hint: str = "") -> list[pl.Callback]:
    """Budget (first: the others read its stop), validation cadence, checkpoints, RNG states, and
    the weight average of ``--ema`` / ``--swa-epochs`` (see ``drivseg.averaging``)."""
    checkpoints = run_dir / "checkpoints"
    best = BestCheckpoint(
        dirpath=checkpoints,
        filename=BEST_CHECKPOINT,
        monitor="val/mIoU",
        mode="max",
        save_last=False,
        auto_insert_metric_name=False,
        enable_version_counter=False,  # resuming into the same folder keeps one best.ckpt
    )
    return [
        WallClockBudget(parse_duration(cfg.max_time, "--max-time")),
        ValidationCadence(parse_cadence(cfg.val_every, "--val-every")),
        best,
        RunCheckpoints(checkpoints, cfg.save_every_epoch, parse_duration(cfg.checkpoint_every, "--checkpoint-every"),
                       resume_hint, best=best),
        RngState(),
        *averaging_callbacks(cfg),
    ]


def build_trainer(
    cfg: argparse.Namespace,
    run_dir: Path,
    logger: Optional[Logger],
    callbacks: list,
    precision: Optional[str] = None,
    resume_hint: str = "",
) -> pl.Trainer:
    """Trainer with best-by-val/mIoU, last and per-epoch checkpoints under ``run_dir/checkpoints``."""
    accelerator, devices, strategy = resolve_devices(cfg)
    callbacks = [*build_callbacks(cfg, run_dir, resume_hint), *callbacks]
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=build_strategy(strategy, parse_duration(cfg.ddp_timeout, "--ddp-timeout")),
        num_nodes=cfg.num_nodes,
        sync_batchnorm=use_sync_batchnorm(accelerator, devices * cfg.num_nodes),
        precision=precision or cfg.precision,
        max_epochs=cfg.epochs,
        gradient_clip_val=cfg.grad_clip or None,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        plugins=[checkpoint_io()],
        default_root_dir=str(run_dir),
        fast_dev_run=cfg.fast_dev_run,
        limit_train_batches=_limit(cfg.limit_train_batches),
        limit_val_batches=_limit(cfg.limit_val_batches),
        deterministic=bool(cfg.deterministic),
        detect_anomaly=bool(cfg.detect_anomaly),
        # the train sampler splits the data across processes itself (seeded by epoch, resumable)
        use_distributed_sampler=False,
        enable_checkpointing=True,
        log_every_n_steps=cfg.log_every_n_steps,
        num_sanity_val_steps=0,
    )


def _limit(value: float):
    """Lightning reads 1.0 as "all" and 5 as "5 batches": keep integers integral."""
    return int(value) if value > 1 or value == 0 else value
