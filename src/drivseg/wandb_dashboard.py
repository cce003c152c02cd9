"""What a run shows in W&B beyond the scalars Lightning logs.

- ``val/mIoU`` (and ``val/mIoU_best``, ``val/pixel_acc``) with summary = max, ``val/loss`` with
  summary = min, so the runs table and a sweep's objective use the best value, not the last;
- each validation epoch: the row-normalised confusion matrix as an image (``val/confusion_matrix``,
  with W&B's step slider) and the epoch's worst images by per-image mIoU (``val/worst``, masks
  with class names; the first-batch examples are ``val/examples``, see ``drivseg.wandb_images``);
- for the best checkpoint, scored again at the end of the run (and for the test split when there
  is one): a per-class IoU ``wandb.Table`` with a bar chart (``best/IoU_table``, ``best/IoU_bar``)
  and ``wandb.plot``'s confusion matrix drawn from our pixel counts (``best/confusion_matrix``);
- in the summary: ``model/parameters``, ``model/GMACs`` at the train input size (one forward of one
  image, counted by ``torch.utils.flop_counter``), ``perf/train_images_per_s`` (images over the
  time spent in training steps and loading their data) and ``perf/peak_memory_MB`` (CUDA: the
  allocator's peak; CPU: the process's peak resident memory);
- ``--log-checkpoint``: ``best.ckpt`` as a ``model`` artifact ``model-<run id>`` with aliases
  ``best`` and ``latest`` and the score in its metadata.

Everything happens on rank 0 only; the worst images are those of rank 0's share of the split.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch

from drivseg.data.label_spec import LabelSpec
from drivseg.loggers import WandbRunState, wandb_run
from drivseg.metrics import confusion_scores
from drivseg.wandb_images import WandbValidationImages, WorstImages, display_rgb, masked_image

# (metric, summary) pairs; every metric is plotted against trainer/global_step like Lightning's
SUMMARIES = (("val/mIoU", "max"), ("val/mIoU_best", "max"), ("val/pixel_acc", "max"), ("val/loss", "min"))
STEP = "trainer/global_step"


def wandb_callbacks(cfg: argparse.Namespace, run_dir: Path, label_spec: LabelSpec, mean, std) -> list[pl.Callback]:
    """The W&B callbacks of a run: run id in checkpoints, example and worst images, the dashboard."""
    return [
        WandbRunState(run_dir, cfg.resume),
        WandbValidationImages(label_spec, mean, std, cfg.log_images),
        WandbDashboard(label_spec, mean, std, cfg.log_images, bool(cfg.log_checkpoint)),
    ]


def count_macs(net: torch.nn.Module, size: Sequence[int], device: torch.device) -> float:
    """Multiply-accumulates of one forward pass of one (3, H, W) image, eval mode, no gradients."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()  # BatchNorm must not update its statistics with this image
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, 3, *size, device=device))
    finally:
        net.train(was_training)
    return counter.get_total_flops() / 2


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: the CUDA allocator's on a GPU, the resident set size on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def confusion_image(matrix: np.ndarray, class_names: Sequence[str]):
    """The row-normalised confusion matrix (eval.py's heat map) as a ``wandb.Image``."""
    import wandb
    from PIL import Image

    from drivseg.evaluation import plot_confusion

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "confusion.png"
        plot_confusion(matrix, class_names, path)
        with Image.open(path) as picture:
            return wandb.Image(np.asarray(picture.convert("RGB")))


def confusion_plot(matrix: np.ndarray, class_names: Sequence[str], title: str):
    """``wandb.plot``'s confusion matrix chart, from our pixel counts (W&B's own helper would need
    one list entry per pixel)."""
    import wandb

    rows = [[class_names[i], class_names[j], int(matrix[i, j])] for i in range(len(class_names))
            for j in range(len(class_names))]
    table = wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=rows)
    fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
    return wandb.plot_table("wandb/confusion_matrix/v1", table, fields, {"title": title})


def iou_table(matrix: np.ndarray, class_names: Sequence[str]):
    """Per-class IoU as a ``wandb.Table`` (class, IoU, labelled pixels); unseen classes have IoU None."""
    import wandb

    scores = confusion_scores(torch.from_numpy(matrix))
    union = matrix.sum(0) + matrix.sum(1) - np.diag(matrix)
    rows = [[name, float(iou) if union[i] > 0 else None, int(matrix[i].sum())]
            for i, (name, iou) in enumerate(zip(class_names, scores["iou"].tolist()))]
    return wandb.Table(columns=["class", "IoU", "pixels"], data=rows)


