"""EMA and SWA of the weights: hand-computed averages, what validation and checkpoints hold, resume."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

import train
from drivseg.averaging import SWAWeights, recompute_batchnorm, bn_batches, snapshot_due, swa_start
from drivseg.checkpoint import load_module, read_checkpoint
from drivseg.cli import parse_config
from drivseg.data import get_source
from drivseg.errors import ConfigError
from drivseg.experiment import build_datamodule
from drivseg.history import read_history

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WEIGHT = "net.features.0.0.weight"  # tiny_fcn's first convolution
BN_MEAN = "net.features.0.1.running_mean"
BN_VAR = "net.features.0.1.running_var"


def tiny_args(root, run_dir, *extra) -> list[str]:
    """tiny_fcn on 8 train images in batches of 4: 2 optimizer steps per epoch."""
    return ["--data", "camvid", "--data-root", str(root), "--arch", "tiny_fcn", "--crop-size", "32x48",
            "--batch-size", "4", "--num-workers", "0", "--logger", "none", "--no-report",
            "--output-dir", str(run_dir), *extra]


class Recorder(pl.Callback):
    """The LR each step ran with and the trained weights after each optimizer step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights.append({k: v.detach().clone() for k, v in pl_module.state_dict().items() if k.startswith("net.")})


def run(argv, *callbacks) -> int:
    return train.train(argv, extra_callbacks=list(callbacks))


def scored(ckpt, root) -> float:
    """val mIoU of a checkpoint's network as eval.py / export.py load it (``load_module``)."""
    module = load_module(ckpt)
    cfg = parse_config(["--data", "camvid", "--data-root", str(root), "--batch-size", "4", "--num-workers", "0"])
    dm = build_datamodule(cfg, get_source("camvid", str(root)), root)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         precision=json.loads((ckpt.parent.parent / "results.json").read_text())["precision"])
    return trainer.validate(module, datamodule=dm, verbose=False)[0]["val/mIoU"]


def test_ema_weights_are_the_exponential_average_of_the_trained_ones(tiny_camvid, tmp_path) -> None:
    run_dir, rec, decay = tmp_path / "ema", Recorder(), 0.25
    assert run(tiny_args(tiny_camvid, run_dir, "--epochs", "3", "--ema", str(decay)), rec) == 0
    assert len(rec.weights) == 6
    expected = rec.weights[0][WEIGHT]  # the first update copies the weights
    for n, step in enumerate(rec.weights[1:], start=1):
        d = min(decay, (1 + n) / (10 + n))  # warmed up: 2/11 for the second update, then 0.25
        expected = d * expected + (1 - d) * step[WEIGHT]
    last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    torch.testing.assert_close(last["state_dict"][WEIGHT], expected, rtol=0, atol=1e-6)
    # the trained weights are kept for --resume, and differ from the average
    torch.testing.assert_close(last["current_model_state"][WEIGHT], rec.weights[-1][WEIGHT], rtol=0, atol=0)
    assert not torch.allclose(last["state_dict"][WEIGHT], last["current_model_state"][WEIGHT])
    # what eval.py / export.py load is the average
    torch.testing.assert_close(load_module(run_dir / "checkpoints" / "last.ckpt").state_dict()[WEIGHT], expected,
                               rtol=0, atol=1e-6)


def test_validation_and_the_best_checkpoint_score_the_averaged_weights(tiny_camvid, tmp_path) -> None:
    run_dir = tmp_path / "ema"
    assert run(tiny_args(tiny_camvid, run_dir, "--epochs", "2", "--ema", "0.5")) == 0
    results = json.loads((run_dir / "results.json").read_text())
    ckpts = run_dir / "checkpoints"
    # the final scores are those of best.ckpt's state_dict (the average), as eval.py would score it
    assert results["val/mIoU"] == pytest.approx(scored(ckpts / "best.ckpt", tiny_camvid), abs=1e-6)
    # the validation at the end of the last epoch ran on the average saved in last.ckpt
    history = [row for row in read_history(run_dir / "history.csv") if row["val/mIoU"] is not None]
    assert history[-1]["val/mIoU"] == pytest.approx(scored(ckpts / "last.ckpt", tiny_camvid), abs=1e-5)


