"""Epoch metrics (mIoU, per-class IoU, pixel accuracy) against a numpy confusion-matrix reference,
directly and through ``SegmentationModule`` validation, for several batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.losses import build_loss
from drivseg.metrics import StageMetrics
from drivseg.module import SegmentationModule

CLASS_NAMES = ["road", "car", "sky", "person", "sign", "bike"]
NUM_CLASSES = len(CLASS_NAMES)


def reference_metrics(preds: np.ndarray, target: np.ndarray, num_classes: int) -> dict:
    """mIoU over classes present in prediction or target, per-class IoU (0 when absent from
    both), pixel accuracy; pixels labelled 255 are left out."""
    valid = target != IGNORE_INDEX
    t, p = target[valid].astype(np.int64), preds[valid].astype(np.int64)
    conf = np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)
    tp = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - tp  # tp + fp + fn
    iou = np.where(union > 0, tp / np.maximum(union, 1), 0.0)
    return {"mIoU": iou[union > 0].mean(), "iou": iou, "pixel_acc": tp.sum() / valid.sum()}


def _random_epoch(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and targets for ``n`` 6x7 images. Targets use classes 0-3 and 255, predictions
    0-4: class 4 only ever predicted (IoU 0, counts in the mean), class 5 nowhere (left out)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 4, (n, 6, 7), generator=g)
    target[torch.rand(n, 6, 7, generator=g) < 0.2] = IGNORE_INDEX
    # predictions agree with the target 60% of the time so IoUs are far from 0 and 1
    noise = torch.randint(0, 5, (n, 6, 7), generator=g)
    preds = torch.where(torch.rand(n, 6, 7, generator=g) < 0.6, target.clamp(max=3), noise)
    return preds, target


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_stage_metrics_match_confusion_matrix_reference(batch_size: int) -> None:
    preds, target = _random_epoch()
    metrics = StageMetrics(NUM_CLASSES)
    for p, t in zip(preds.split(batch_size), target.split(batch_size)):
        metrics.update(p, t)
    ref = reference_metrics(preds.numpy(), target.numpy(), NUM_CLASSES)

    assert ref["iou"][4] == 0 and ref["iou"][5] == 0  # the example covers both absent-class cases
    scores = metrics.compute()
    assert scores["mIoU"].item() == pytest.approx(ref["mIoU"], abs=1e-6)
    assert scores["iou"].tolist() == pytest.approx(ref["iou"].tolist(), abs=1e-6)
    assert scores["pixel_acc"].item() == pytest.approx(ref["pixel_acc"], abs=1e-6)
    # the matrix is torchmetrics' own: its JaccardIndex gives the same per-class values
    assert metrics.jaccard.compute().tolist() == pytest.approx(ref["iou"].tolist(), abs=1e-6)


def test_miou_leaves_out_only_classes_absent_from_both() -> None:
    # 1x5 image. target [0 0 1 1 255], pred [0 1 1 2 3]:
    #   class 0: tp 1, fn 1 -> 1/2; class 1: tp 1, fp 1, fn 1 -> 1/3
    #   class 2: fp 1 -> 0, predicted only, still in the mean
    #   class 3: predicted only on a void pixel, so absent from both -> left out of the mean
    #   mIoU = (1/2 + 1/3 + 0) / 3 = 5/18; pixel accuracy 2/4
    metrics = StageMetrics(4)
    metrics.update(torch.tensor([[[0, 1, 1, 2, 3]]]), torch.tensor([[[0, 0, 1, 1, IGNORE_INDEX]]]))
    scores = metrics.compute()
    assert scores["mIoU"].item() == pytest.approx(5 / 18)
    assert scores["iou"].tolist() == pytest.approx([1 / 2, 1 / 3, 0.0, 0.0])
    assert scores["pixel_acc"].item() == pytest.approx(0.5)


# ---------------------------------------------------------------- through the LightningModule


class FixedNet(nn.Module):
    """A deterministic 1x1 convolution: per-pixel class scores from the colour."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(num_classes, 3, 1, 1, generator=g))
            self.conv.bias.copy_(torch.randn(num_classes, generator=g) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _samples(n: int = 10, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        mask = torch.randint(0, NUM_CLASSES, (8, 9), generator=g)
        mask[torch.rand(8, 9, generator=g) < 0.15] = IGNORE_INDEX
        samples.append({"image": torch.randn(3, 8, 9, generator=g), "mask": mask, "name": f"img{i:02d}.png"})
    return samples


def _validate(module: pl.LightningModule, samples: list[dict], batch_size: int) -> dict:
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    (results,) = trainer.validate(module, DataLoader(samples, batch_size=batch_size), verbose=False)
    return results


def _reference_for(net: nn.Module, samples: list[dict]) -> dict:
    with torch.no_grad():
        preds = np.stack([net(s["image"][None])[0].argmax(0).numpy() for s in samples])
    target = np.stack([s["mask"].numpy() for s in samples])
    return reference_metrics(preds, target, NUM_CLASSES)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_validation_logs_dataset_wide_metrics(batch_size: int) -> None:
    samples = _samples(n=10)  # 10 is not a multiple of 3 or 8: the last batch is smaller
    net = FixedNet(NUM_CLASSES)
    module = SegmentationModule(net, build_loss("ce"), CLASS_NAMES)
    results = _validate(module, samples, batch_size)
    ref = _reference_for(net, samples)

    assert 0.05 < ref["mIoU"] < 0.95  # a non-trivial example
    assert results["val/mIoU"] == pytest.approx(ref["mIoU"], abs=1e-6)
    assert results["val/pixel_acc"] == pytest.approx(ref["pixel_acc"], abs=1e-6)
    for name, iou in zip(CLASS_NAMES, ref["iou"]):
        assert results[f"val/IoU/{name}"] == pytest.approx(iou, abs=1e-6)


def test_second_validation_does_not_accumulate_the_first() -> None:
    net = FixedNet(NUM_CLASSES)
    module = SegmentationModule(net, build_loss("ce"), CLASS_NAMES)
    first, second = _samples(n=7, seed=1), _samples(n=5, seed=2)
    _validate(module, first, batch_size=4)
    results = _validate(module, second, batch_size=4)
    ref = _reference_for(net, second)
    assert results["val/mIoU"] == pytest.approx(ref["mIoU"], abs=1e-6)
    assert results["val/pixel_acc"] == pytest.approx(ref["pixel_acc"], abs=1e-6)
    for name, iou in zip(CLASS_NAMES, ref["iou"]):
        assert results[f"val/IoU/{name}"] == pytest.approx(iou, abs=1e-6)