class WandbDashboard(pl.Callback):
    """Confusion matrices, per-class tables, worst images, model size and speed, model artifact."""

    def __init__(self, label_spec: LabelSpec, mean, std, num_worst: int = 4, log_checkpoint: bool = False) -> None:
        self.class_names = list(label_spec.class_names)
        self.class_labels = label_spec.wandb_class_labels()
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.worst = WorstImages(num_worst, label_spec.num_classes)
        self.log_checkpoint = log_checkpoint
        self._macs_done = False
        self._images = 0
        self._seconds_before = 0.0

    # ------------------------------------------------------------------ fit
    def setup(self, trainer, pl_module, stage: str) -> None:
        run = wandb_run(trainer) if stage == "fit" else None
        if run is None:
            return
        for name, summary in SUMMARIES:
            run.define_metric(name, step_metric=STEP, summary=summary)
        # what rebuilds the network (classes, palette, normalisation): not part of config.yaml
        run.config.update({"model_config": pl_module.hparams.get("model_config")}, allow_val_change=True)
        params = sum(p.numel() for p in pl_module.parameters())
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        run.summary.update({"model/parameters": params, "model/trainable_parameters": trainable})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch["image"]) * trainer.world_size
        if self._macs_done or not trainer.is_global_zero or len(batch["image"]) == 0:
            return
        self._macs_done = True
        run = wandb_run(trainer)
        size = tuple(batch["image"].shape[-2:])
        try:
            macs = count_macs(pl_module.net, size, pl_module.device)
        except Exception as err:  # an op the counter cannot trace (e.g. a compiled network): no MACs
            print(f"W&B: MACs not counted ({type(err).__name__}: {err})", flush=True)
            return
        run.summary.update({"model/GMACs": macs / 1e9, "model/input_size": f"{size[0]}x{size[1]}"})

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        run = wandb_run(trainer)
        if run is None:
            return
        seconds = _loop_seconds(trainer) - self._seconds_before
        perf = {"perf/peak_memory_MB": peak_memory_mb(pl_module.device)}
        if seconds > 0:
            perf["perf/train_images_per_s"] = self._images / seconds
        run.log({**perf, STEP: trainer.global_step})
        run.summary.update(perf)

    def on_train_start(self, trainer, pl_module) -> None:
        # counted from here: a resumed run's budget already holds the seconds of the earlier part
        self._images = 0
        self._seconds_before = _loop_seconds(trainer)

    # ------------------------------------------------------------------ validation / test
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking and outputs and outputs.get("preds") is not None:
            self.worst.update(batch, outputs["preds"])

    def on_validation_end(self, trainer, pl_module) -> None:
        worst = self.worst.pop_all()
        run = wandb_run(trainer)
        matrix = pl_module.last_matrices.get("val")
        if run is None or trainer.sanity_checking or matrix is None:
            return
        matrix = matrix.numpy()
        logged = {"val/confusion_matrix": confusion_image(matrix, self.class_names)}
        if worst:
            logged["val/worst"] = [
                masked_image(display_rgb(image, mask.shape[-2:], self.mean, self.std), mask, pred, self.class_labels,
                             caption=f"{name}  mIoU {100 * score:.1f}%")
                for score, name, image, mask, pred in worst
            ]
        if trainer.state.fn != "fit":  # train.py's final pass over the best checkpoint
            logged |= self._tables(matrix, "best", "val")
        run.log({**logged, STEP: trainer.global_step})

    def on_test_end(self, trainer, pl_module) -> None:
        run = wandb_run(trainer)
        matrix = pl_module.last_matrices.get("test")
        if run is not None and matrix is not None:
            run.log({**self._tables(matrix.numpy(), "test", "test"), STEP: trainer.global_step})

    def _tables(self, matrix: np.ndarray, prefix: str, split: str) -> dict:
        import wandb

        table = iou_table(matrix, self.class_names)
        scores = confusion_scores(torch.from_numpy(matrix))
        return {
            f"{prefix}/IoU_table": table,
            f"{prefix}/IoU_bar": wandb.plot.bar(table, "class", "IoU", title=f"IoU per class ({split}, best checkpoint)"),
            f"{prefix}/confusion_matrix": confusion_plot(matrix, self.class_names, f"confusion matrix ({split}, pixels)"),
            f"{prefix}/{split}_mIoU": float(scores["mIoU"]),
        }

    # ------------------------------------------------------------------ model artifact
    def on_fit_end(self, trainer, pl_module) -> None:
        run = wandb_run(trainer)
        best = trainer.checkpoint_callback
        if not self.log_checkpoint or run is None or best is None or not best.best_model_path:
            return
        log_model_artifact(run, Path(best.best_model_path), best.best_model_score, pl_module)


def _loop_seconds(trainer: pl.Trainer) -> float:
    """Seconds fit spent in training steps and waiting for their data (``WallClockBudget``)."""
    from drivseg.budget import WallClockBudget

    budget = next((cb for cb in trainer.callbacks if isinstance(cb, WallClockBudget)), None)
    return budget.split["train_seconds"] + budget.split["data_seconds"] if budget else 0.0


def log_model_artifact(run, path: Path, score: Optional[torch.Tensor], pl_module: pl.LightningModule) -> str:
    """Upload ``path`` as the ``model`` artifact ``model-<run id>`` (aliases best, latest); returns
    the name ``eval.py --ckpt wandb:ENTITY/PROJECT/NAME:best`` takes."""
    import wandb

    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    cfg = dict(pl_module.hparams.get("model_config") or {})
    metadata = {
        "val/mIoU": None if score is None else float(score),
        "monitor": "val/mIoU",
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "averaged_weights": "averaging_state" in ckpt,
        **{k: cfg.get(k) for k in ("arch", "encoder", "data", "taxonomy", "num_classes", "class_names")},
    }
    name = f"model-{run.id}"
    artifact = wandb.Artifact(name, type="model", metadata=metadata)
    artifact.add_file(str(path), name=path.name)
    run.log_artifact(artifact, aliases=["best", "latest"])
    entity = getattr(run, "entity", None) or "ENTITY"
    print(f"W&B: {path.name} logged as model artifact {name} (aliases best, latest); score it with "
          f"python eval.py --ckpt wandb:{entity}/{run.project}/{name}:best", flush=True)
    return name
