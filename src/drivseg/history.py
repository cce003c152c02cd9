"""``RUN/history.csv``: one row per training epoch (and per budget stop), whatever the logger.

Columns: epoch, step, elapsed_seconds (fit wall clock, continued across resumes), lr, train/loss
(epoch mean), and val/loss, val/mIoU, val/pixel_acc when that epoch ended with a validation
(empty otherwise). Read by the run report and by anyone with a spreadsheet.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl

COLUMNS = ("epoch", "step", "elapsed_seconds", "lr", "train/loss", "val/loss", "val/mIoU", "val/pixel_acc")
VAL_KEYS = ("val/loss", "val/mIoU", "val/pixel_acc")


def _number(value) -> Optional[float]:
    try:
        return round(float(value), 6)
    except (TypeError, ValueError):
        return None


class HistoryWriter(pl.Callback):
    """Appends a row to ``path`` at the end of every training epoch (rank 0 only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._val: dict = {}

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._val = {k: _number(trainer.callback_metrics.get(k)) for k in VAL_KEYS}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        from drivseg.budget import WallClockBudget

        budget = next((cb for cb in trainer.callbacks if isinstance(cb, WallClockBudget)), None)
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        row = {
            "epoch": trainer.current_epoch + 1,
            "step": trainer.global_step,
            "elapsed_seconds": None if budget is None else round(budget.tick(), 2),
            "lr": _number(lr),
            "train/loss": _number(trainer.callback_metrics.get("train/loss_epoch")),
            **self._val,
        }
        self._val = {}
        new = not self.path.is_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})


def read_history(path: Path) -> list[dict[str, Optional[float]]]:
    """Rows of ``history.csv`` with numbers as floats and empty cells as None."""
    with open(path, newline="") as f:
        return [{k: _number(v) if v != "" else None for k, v in row.items()} for row in csv.DictReader(f)]