def test_swa_averages_the_last_epochs_at_the_swa_lr_and_recomputes_batchnorm(tiny_camvid, tmp_path) -> None:
    run_dir, rec = tmp_path / "swa", Recorder()
    argv = tiny_args(tiny_camvid, run_dir, "--epochs", "4", "--swa-epochs", "2", "--lr", "0.01", "--swa-lr", "0.004",
                     "--scheduler", "poly")
    assert run(argv, rec) == 0
    assert len(rec.weights) == 8
    # snapshots at the ends of epochs 3 and 4 (steps 6 and 8); the average is their plain mean
    expected = (rec.weights[5][WEIGHT] + rec.weights[7][WEIGHT]) / 2
    last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    torch.testing.assert_close(last["state_dict"][WEIGHT], expected, rtol=0, atol=1e-6)
    assert int(last["averaging_state"]["n_averaged"]) == 2
    # the second half of the run trains at the constant SWA learning rate
    assert rec.lrs[4:] == [pytest.approx(0.004)] * 4
    assert all(lr != pytest.approx(0.004) for lr in rec.lrs[:4])
    # BatchNorm statistics: recomputed for the averaged weights over the train data, not averaged
    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    cfg = parse_config(argv)
    dm = build_datamodule(cfg, get_source("camvid", str(tiny_camvid)), tiny_camvid)
    dm.setup()
    recompute_batchnorm(module, bn_batches(SimpleNamespace(datamodule=dm, global_rank=0, world_size=1,
                                                           limit_train_batches=1.0)))
    for key in (BN_MEAN, BN_VAR):
        torch.testing.assert_close(last["state_dict"][key], module.state_dict()[key], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(last["state_dict"][BN_VAR], last["current_model_state"][BN_VAR])
    # best.ckpt is chosen among validations of the average only, and the results score it
    best = read_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    assert int(best["averaging_state"]["n_averaged"]) >= 1
    results = json.loads((run_dir / "results.json").read_text())
    assert results["val/mIoU"] == pytest.approx(scored(run_dir / "checkpoints" / "best.ckpt", tiny_camvid), abs=1e-6)


@pytest.mark.parametrize("averaging, resume_after", [(["--ema", "0.5"], 1), (["--swa-epochs", "2"], 3)],
                         ids=["ema", "swa-mid-phase"])
def test_a_resumed_run_ends_with_the_average_of_an_uninterrupted_run(tiny_camvid, tmp_path, averaging, resume_after) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    flags = ("--epochs", "4", *averaging)
    assert run(tiny_args(tiny_camvid, whole, *flags, "--save-every-epoch")) == 0
    # as if the run had stopped after `resume_after` epochs (for SWA: one snapshot taken, one to go)
    snapshot = whole / "checkpoints" / f"epoch-{resume_after}.ckpt"
    assert run(tiny_args(tiny_camvid, resumed, *flags, "--resume", str(snapshot))) == 0
    a = read_checkpoint(whole / "checkpoints" / "last.ckpt")
    b = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert int(b["averaging_state"]["n_averaged"]) == int(a["averaging_state"]["n_averaged"])
    for part in ("state_dict", "current_model_state"):
        for key in (WEIGHT, BN_MEAN, BN_VAR):
            torch.testing.assert_close(b[part][key], a[part][key], rtol=0, atol=1e-6)


def test_swa_clock_follows_the_run_progress_whatever_ends_the_run() -> None:
    assert swa_start(2, 8) == 0.75 and swa_start(8, 8) == 0.0
    # snapshot k of N at progress (E - N + k) / E: without a budget, the ends of the last N epochs
    assert not snapshot_due(0.874, 0, 2, 8) and snapshot_due(0.875, 0, 2, 8)
    assert not snapshot_due(0.99, 1, 2, 8) and snapshot_due(1.0, 1, 2, 8)
    assert not snapshot_due(1.0, 2, 2, 8)  # N snapshots at most
    # with --max-time the progress is the schedule's (the budget's fraction when it is ahead)
    swa = SWAWeights(2, 8, 0.001)
    module = SimpleNamespace(progress_fn=lambda step: max(step / 800, 0.9))
    assert swa.progress(SimpleNamespace(global_step=10), module) == 0.9


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--ema", "0.99", "--swa-epochs", "2"], "choose one"),
        (["--swa-epochs", "9", "--epochs", "8"], "--swa-epochs 9"),
        (["--ema", "1.5"], "between 0 and 1"),
        (["--swa-epochs", "2", "--swa-lr", "0"], "positive learning rate"),
    ],
)
def test_bad_averaging_flags_are_refused(flags, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(flags)
