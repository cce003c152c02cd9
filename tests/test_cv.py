"""cv.py end to end on tiny data: fold run directories, OOF masks and scores, the K-fold test
ensemble, re-runs, --fold K + --collect, W&B groups; and a short real-CamVid run (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import cv
from drivseg.data.camvid import CAMVID
from drivseg.errors import ConfigError
from drivseg.folds import oof_names, read_folds
from drivseg.inference import member_from_checkpoint

from tests.conftest import REPO, clean_env, write_segnet_dataset

TINY = ["--data", "camvid", "--arch", "tiny_fcn", "--crop-size", "32x48", "--batch-size", "4", "--num-workers", "0",
        "--logger", "none", "--epochs", "1", "--no-report"]  # fmt: skip
# metrics only: timings, paths and the command differ between two experiments
TIMING_OR_PATH = ("seconds", "checkpoints", "run_dir", "command", "experiment", "config", "git_commit")


def one_thread(fn):
    """Run ``fn`` with one torch thread: tiny tensors, and bit-identical runs in every process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_segnet_dataset(tmp_path_factory.mktemp("data") / "camvid", {"train": 12, "val": 6, "test": 4})


@pytest.fixture(scope="module")
def experiment(data_root, tmp_path_factory) -> Path:
    """3 folds of the 18 train+val images, one epoch each, OOF probabilities saved."""
    exp = tmp_path_factory.mktemp("cv") / "exp"
    argv = [*TINY, "--data-root", str(data_root), "--folds", "3", "--save-oof-probs", "--output-dir", str(exp)]
    assert one_thread(lambda: cv.main(argv)) == 0
    return exp


def metrics(results: dict) -> dict:
    return {k: v for k, v in results.items() if not any(part in k for part in TIMING_OR_PATH)}


def true_train_ids(path: Path) -> np.ndarray:
    return CAMVID.label_spec.encode(np.asarray(Image.open(path)))


def test_each_fold_is_a_normal_run_directory(experiment, data_root, tmp_path) -> None:
    import eval as eval_script

    for k in range(3):
        fold = experiment / f"fold-{k}"
        config = yaml.safe_load((fold / "config.yaml").read_text())
        assert config["fold"] == k and config["folds_file"] == str(experiment / "folds.csv")
        assert config["wandb_group"] == "exp" and config["wandb_job_type"] == f"fold-{k}"
        assert (fold / "checkpoints" / "best.ckpt").is_file() and (fold / "results.json").is_file()
    out = tmp_path / "eval.json"
    ckpt = experiment / "fold-2" / "checkpoints" / "best.ckpt"
    argv = ["--ckpt", str(ckpt), "--data-root", str(data_root), "--split", "test", "--num-workers", "0",
            "--no-progress", "--output", str(out)]
    assert one_thread(lambda: eval_script.main(argv)) == 0
    results = json.loads((experiment / "cv_results.json").read_text())
    assert json.loads(out.read_text())["mIoU"] == pytest.approx(results["test/fold_2/mIoU"], abs=1e-9)


def test_oof_masks_cover_every_pool_image_exactly_once(experiment, data_root) -> None:
    rows = read_folds(experiment / "folds.csv")
    names = oof_names(rows)
    assert len(rows) == 18  # train + val, never test
    predicted = [json.loads((experiment / f"fold-{k}" / "cv_fold.json").read_text())["oof"] for k in range(3)]
    flat = [n for fold in predicted for n in fold]
    assert sorted(flat) == sorted(names.values()) and len(set(flat)) == len(flat)
    for k, fold in enumerate(predicted):  # each fold predicted exactly the images it held out
        assert sorted(fold) == sorted(names[r.image] for r in rows if r.fold == k)
    assert sorted(p.stem for p in (experiment / "oof").glob("*.png")) == sorted(names.values())
    assert sorted(p.stem for p in (experiment / "oof_probs").glob("*.npz")) == sorted(names.values())
    # an OOF mask is the argmax of the held-out fold's model at the label resolution
    row = next(r for r in rows if r.fold == 1)
    model, _ = member_from_checkpoint(experiment / "fold-1" / "checkpoints" / "best.ckpt")
    image = torch.from_numpy(np.array(Image.open(data_root / row.image))).permute(2, 0, 1)[None].float() / 255
    expected = one_thread(lambda: model(image))[0]
    mask = np.asarray(Image.open(experiment / "oof" / f"{names[row.image]}.png"))
    assert Image.open(experiment / "oof" / f"{names[row.image]}.png").mode == "P"
    assert np.array_equal(mask, expected.argmax(0).numpy())
    probs = np.load(experiment / "oof_probs" / f"{names[row.image]}.npz")["probs"]
    assert probs.dtype == np.float16 and probs.shape == (11, 48, 64)
    np.testing.assert_allclose(probs, expected.numpy(), atol=1e-3)


