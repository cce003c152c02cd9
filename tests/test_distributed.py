"""Real DDP on CPU (2 gloo processes): metrics synced across ranks, exactly one W&B run."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl

from drivseg.checkpoint import load_module
from drivseg.data.camvid import CAMVID
from drivseg.data.datamodule import SegmentationDataModule

from tests.conftest import run_train


@pytest.mark.slow
def test_two_process_ddp_val_miou_equals_one_process(tiny_camvid, tmp_path) -> None:
    run_dir = tmp_path / "ddp"
    proc = run_train(
        [
            "--data", "camvid", "--data-root", str(tiny_camvid), "--crop-size", "32x48",
            "--batch-size", "2", "--eval-batch-size", "2", "--num-workers", "0", "--epochs", "1",
            "--accelerator", "cpu", "--devices", "2", "--logger", "wandb", "--output-dir", str(run_dir),
        ],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "logging offline" in proc.stdout + proc.stderr  # no credentials: said in one line
    results = json.loads((run_dir / "results.json").read_text())

    # the same checkpoint scored by ONE process over the same 5 val images (ranks saw 3 and 2)
    module = load_module(results["best_checkpoint"])
    dm = SegmentationDataModule(CAMVID, tiny_camvid, batch_size=2, num_workers=0)
    dm.setup()
    # the same precision as the run (--precision auto picks bf16-mixed on CPUs with native bf16)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         precision=results["precision"])
    single = trainer.validate(module, datamodule=dm, verbose=False)[0]
    assert results["val/mIoU"] == pytest.approx(single["val/mIoU"], abs=1e-6)
    assert results["val/pixel_acc"] == pytest.approx(single["val/pixel_acc"], abs=1e-6)
    assert results["val/IoU/Road"] == pytest.approx(single["val/IoU/Road"], abs=1e-6)

    # exactly one W&B run, with validation images logged as masks
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    assert list(runs[0].glob("files/media/images/val/examples*")), "no validation images logged"
