"""End-to-end runs of train.py on tiny data: run directory, results.json, resume, failures."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import train
from drivseg.checkpoint import read_checkpoint
from drivseg.data.camvid import CAMVID_CLASSES
from drivseg.entry import run_entry_point

from tests.conftest import run_train

TINY = ["--data", "camvid", "--crop-size", "32x48", "--batch-size", "4", "--num-workers", "0", "--logger", "csv"]


def results_of(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_training_leaves_a_complete_run_directory(tiny_camvid, tmp_path) -> None:
    run_dir = tmp_path / "run"
    argv = [*TINY, "--data-root", str(tiny_camvid), "--epochs", "2", "--output-dir", str(run_dir)]
    assert train.main(argv) == 0

    results = results_of(run_dir)
    for key in ["val/mIoU", "val/pixel_acc", "best_checkpoint", "epochs", "train_seconds"]:
        assert key in results
    for name in CAMVID_CLASSES:
        assert 0.0 <= results[f"val/IoU/{name}"] <= 1.0
    assert results["epochs"] == 2
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert results["best_checkpoint"].endswith("best.ckpt")
    # the resolved config is saved with the run and holds the flags' values
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["crop_size"] == [32, 48] and saved["epochs"] == 2 and saved["data_root"] == str(tiny_camvid)
    # the checkpoint loads with weights_only=True and knows how to rebuild its network
    ckpt = read_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    assert ckpt["hyper_parameters"]["model_config"]["class_names"] == list(CAMVID_CLASSES)
    # results.json reports the best checkpoint's val mIoU, the max over epochs
    assert results["val/mIoU"] == pytest.approx(float(ckpt["callbacks"][next(k for k in ckpt["callbacks"] if "ModelCheckpoint" in k)]["best_model_score"]), abs=1e-6)


def test_resume_restores_epoch_step_optimizer_and_scheduler(tiny_camvid, tmp_path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    base = [*TINY, "--data-root", str(tiny_camvid), "--scheduler", "cosine", "--optimizer", "sgd"]
    assert train.main([*base, "--epochs", "1", "--output-dir", str(first)]) == 0
    steps_per_epoch = results_of(first)["global_step"]
    last = first / "checkpoints" / "last.ckpt"
    saved = read_checkpoint(last)

    assert train.main([*base, "--epochs", "2", "--output-dir", str(second), "--resume", str(last)]) == 0
    resumed = results_of(second)
    assert resumed["epochs"] == 2 and resumed["global_step"] == 2 * steps_per_epoch
    end = read_checkpoint(second / "checkpoints" / "last.ckpt")
    # the scheduler continued from the saved step instead of restarting at 0
    assert end["lr_schedulers"][0]["last_epoch"] == 2 * steps_per_epoch
    assert saved["lr_schedulers"][0]["last_epoch"] == steps_per_epoch
    # SGD momentum buffers came from the checkpoint, so training continued (weights changed)
    assert any(s.get("momentum_buffer") is not None for s in end["optimizer_states"][0]["state"].values())
    key = next(k for k in saved["state_dict"] if k.endswith("weight"))
    assert not torch.equal(saved["state_dict"][key], end["state_dict"][key])


def test_gpus_without_cuda_is_one_clear_line(tiny_camvid, tmp_path, capsys) -> None:
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has 2 GPUs")
    argv = [*TINY, "--data-root", str(tiny_camvid), "--arch", "pspnet", "--gpus", "2", "--output-dir", str(tmp_path / "r")]
    assert run_entry_point(lambda: train.main(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"--gpus 2 asked for 2 CUDA devices, found {torch.cuda.device_count()}" in err
    assert "--accelerator cpu --devices 2" in err
    assert not (tmp_path / "r" / "results.json").exists()


def test_cli_error_has_no_traceback(tmp_path) -> None:
    proc = run_train(["--data", "camvid", "--data-root", str(tmp_path / "nowhere"), "--logger", "none"], tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:") and "nowhere" in proc.stderr


def test_bf16_mixed_precision_trains_with_finite_metrics(tiny_camvid, tmp_path) -> None:
    # AMP on CPU is bf16; on a GPU the same code path runs with --precision 16-mixed
    run_dir = tmp_path / "bf16"
    argv = [*TINY, "--data-root", str(tiny_camvid), "--epochs", "1", "--precision", "bf16-mixed",
            "--loss", "ce+dice", "--output-dir", str(run_dir)]  # fmt: skip
    assert train.main(argv) == 0
    results = results_of(run_dir)
    assert 0.0 <= results["val/mIoU"] <= 1.0 and results["val/loss"] == results["val/loss"]  # not NaN


def test_median_frequency_class_weights_reach_the_loss(tiny_camvid, tmp_path) -> None:
    run_dir = tmp_path / "mf"
    argv = [*TINY, "--data-root", str(tiny_camvid), "--epochs", "1", "--class-weights", "median-freq",
            "--output-dir", str(run_dir)]  # fmt: skip
    assert train.main(argv) == 0
    weights = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]["loss.losses.0.weight"]
    assert weights.shape == (11,) and torch.isfinite(weights).all() and weights.min() > 0
    assert weights.median() == pytest.approx(1.0, abs=1e-5)  # median(freq)/freq is 1 at the median class


def test_results_hold_the_reading_list_metrics_equal_to_eval_py(tiny_camvid, tmp_path) -> None:
    import importlib

    from drivseg.evaluation import read_confusion_csv, scores

    run_dir = tmp_path / "run"
    argv = [*TINY, "--data-root", str(tiny_camvid), "--epochs", "1", "--precision", "32", "--output-dir", str(run_dir)]
    assert train.main(argv) == 0
    results = results_of(run_dir)
    names, matrix = read_confusion_csv(run_dir / "val_confusion.csv")
    assert names == list(CAMVID_CLASSES) and matrix.sum() > 0
    expected = scores(matrix, names)
    assert results["val/mIoU"] == pytest.approx(expected["mIoU"], abs=1e-6)  # the same matrix
    for key in ("mDice", "fwIoU", "mean_class_acc"):
        assert results[f"val/{key}"] == pytest.approx(expected[key], abs=1e-6), key
    for name, value in expected["Dice"].items():
        if value is not None:
            assert results[f"val/Dice/{name}"] == pytest.approx(value, abs=1e-6)

    # eval.py scores the same checkpoint one image at a time: per-image mIoU and BF agree
    eval_script = importlib.import_module("eval")
    out = tmp_path / "eval.json"
    assert eval_script.main(["--ckpt", results["best_checkpoint"], "--data-root", str(tiny_camvid),
                             "--num-workers", "0", "--no-progress", "--output", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert results["val/mIoU"] == pytest.approx(report["mIoU"], abs=1e-6)
    assert results["val/mIoU_per_image"] == pytest.approx(report["mIoU_per_image"], abs=1e-6)
    assert results["val/mBF"] == pytest.approx(report["mBF"], abs=1e-6)