def test_oof_miou_is_one_numpy_confusion_matrix_over_all_oof_pixels(experiment, data_root) -> None:
    rows = read_folds(experiment / "folds.csv")
    names = oof_names(rows)
    cm = np.zeros((11, 11), dtype=np.int64)
    for r in rows:
        pred = np.asarray(Image.open(experiment / "oof" / f"{names[r.image]}.png")).astype(np.int64)
        truth = true_train_ids(data_root / r.mask).astype(np.int64)
        keep = truth != 255
        cm += np.bincount(truth[keep] * 11 + pred[keep], minlength=121).reshape(11, 11)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = tp[union > 0] / union[union > 0]
    results = json.loads((experiment / "cv_results.json").read_text())
    assert results["oof/mIoU"] == pytest.approx(iou.mean(), abs=1e-12)
    assert results["oof/pixel_acc"] == pytest.approx(tp.sum() / cm.sum(), abs=1e-12)
    assert results["oof/IoU/Road"] == pytest.approx(tp[3] / union[3], abs=1e-12)
    # not the mean of the fold scores
    folds = [results[f"fold_{k}/val/mIoU"] for k in range(3)]
    assert results["folds/mIoU_mean"] == pytest.approx(np.mean(folds))
    assert results["folds/mIoU_std"] == pytest.approx(np.std(folds))
    assert results["images"] == 18 and results["folds"] == 3 and results["cv_pool"] == "train+val"
    assert results["seed"] == 42 and results["config"]["arch"] == "tiny_fcn"
    assert all(results[f"fold_{k}/wall_seconds"] > 0 for k in range(3))


def test_kfold_test_ensemble_equals_averaging_the_folds_probabilities_by_hand(experiment, data_root) -> None:
    models = [member_from_checkpoint(experiment / f"fold-{k}" / "checkpoints" / "best.ckpt")[0] for k in range(3)]
    cm = np.zeros((11, 11), dtype=np.int64)
    for path in sorted((data_root / "test").glob("*.png")):
        image = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1)[None].float() / 255
        probs = np.mean([one_thread(lambda: m(image))[0].double().numpy() for m in models], axis=0)
        truth = true_train_ids(data_root / "testannot" / path.name).astype(np.int64)
        keep = truth != 255
        cm += np.bincount(truth[keep] * 11 + probs.argmax(0)[keep], minlength=121).reshape(11, 11)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    results = json.loads((experiment / "cv_results.json").read_text())
    assert results["scored_splits"] == ["test"]
    assert results["test/mIoU"] == pytest.approx((tp[union > 0] / union[union > 0]).mean(), abs=1e-9)
    singles = [results[f"test/fold_{k}/mIoU"] for k in range(3)]
    assert results["test/single_mIoU_best"] == max(singles)


def test_rerun_skips_finished_folds_and_refuses_changed_settings(experiment, data_root, capsys) -> None:
    before = {k: (experiment / f"fold-{k}" / "results.json").stat().st_mtime_ns for k in range(3)}
    results = json.loads((experiment / "cv_results.json").read_text())
    argv = [*TINY, "--data-root", str(data_root), "--output-dir", str(experiment)]
    assert one_thread(lambda: cv.main(argv)) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 3
    assert {k: (experiment / f"fold-{k}" / "results.json").stat().st_mtime_ns for k in range(3)} == before
    assert metrics(json.loads((experiment / "cv_results.json").read_text())) == metrics(results)
    with pytest.raises(ConfigError, match=r"other settings \(lr: 0.002 -> 0.01\)"):
        cv.main([*argv, "--lr", "0.01"])
    with pytest.raises(ConfigError, match="--folds 4 but .* has 3 folds"):
        cv.main([*argv, "--folds", "4"])


def test_fold_runs_then_collect_equal_one_run(experiment, data_root, tmp_path, capsys) -> None:
    exp = tmp_path / "split"
    base = [*TINY, "--data-root", str(data_root), "--folds", "3", "--save-oof-probs", "--output-dir", str(exp)]
    assert one_thread(lambda: cv.main([*base, "--fold", "2"])) == 0
    assert "folds [0, 1] of" in capsys.readouterr().out and not (exp / "cv_results.json").exists()
    with pytest.raises(ConfigError, match=r"folds \[0, 1\] .* --fold 0 --fold 1"):
        cv.main([*base, "--collect"])
    assert one_thread(lambda: cv.main([*base, "--fold", "0", "--fold", "1"])) == 0  # the last fold collects
    first = json.loads((exp / "cv_results.json").read_text())
    (exp / "cv_results.json").unlink()
    assert one_thread(lambda: cv.main([*base, "--collect"])) == 0
    assert metrics(json.loads((exp / "cv_results.json").read_text())) == metrics(first)
    assert metrics(first) == metrics(json.loads((experiment / "cv_results.json").read_text()))


