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

from drivseg.data.datamodule import IMAGENET_MEAN, IMAGENET_STD
from drivseg.data.transforms import normalize
from drivseg.errors import DrivsegError
from drivseg.budget import WallClockBudget
from drivseg.metrics import StageMetrics, confusion_scores
from drivseg.scores import BoundaryF1, PerImageMIoU, matrix_per_class, matrix_summary
from drivseg.schedule import SCHEDULERS, build_scheduler, step_progress

OPTIMIZERS = {
    "adamw": lambda params, lr, wd, momentum: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
    "adam": lambda params, lr, wd, momentum: torch.optim.Adam(params, lr=lr, weight_decay=wd),
    "sgd": lambda params, lr, wd, momentum: torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=momentum, nesterov=True),
}
__all__ = ["SegmentationModule", "OPTIMIZERS", "SCHEDULERS", "build_scheduler", "split_outputs", "resize_logits",
           "class_ids"]


class NonFiniteLossError(DrivsegError):
    """The training loss became NaN or infinite (diverged, or a bad sample)."""


def split_outputs(out: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Network output -> (main logits, [aux logits]). Plain tensors have no aux outputs."""
    if isinstance(out, dict):
        aux = out.get("aux", [])
        return out["out"], list(aux) if isinstance(aux, (list, tuple)) else [aux]
    return out, []


def resize_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) logits, probabilities or images to ``size`` (as given when
    already that size). Evaluation brings scores to the label resolution and never resizes the
    ground truth; resized probabilities still sum to 1 (a convex mix)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def class_ids(scores: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The index of the highest score along ``dim`` (int64), the first one on ties, as ``argmax``.

    ``max(dim).indices`` and not ``argmax(dim)``: on CPUs PyTorch's argmax over a dimension that is
    not the innermost is several times slower than ``max`` over the same dimension, on one thread and
    on several (pytorch/pytorch#140000); the class dimension of (B, C, H, W) scores never is the
    innermost. ``benchmarks/class_ids.py`` measures both.
    """
    return scores.max(dim=dim).indices


class SegmentationModule(pl.LightningModule):
    """Trains any network mapping (B, 3, H, W) -> logits (B, C, H, W), optionally with aux heads.

    Batches hold uint8 images (normalised here, on the device, with ``model_config``'s mean/std) or
    images already normalised as floats, and uint8/int masks with 255 = ignore.

    Args:
        net: the network (see ``drivseg.models``).
        loss: callable ``(logits, target) -> scalar`` honouring ignore index 255.
        class_names: names of the C classes, used for per-class log keys.
        aux_weight: weight of each auxiliary (deep supervision) loss; aux outputs are ignored at
            inference.
        channels_last: run the network on NHWC tensors (faster convolutions on CPUs for most CNNs).
        compile: train and validate through ``torch.compile(net)``; ``forward`` (export, inference)
            and the checkpoint keep the plain network.
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
        channels_last: bool = False,
        compile: bool = False,
        model_config: Optional[dict] = None,
    ) -> None:
        super().__init__()
        # logger=False: train.py logs the resolved config itself (drivseg.loggers.log_config); these
        # arguments logged on top would overwrite keys of it (channels_last: auto -> False) and fight
        # the keys a W&B sweep locks. They are still saved in every checkpoint.
        self.save_hyperparameters(ignore=["net", "loss"], logger=False)
        self.net = net
        self.loss = loss
        self.class_names = list(class_names)
        num_classes = len(self.class_names)
        self.val_metrics = StageMetrics(num_classes)
        self.test_metrics = StageMetrics(num_classes)
        self.val_miou_best = MaxMetric()
        # per-image scores cost a few ms per image: only when ``extended_metrics`` is set (train.py
        # sets it for the final scoring of the best checkpoint)
        self.extended_metrics = False
        self.per_image_miou = PerImageMIoU(num_classes)
        self.boundary_f1 = BoundaryF1(num_classes)
        cfg = model_config or {}
        # not persistent: they come from model_config, and checkpoints stay loadable without them
        self.register_buffer("mean", torch.tensor(cfg.get("mean", IMAGENET_MEAN)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", IMAGENET_STD)).view(1, 3, 1, 1), persistent=False)
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # not an attribute nn.Module registers: the compiled wrapper would duplicate every weight in
        # the state dict under another name
        object.__setattr__(self, "_run_net", torch.compile(self.net) if compile else self.net)
        self.skipped_samples: list[tuple[str, str]] = []  # (file, reason) with --bad-samples skip
        self.last_matrices: dict[str, torch.Tensor] = {}  # stage -> last epoch's confusion matrix

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Main logits only (aux heads are a training device). ``images`` are normalised floats."""
        return split_outputs(self.net(images))[0]

    def inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch as the network takes it: normalised float images (channels_last where the network
        runs so) and int64 masks, on the batch's device."""
        images = batch["image"]
        if images.dtype == torch.uint8:
            images = normalize(images, self.mean, self.std)  # (B, 3, H, W) float on the device
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, batch["mask"].long()  # (B, H, W)

    def _note_skipped(self, batch: dict) -> None:
        for name, reason in batch.get("skipped", []):
            self.skipped_samples.append((name, reason))
            print(f"skipped unreadable sample {name}: {reason}", flush=True)

    def training_step(self, batch: dict, batch_idx: int) -> Optional[torch.Tensor]:
        self._note_skipped(batch)
        if len(batch["image"]) == 0:
            return None  # every sample of the batch was unreadable (--bad-samples skip)
        images, masks = self.inputs(batch)
        main, aux = split_outputs(self._run_net(images))
        loss = self.loss(resize_logits(main, masks.shape[-2:]), masks)
        for a in aux:
            loss = loss + self.hparams.aux_weight * self.loss(resize_logits(a, masks.shape[-2:]), masks)
        if not torch.isfinite(loss):
            # stop before backward: the weights (and the last checkpoint) are still those of the last good step
            names = ", ".join(batch.get("name", [])[:16])
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step} "
                f"(batch {batch_idx}: {names}); lower --lr, add --grad-clip, check these files, or rerun "
                "with --detect-anomaly to find the operation"
            )
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(images))
        return loss

    def _eval_step(self, batch: dict, metrics: StageMetrics, stage: str) -> Optional[torch.Tensor]:
        self._note_skipped(batch)
        if len(batch["image"]) == 0:
            return None
        images, masks = self.inputs(batch)
        logits = resize_logits(split_outputs(self._run_net(images))[0], masks.shape[-2:])
        self.log(f"{stage}/loss", self.loss(logits, masks), sync_dist=True, batch_size=len(images))
        preds = class_ids(logits)
        metrics.update(preds, masks)
        if self.extended_metrics:
            self.per_image_miou.update(preds, masks)
            self.boundary_f1.update(preds, masks)
        return preds

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return {"preds": self._eval_step(batch, self.val_metrics, "val")}

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return {"preds": self._eval_step(batch, self.test_metrics, "test")}

    def _log_epoch(self, metrics: StageMetrics, stage: str) -> dict[str, torch.Tensor]:
        matrix = metrics.matrix()  # synced across processes
        metrics.reset()
        self.last_matrices[stage] = matrix.cpu()
        scores = confusion_scores(matrix)
        self.log(f"{stage}/mIoU", scores["mIoU"], prog_bar=True, sync_dist=True)
        self.log(f"{stage}/pixel_acc", scores["pixel_acc"], sync_dist=True)
        for name, value in zip(self.class_names, scores["iou"]):
            self.log(f"{stage}/IoU/{name}", value, sync_dist=True)
        m = matrix.cpu().numpy()
        for key, value in matrix_summary(m).items():
            if value is not None:
                self.log(f"{stage}/{key}", float(value), sync_dist=True)
        if self.extended_metrics:
            self._log_extended(m, stage)
        return scores

    def _log_extended(self, matrix, stage: str) -> None:
        """Per-class Dice, class accuracy and boundary F1, and the per-image mIoU (see drivseg.scores)."""
        per_image, bf = self.per_image_miou.compute(), self.boundary_f1.per_class()
        self.per_image_miou.reset()
        self.boundary_f1.reset()
        for key, values in (matrix_per_class(matrix) | {"BF": bf.cpu().numpy()}).items():
            for name, value in zip(self.class_names, values):
                if value == value:  # NaN: the class was never seen, nothing to report
                    self.log(f"{stage}/{key}/{name}", float(value), sync_dist=True)
        measured = bf[~bf.isnan()]
        if len(measured):
            self.log(f"{stage}/mBF", float(measured.mean()), sync_dist=True)
        if per_image == per_image:
            self.log(f"{stage}/mIoU_per_image", float(per_image), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        scores = self._log_epoch(self.val_metrics, "val")
        if not self.trainer.sanity_checking:
            self.val_miou_best(scores["mIoU"])
            self.log("val/mIoU_best", self.val_miou_best.compute())

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_metrics, "test")

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {hp.optimizer!r}; valid: {sorted(OPTIMIZERS)}")
        # no weight decay on norms and biases: decaying them only hurts (standard practice)
        decay = [p for p in self.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.ndim <= 1]
        groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = OPTIMIZERS[hp.optimizer](groups, hp.lr, hp.weight_decay, hp.momentum)
        total = max(1, self._stepping_batches())
        steps_per_epoch = total / max(1, self.trainer.max_epochs or 1)
        warmup = int(hp.warmup_epochs * steps_per_epoch)
        # step -> run progress in [0, 1]; SWA (drivseg.averaging) follows the schedule's clock through it
        self.progress_fn = self._progress(total)
        scheduler = build_scheduler(optimizer, hp.scheduler, total, warmup, hp.lr, self.progress_fn)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _stepping_batches(self) -> int:
        """Optimizer steps of the whole run. With a datamodule they are counted from a loader object
        without iterating it: Lightning's ``estimated_stepping_batches`` would create the train
        iterator here, before a resumed run's epoch is restored, and its workers would start
        prefetching the batches of the wrong epoch."""
        trainer = self.trainer
        dm = trainer.datamodule
        if dm is None or trainer.max_steps != -1 or not trainer.max_epochs:
            return int(trainer.estimated_stepping_batches)
        batches = len(dm.train_dataloader())
        limit = trainer.limit_train_batches
        batches = min(batches, int(limit)) if isinstance(limit, int) else int(batches * limit)
        return math.ceil(max(1, batches) / trainer.accumulate_grad_batches) * trainer.max_epochs

    def _progress(self, total_steps: int):
        """Steps over the epochs' steps or, with a wall-clock budget, whichever of that and the
        budget's used fraction is further (``--epochs`` then only caps the run)."""
        by_steps = step_progress(total_steps)
        budget = next((cb for cb in self.trainer.callbacks if isinstance(cb, WallClockBudget) and cb.seconds), None)
        if budget is None:
            return by_steps
        return lambda step: max(by_steps(step), budget.fraction())
