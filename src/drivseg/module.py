"""``SegmentationModule``: the one LightningModule. It receives a network and a loss object and
knows nothing about file formats or which architecture it trains."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MaxMetric

from drivseg.metrics import StageMetrics

OPTIMIZERS = {
    "adamw": lambda params, lr, wd, momentum: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
    "adam": lambda params, lr, wd, momentum: torch.optim.Adam(params, lr=lr, weight_decay=wd),
    "sgd": lambda params, lr, wd, momentum: torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=momentum, nesterov=True),
}
SCHEDULERS = ("poly", "cosine", "onecycle", "none")


def split_outputs(out: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Network output -> (main logits, [aux logits]). Plain tensors have no aux outputs."""
    if isinstance(out, dict):
        aux = out.get("aux", [])
        return out["out"], list(aux) if isinstance(aux, (list, tuple)) else [aux]
    return out, []


def resize_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bring logits to the label resolution; evaluation never resizes the ground truth."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


class SegmentationModule(pl.LightningModule):
    """Trains any network mapping (B, 3, H, W) -> logits (B, C, H, W), optionally with aux heads.

    Args:
        net: the network (see ``drivseg.models``).
        loss: callable ``(logits, target) -> scalar`` honouring ignore index 255.
        class_names: names of the C classes, used for per-class log keys.
        aux_weight: weight of each auxiliary (deep supervision) loss; aux outputs are ignored at
            inference.
        model_config: everything needed to rebuild ``net`` and its data pipeline from a checkpoint
            (architecture, encoder, dataset, normalisation...). Stored in the checkpoint.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        class_names: Sequence[str],
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        scheduler: str = "poly",
        warmup_epochs: float = 0.0,
        aux_weight: float = 0.4,
        model_config: Optional[dict] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "loss"])
        self.net = net
        self.loss = loss
        self.class_names = list(class_names)
        num_classes = len(self.class_names)
        self.val_metrics = StageMetrics(num_classes)
        self.test_metrics = StageMetrics(num_classes)
        self.val_miou_best = MaxMetric()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Main logits only (aux heads are a training device)."""
        return split_outputs(self.net(images))[0]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images, masks = batch["image"], batch["mask"].long()  # (B, 3, H, W), (B, H, W)
        main, aux = split_outputs(self.net(images))
        loss = self.loss(resize_logits(main, masks.shape[-2:]), masks)
        for a in aux:
            loss = loss + self.hparams.aux_weight * self.loss(resize_logits(a, masks.shape[-2:]), masks)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(images))
        return loss

    def _eval_step(self, batch: dict, metrics: StageMetrics, stage: str) -> torch.Tensor:
        images, masks = batch["image"], batch["mask"].long()
        logits = resize_logits(self(images), masks.shape[-2:])
        self.log(f"{stage}/loss", self.loss(logits, masks), sync_dist=True, batch_size=len(images))
        preds = logits.argmax(dim=1)
        metrics.update(preds, masks)
        self.log(f"{stage}/mIoU", metrics.miou, prog_bar=True)
        self.log(f"{stage}/pixel_acc", metrics.pixel_acc)
        return preds

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return {"preds": self._eval_step(batch, self.val_metrics, "val")}

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return {"preds": self._eval_step(batch, self.test_metrics, "test")}

    def _log_per_class(self, metrics: StageMetrics, stage: str) -> None:
        per_class = metrics.iou_per_class.compute()  # (C,), synced across processes
        metrics.iou_per_class.reset()
        for name, value in zip(self.class_names, per_class):
            self.log(f"{stage}/IoU/{name}", value)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.val_miou_best(self.val_metrics.miou.compute())
            self.log("val/mIoU_best", self.val_miou_best.compute())
        self._log_per_class(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self._log_per_class(self.test_metrics, "test")

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {hp.optimizer!r}; valid: {sorted(OPTIMIZERS)}")
        # no weight decay on norms and biases: decaying them only hurts (standard practice)
        decay = [p for p in self.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.ndim <= 1]
        groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = OPTIMIZERS[hp.optimizer](groups, hp.lr, hp.weight_decay, hp.momentum)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = total / max(1, self.trainer.max_epochs or 1)
        warmup = int(hp.warmup_epochs * steps_per_epoch)
        scheduler = build_scheduler(optimizer, hp.scheduler, total, warmup, hp.lr)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def build_scheduler(optimizer, name: str, total_steps: int, warmup_steps: int, max_lr: float):
    """Per-step LR schedule with linear warmup; ``None`` for a constant LR without warmup."""
    if name == "onecycle":
        pct = warmup_steps / total_steps if warmup_steps else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct)
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; valid: {SCHEDULERS}")
    if name == "none" and not warmup_steps:
        return None

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if name == "poly":
            return (1 - t) ** 0.9
        if name == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