@pytest.mark.slow
def test_fold_processes_then_collect_equal_one_run(experiment, data_root, tmp_path) -> None:
    exp = tmp_path / "separate"
    base = [sys.executable, str(REPO / "cv.py"), *TINY, "--data-root", str(data_root), "--folds", "3",
            "--save-oof-probs", "--output-dir", str(exp)]
    env = clean_env(tmp_path, OMP_NUM_THREADS="1")  # one thread, as the in-process run
    for k in range(3):
        proc = subprocess.run([*base, "--fold", str(k)], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    (exp / "cv_results.json").unlink()  # written by the last fold; --collect must rebuild it
    proc = subprocess.run([*base, "--collect"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert metrics(json.loads((exp / "cv_results.json").read_text())) == metrics(
        json.loads((experiment / "cv_results.json").read_text()))


def test_folds_file_of_another_experiment_gives_identical_folds(experiment, data_root, tmp_path) -> None:
    exp = tmp_path / "other"
    argv = [*TINY, "--data-root", str(data_root), "--folds-file", str(experiment / "folds.csv"),
            "--output-dir", str(exp), "--fold", "0"]
    assert one_thread(lambda: cv.main(argv)) == 0
    assert (exp / "folds.csv").read_bytes() == (experiment / "folds.csv").read_bytes()
    other = write_segnet_dataset(tmp_path / "other_data", {"train": 10, "val": 6})
    with pytest.raises(Exception, match="does not match --data camvid"):
        cv.main([*TINY, "--data-root", str(other), "--folds-file", str(experiment / "folds.csv"),
                 "--output-dir", str(tmp_path / "x")])


def test_wandb_fold_runs_are_separate_runs_of_one_group_with_a_summary(data_root, tmp_path) -> None:
    from wandb.proto import wandb_internal_pb2 as pb  # the records of an offline run file, encoded

    exp = tmp_path / "wb"
    argv = [*TINY, "--data-root", str(data_root), "--folds", "2", "--output-dir", str(exp), "--logger", "wandb",
            "--log-images", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    proc = subprocess.run([sys.executable, str(REPO / "cv.py"), *argv], cwd=tmp_path, capture_output=True, text=True,
                          env=env | {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "HOME": str(tmp_path),
                                     "OMP_NUM_THREADS": "1"}, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for k in range(2):
        runs = list((exp / f"fold-{k}" / "wandb").glob("offline-run-*"))
        assert len(runs) == 1  # one run per fold: finished before the next fold started
        record = next(runs[0].glob("run-*.wandb")).read_bytes()
        assert pb.RunRecord(run_group="wb", job_type=f"fold-{k}").SerializeToString() in record
        assert pb.ConfigItem(key="fold", value_json=str(k)).SerializeToString() in record
        assert b"val/mIoU" in record and f"wb-fold-{1 - k}".encode() not in record
    summary = list((exp / "wandb").glob("offline-run-*"))
    assert len(summary) == 1
    record = next(summary[0].glob("run-*.wandb")).read_bytes()
    assert pb.RunRecord(run_group="wb", job_type="summary").SerializeToString() in record
    for key in ("oof/mIoU", "folds/mIoU_std", "test/mIoU", "fold_1/val/mIoU"):
        assert pb.SummaryItem(key=key).SerializeToString() in record, key


@pytest.mark.slow
def test_ddp_folds_train_in_their_own_processes(data_root, tmp_path) -> None:
    # a process group cannot be set up twice in one process: each DDP fold is a train.py child
    exp = tmp_path / "ddp"
    argv = [*TINY, "--data-root", str(data_root), "--folds", "2", "--accelerator", "cpu", "--devices", "2",
            "--output-dir", str(exp)]
    proc = subprocess.run([sys.executable, str(REPO / "cv.py"), *argv], cwd=tmp_path, env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((exp / "cv_results.json").read_text())
    assert results["images"] == 18 and len(list((exp / "oof").glob("*.png"))) == 18
    assert all(yaml.safe_load((exp / f"fold-{k}" / "config.yaml").read_text())["devices"] == 2 for k in range(2))


@pytest.mark.slow
@pytest.mark.camvid
@pytest.mark.usefixtures("one_torch_thread")  # on the shared 2-core CPU one thread is faster here
def test_camvid_three_folds_end_to_end(camvid_root, tmp_path) -> None:
    exp = tmp_path / "camvid_cv"
    argv = ["--config", str(REPO / "configs" / "experiments" / "camvid_pspnet.yaml"), "--data-root", str(camvid_root),
            "--cv-pool", "train", "--folds", "3", "--image-scale", "0.25", "--crop-size", "none", "--max-time", "20s",
            "--epochs", "1", "--batch-size", "8", "--logger", "none", "--no-report", "--output-dir", str(exp)]
    assert cv.main(argv) == 0
    results = json.loads((exp / "cv_results.json").read_text())
    assert results["images"] == 367 and results["scored_splits"] == ["val"]
    assert len(list((exp / "oof").glob("*.png"))) == 367
    assert results["oof/mIoU"] > 0.15 and results["val/mIoU"] > 0.2
    # the 3-fold ensemble is at least as good as its average member on the untouched val split
    assert results["val/mIoU"] >= results["val/single_mIoU_mean"] - 0.005
