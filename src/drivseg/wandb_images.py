"""Callback: a few validation images with ground-truth and predicted masks, each epoch, in W&B."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from drivseg.data.label_spec import LabelSpec


class WandbValidationImages(pl.Callback):
    """Logs ``num_images`` images of the first validation batch as ``wandb.Image`` with masks."""

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
        if self._batch is None or not trainer.is_global_zero:
            return
        import wandb

        images, masks, preds = self._batch
        self._batch = None
        logged = []
        for image, mask, pred in zip(images, masks, preds):
            # eval with --image-scale resizes inputs only: show the image at the label resolution
            unit = image.float() / 255 if image.dtype == torch.uint8 else image.float() * self.std + self.mean
            unit = F.interpolate(unit[None], size=mask.shape[-2:], mode="bilinear")[0]
            rgb = (unit.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            logged.append(
                wandb.Image(
                    rgb,
                    masks={
                        "prediction": {"mask_data": pred.numpy().astype(np.uint8), "class_labels": self.class_labels},
                        "ground_truth": {"mask_data": mask.numpy().astype(np.uint8), "class_labels": self.class_labels},
                    },
                )
            )
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.experiment.log({"val/examples": logged, "trainer/global_step": trainer.global_step})
