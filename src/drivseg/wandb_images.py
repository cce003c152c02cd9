"""Validation images in W&B: a few of each epoch, and the epoch's worst images by per-image mIoU,
each as a ``wandb.Image`` with ground-truth and predicted masks (class names, toggled in the UI)."""

from __future__ import annotations

import heapq
from typing import Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from drivseg.data.label_spec import LabelSpec
from drivseg.loggers import wandb_run


def display_rgb(image: torch.Tensor, size: Sequence[int], mean: torch.Tensor, std: torch.Tensor) -> np.ndarray:
    """A loader image (uint8, or normalised floats) as (H, W, 3) uint8 at the label size ``size``."""
    unit = image.float() / 255 if image.dtype == torch.uint8 else image.float() * std + mean
    # eval with --image-scale resizes inputs only: show the image at the label resolution
    unit = F.interpolate(unit[None], size=tuple(size), mode="bilinear")[0]
    return (unit.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def masked_image(rgb: np.ndarray, mask: torch.Tensor, pred: torch.Tensor, class_labels: dict, caption: Optional[str] = None):
    """``wandb.Image`` of ``rgb`` with the ``ground_truth`` and ``prediction`` masks."""
    import wandb

    return wandb.Image(
        rgb,
        caption=caption,
        masks={
            "prediction": {"mask_data": pred.numpy().astype(np.uint8), "class_labels": class_labels},
            "ground_truth": {"mask_data": mask.numpy().astype(np.uint8), "class_labels": class_labels},
        },
    )


def per_image_miou(preds: torch.Tensor, masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """mIoU of each image (B,) over the classes in its labels or predictions; NaN without labels."""
    from drivseg.scores import per_image_confusion

    cm = per_image_confusion(preds, masks, num_classes).double()  # (B, C, C)
    tp = cm.diagonal(dim1=1, dim2=2)
    union = cm.sum(1) + cm.sum(2) - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), torch.zeros_like(tp))
    counted = present.sum(1)
    return torch.where(counted > 0, iou.sum(1) / counted.clamp_min(1), torch.full_like(tp[:, 0], float("nan")))


class WorstImages:
    """The ``k`` validation images of an epoch with the lowest per-image mIoU (kept on the CPU)."""

    def __init__(self, k: int, num_classes: int) -> None:
        self.k = k
        self.num_classes = num_classes
        self._heap: list = []  # (-score, order, name, image, mask, pred): the root is the best of the kept
        self._order = 0

    def update(self, batch: dict, preds: torch.Tensor) -> None:
        if self.k <= 0:
            return
        masks = batch["mask"]
        scores = per_image_miou(preds.cpu(), masks.cpu(), self.num_classes)
        names = batch.get("name", [""] * len(masks))
        for i, score in enumerate(scores.tolist()):
            if score != score:  # NaN: no labelled pixel
                continue
            item = (-score, self._order, names[i], batch["image"][i].cpu(), masks[i].cpu(), preds[i].cpu())
            self._order += 1
            if len(self._heap) < self.k:
                heapq.heappush(self._heap, item)
            elif -score > self._heap[0][0]:
                heapq.heapreplace(self._heap, item)

    def pop_all(self) -> list[tuple[float, str, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(score, name, image, mask, pred), worst first; the tracker is empty afterwards."""
        items = sorted(self._heap, key=lambda t: (-t[0], t[1]))
        self._heap, self._order = [], 0
        return [(-s, name, image, mask, pred) for s, _, name, image, mask, pred in items]


class WandbValidationImages(pl.Callback):
    """Logs ``num_images`` images of the first validation batch as ``val/examples`` each epoch."""

    def __init__(self, label_spec: LabelSpec, mean, std, num_images: int = 4) -> None:
        self.class_labels = label_spec.wandb_class_labels()
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.num_images = num_images
        self._batch = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and trainer.is_global_zero and not trainer.sanity_checking and outputs["preds"] is not None:
            n = self.num_images
            self._batch = (batch["image"][:n].cpu(), batch["mask"][:n].cpu(), outputs["preds"][:n].cpu())

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        run = wandb_run(trainer) if self._batch is not None else None
        if run is None:
            return
        images, masks, preds = self._batch
        self._batch = None
        logged = [masked_image(display_rgb(image, mask.shape[-2:], self.mean, self.std), mask, pred, self.class_labels)
                  for image, mask, pred in zip(images, masks, preds)]
        run.log({"val/examples": logged, "trainer/global_step": trainer.global_step})
