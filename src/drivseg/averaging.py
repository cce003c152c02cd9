"""Averages of the weights: an exponential moving average (``--ema DECAY``) or stochastic weight
averaging over the end of the run (``--swa-epochs N``), on Lightning's ``WeightAveraging``.

Both keep an ``AveragedModel`` next to the trained one and use it wherever a model is *used*:

- every validation during ``fit`` runs on the averaged weights (swapped in and out again), so
  ``val/mIoU``, the best checkpoint and ``val/mIoU_best`` are those of the averaged model;
- a checkpoint's ``state_dict`` holds the averaged weights (what ``drivseg.checkpoint.load_module``
  and therefore eval.py, predict.py and export.py read); the trained weights are kept under
  ``current_model_state`` and the average's counter under ``averaging_state``, so ``--resume``
  continues both;
- after ``fit`` the module holds the averaged weights.

**EMA** is Lightning's ``EMAWeightAveraging``: after every optimizer step
``ema = d * ema + (1 - d) * w`` (the first step copies ``w``), BatchNorm statistics included. The
decay warms up, ``d = min(decay, (1 + n) / (10 + n))`` after n updates (the rule of TensorFlow's
``ExponentialMovingAverage(num_updates=...)``): with a constant 0.999 the weights of the first
steps, still close to the random initialisation, would keep most of the weight for ~1000 steps,
longer than a short CPU budget lasts.

**SWA** (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima") runs on the same clock as
the LR schedule, the run's *progress* in [0, 1] (steps of ``--epochs`` done or, with
``--max-time``, the larger of that and the budget's used fraction; see ``drivseg.schedule``). The
last ``N / epochs`` of the progress is the SWA phase: the LR is held at ``--swa-lr`` (default
0.05 x ``--lr``) and the weights are recorded ``N`` times, at progress ``(epochs - N + k) / epochs``
for k = 1..N. Without a budget these are exactly the ends of the last N epochs; with a budget they
are the ends of the last N "budget epochs" (``budget / epochs`` each), so ``--swa-epochs`` means
the same fraction of the run whichever of epochs or time ends it. The average is the plain mean of
the recorded weights. BatchNorm running statistics are not averaged: they are recomputed for the
averaged weights with one pass over the training data (train transforms, no gradients) whenever the
average has changed and is about to be validated, saved or kept. The best checkpoint is chosen
among validations of the average only: the first recording resets ModelCheckpoint's best score.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Iterable, Optional

import pytorch_lightning as pl
import torch
import torch.nn as nn
from pytorch_lightning.callbacks import EMAWeightAveraging, WeightAveraging
from pytorch_lightning.utilities import rank_zero_info

# a threshold and a progress computed from the same steps may differ by rounding
PROGRESS_TOLERANCE = 1e-9
DEFAULT_SWA_LR_FACTOR = 0.05


def averaging_callbacks(cfg: argparse.Namespace) -> list[pl.Callback]:
    """The callback ``--ema`` / ``--swa-epochs`` ask for (none when both are off)."""
    if cfg.ema is not None:
        return [EMAWeights(decay=cfg.ema)]
    if cfg.swa_epochs:
        swa_lr = cfg.swa_lr if cfg.swa_lr is not None else DEFAULT_SWA_LR_FACTOR * cfg.lr
        return [SWAWeights(cfg.swa_epochs, cfg.epochs, swa_lr)]
    return []


def _fitting(trainer: pl.Trainer) -> bool:
    return trainer.state.fn == "fit"


class _UseTheAverage:
    """Rules shared by EMA and SWA on top of ``WeightAveraging`` (mixed in before it).

    Lightning's callback swaps the average in at every validation and restores the trained
    weights from ``current_model_state`` whenever a checkpoint is loaded. Here that happens only
    during ``fit`` and once something has been averaged: ``trainer.validate(ckpt_path=best)`` after
    fit must score the checkpoint's ``state_dict`` (already the average) as it is, and an SWA average
    that has recorded nothing yet holds the initial weights, which are never worth validating.
    """

    _average_model: Optional[nn.Module]

    def averaged(self) -> bool:
        """True once the average holds at least one recorded set of weights."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def _prepare(self, trainer: pl.Trainer) -> None:
        """Make the average ready to be used (SWA recomputes its BatchNorm statistics here)."""

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._swapped = _fitting(trainer) and self.averaged()
        if self._swapped:
            self._prepare(trainer)
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if getattr(self, "_swapped", False):
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_end(self, trainer, pl_module) -> None:
        if self.averaged():
            self._prepare(trainer)
            self._copy_average_to_current(pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if self._average_model is None:
            return
        if self.averaged():
            self._prepare(trainer)
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
            return
        # nothing averaged yet: the weights to use are the trained ones; store the same layout so
        # a resume restores an empty average
        checkpoint["current_model_state"] = checkpoint["state_dict"]
        checkpoint["averaging_state"] = {"n_averaged": self._average_model.n_averaged.detach().clone()}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if _fitting(trainer):
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def ema_decay(decay: float, updates: int) -> float:
    """The decay of the EMA update that follows ``updates`` earlier ones (warmed up, see above)."""
    return min(decay, (1 + updates) / (10 + updates))


def warmed_up_ema(decay: float):
    """``AveragedModel`` ``avg_fn``: ``ema * d + w * (1 - d)`` with ``d = ema_decay(decay, n)``."""

    def average(ema: torch.Tensor, current: torch.Tensor, n_averaged: torch.Tensor) -> torch.Tensor:
        # tensor arithmetic, not ema_decay(): no device sync per parameter on a GPU
        d = torch.clamp((1 + n_averaged) / (10 + n_averaged), max=decay)
        return ema * d + current * (1 - d)

    return average


class EMAWeights(_UseTheAverage, EMAWeightAveraging):
    """``--ema DECAY``: an exponential moving average updated after every optimizer step."""

    def __init__(self, decay: float) -> None:
        super().__init__(decay=decay)
        self.decay = decay
        self._kwargs["avg_fn"] = warmed_up_ema(decay)  # AveragedModel is built from these at setup


class SWAWeights(_UseTheAverage, WeightAveraging):
    """``--swa-epochs N``: the mean of N weight snapshots over the last N/epochs of the run.

    Args:
        swa_epochs: N, the number of snapshots (and of epochs, or budget epochs, in the SWA phase).
        epochs: ``--epochs`` of the run (the unit N is counted in).
        swa_lr: the constant learning rate of the SWA phase.
    """

    def __init__(self, swa_epochs: int, epochs: int, swa_lr: float) -> None:
        # BatchNorm statistics of an average of weights are recomputed, not averaged
        super().__init__(use_buffers=False)
        self.swa_epochs = int(swa_epochs)
        self.epochs = int(epochs)
        self.swa_lr = float(swa_lr)
        self._bn_current = True  # BatchNorm statistics match the averaged weights
        self._announced = False

    # ------------------------------------------------------------------ the SWA clock
    @property
    def start(self) -> float:
        """Progress at which the SWA phase (constant LR) begins."""
        return swa_start(self.swa_epochs, self.epochs)

    def progress(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        """The run's progress, the value the LR schedule reads (steps, or the budget's fraction)."""
        fn = getattr(pl_module, "progress_fn", None)
        if fn is not None:
            return float(fn(trainer.global_step))
        total = max(1, int(trainer.estimated_stepping_batches))
        return min(1.0, trainer.global_step / total)

    def _hold_lr(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """In the SWA phase, the LR is ``swa_lr``. The schedule sets the LR after every step (before
        ``on_train_batch_end``): set here at both ends of a batch, the step runs with the SWA LR and
        the logs (LearningRateMonitor, history.csv) show it."""
        if self.progress(trainer, pl_module) + PROGRESS_TOLERANCE < self.start:
            return
        if not self._announced:
            rank_zero_info(f"SWA phase from step {trainer.global_step}: learning rate {self.swa_lr:g}, "
                           f"{self.swa_epochs} snapshots of the weights")
            self._announced = True
        for group in trainer.optimizers[0].param_groups:
            group["lr"] = self.swa_lr

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._hold_lr(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._hold_lr(trainer, pl_module)
        if trainer.global_step <= self._latest_update_step:  # no optimizer step (accumulation)
            return
        recorded = int(self._average_model.n_averaged)
        if not snapshot_due(self.progress(trainer, pl_module), recorded, self.swa_epochs, self.epochs):
            return
        self._average_model.update_parameters(pl_module)
        self._latest_update_step = trainer.global_step
        self._bn_current = False
        if recorded == 0:
            forget_best_score(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pass  # snapshots are taken on the progress clock above, not per epoch

    # ------------------------------------------------------------------ BatchNorm
    def _prepare(self, trainer: pl.Trainer) -> None:
        if self._bn_current:
            return
        recompute_batchnorm(self._average_model.module, bn_batches(trainer))
        self._bn_current = True

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "swa_epochs": self.swa_epochs, "epochs": self.epochs}


def swa_start(swa_epochs: int, epochs: int) -> float:
    """Progress where the SWA phase starts: the last ``swa_epochs / epochs`` of the run."""
    return max(0.0, 1.0 - swa_epochs / epochs)


def snapshot_due(progress: float, recorded: int, swa_epochs: int, epochs: int) -> bool:
    """True when snapshot ``recorded + 1`` is due: at progress ``(epochs - N + k) / epochs``."""
    if recorded >= swa_epochs:
        return False
    return progress + PROGRESS_TOLERANCE >= (epochs - swa_epochs + recorded + 1) / epochs


def forget_best_score(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
    """From the first SWA snapshot on, only validations of the average compete for best.ckpt."""
    for cb in trainer.checkpoint_callbacks:
        cb.best_k_models = {}
        cb.kth_best_model_path = ""
        cb.best_model_score = None
        cb.kth_value = torch.tensor(math.inf if cb.mode == "min" else -math.inf)
    best = getattr(pl_module, "val_miou_best", None)
    if best is not None:
        best.reset()


def bn_batches(trainer: pl.Trainer) -> Iterable[dict]:
    """One pass over the training data for BatchNorm statistics: the run's train split and train
    transforms in a loader of its own (the fit loop's iterator is left where it is)."""
    from torch.utils.data import DataLoader

    from drivseg.data.dataset import pad_collate
    from drivseg.data.sampling import EpochShuffleSampler

    dm = trainer.datamodule
    if dm is None or not hasattr(dm, "dataset"):
        return trainer.train_dataloader
    ds = dm.dataset("train", train=True)
    sampler = EpochShuffleSampler(len(ds), dm.seed, shuffle=True, rank=trainer.global_rank,
                                  world_size=trainer.world_size)
    limit = trainer.limit_train_batches
    loader = DataLoader(ds, batch_size=dm.batch_size, sampler=sampler, num_workers=dm.num_workers,
                        collate_fn=pad_collate)
    total = len(loader)
    count = min(total, int(limit)) if isinstance(limit, int) else max(1, int(total * limit))
    return (batch for i, batch in zip(range(count), loader))


@torch.no_grad()
def recompute_batchnorm(module: nn.Module, batches: Iterable[dict]) -> None:
    """Reset every BatchNorm layer of ``module`` and recompute its running mean and variance as the
    plain average over ``batches`` (``momentum=None``), as ``torch.optim.swa_utils.update_bn`` does
    for batches of dicts holding uint8 or normalised images."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    from drivseg.data.transforms import normalize

    momenta = {}
    for bn in norms:
        bn.reset_running_stats()
        momenta[bn] = bn.momentum
        bn.momentum = None
    was_training = module.training
    module.train()
    device = next(module.parameters()).device
    for batch in batches:
        images = batch["image"].to(device)
        if len(images) == 0:
            continue
        if images.dtype == torch.uint8:
            images = normalize(images, module.mean, module.std)
        module.net(images) if hasattr(module, "net") else module(images)
    for bn, momentum in momenta.items():
        bn.momentum = momentum
    module.train(was_training)
