"""eval.py and drivseg.evaluation: scores equal a confusion matrix computed by hand at the label size."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drivseg.checkpoint import load_module
from drivseg.data.camvid import CAMVID_CLASSES
from drivseg.entry import run_entry_point
from drivseg.evaluation import ConfusionMatrix, read_confusion_csv, scores
from drivseg.metrics import StageMetrics

from tests.conftest import train_tiny_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

eval_script = importlib.import_module("eval")  # the repo's eval.py (the name shadows a builtin)

CAMVID_VOID = 11


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny_checkpoint(tmp_path_factory.mktemp("trained"))


def copy_checkpoint(src: Path, dst: Path, **model_config) -> Path:
    """A copy of a checkpoint with some ``model_config`` values replaced."""
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["model_config"].update(model_config)
    if "class_names" in model_config:
        ckpt["hyper_parameters"]["class_names"] = model_config["class_names"]
    torch.save(ckpt, dst)
    return dst


def confusion_by_hand(ckpt: Path, root: Path, image_scale: float = 1.0) -> np.ndarray:
    """Run the module on each val image and count (true, predicted) pixel pairs with numpy."""
    module = load_module(ckpt)
    cfg = module.hparams.model_config
    mean, std = np.array(cfg["mean"], np.float32), np.array(cfg["std"], np.float32)
    matrix = np.zeros((11, 11), dtype=np.int64)
    for image_path in sorted((root / "val").iterdir()):
        image = (np.asarray(Image.open(image_path).convert("RGB"), np.float32) / 255 - mean) / std
        x = torch.from_numpy(image).permute(2, 0, 1)[None]
        with torch.no_grad():
            logits = module(x)
        pred = logits.argmax(1)[0].numpy()
        mask = np.asarray(Image.open(root / "valannot" / image_path.name)).astype(np.int64)
        valid = mask != CAMVID_VOID
        np.add.at(matrix, (mask[valid], pred[valid]), 1)
    return matrix


def test_eval_scores_equal_a_confusion_matrix_computed_by_hand(trained, capsys) -> None:
    root, ckpt = trained
    argv = ["--ckpt", str(ckpt), "--data-root", str(root), "--split", "val", "--batch-size", "2",
            "--num-workers", "0"]
    assert eval_script.main(argv) == 0

    out = ckpt.with_name("last_val_eval.json")  # default: next to the checkpoint
    report = json.loads(out.read_text())
    expected = confusion_by_hand(ckpt, root)
    assert np.array_equal(np.array(report["confusion_matrix"]), expected)
    # at the original label resolution: every labelled pixel of the 5 images, none resized away
    assert report["labelled_pixels"] == expected.sum() == 5 * (48 * 64 - 10 * 13)
    assert report["data"] == "camvid" and report["images"] == 5  # dataset taken from the checkpoint

    tp = np.diag(expected)
    union = expected.sum(0) + expected.sum(1) - tp
    iou = {name: tp[i] / union[i] for i, name in enumerate(report["class_names"]) if union[i] > 0}
    assert report["mIoU"] == pytest.approx(np.mean(list(iou.values())))
    assert report["pixel_acc"] == pytest.approx(tp.sum() / expected.sum())
    for name, value in report["IoU"].items():
        assert value == (pytest.approx(iou[name]) if name in iou else None)
    # the other confusion-matrix scores of drivseg.scores, from the same hand-made matrix
    true, pred = expected.sum(1), expected.sum(0)
    names = report["class_names"]
    dice = {name: 2 * tp[i] / (true[i] + pred[i]) for i, name in enumerate(names) if union[i] > 0}
    assert report["Dice"] == {n: (pytest.approx(dice[n]) if n in dice else None) for n in names}
    assert report["mDice"] == pytest.approx(np.mean(list(dice.values())))
    fw = sum(true[i] * iou[n] for i, n in enumerate(names) if n in iou) / true.sum()
    assert report["fwIoU"] == pytest.approx(fw)
    assert report["mean_class_acc"] == pytest.approx(np.mean([tp[i] / true[i] for i in range(11) if true[i]]))
    # per-image scores: present, in range, and the BF for every class (None: never scored)
    assert 0 <= report["mIoU_per_image"] <= 1 and 0 <= report["mBF"] <= 1
    assert set(report["BF"]) == set(names) and report["bf_tolerance"] is None

    names, csv_matrix = read_confusion_csv(Path(report["files"]["confusion_csv"]))
    assert names == report["class_names"] == list(CAMVID_CLASSES) and np.array_equal(csv_matrix, expected)
    for key in ("confusion_png", "iou_png"):
        with Image.open(report["files"][key]) as im:
            assert im.format == "PNG" and min(im.size) > 100
    printed = capsys.readouterr().out
    for label in ("mIoU", "mIoU, mean per image", "mean Dice (F1)", "mean class accuracy", "mean BF score"):
        assert label in printed


def test_eval_of_a_scaled_model_counts_pixels_at_label_resolution(trained, tmp_path) -> None:
    root, ckpt = trained
    half = copy_checkpoint(ckpt, tmp_path / "half.ckpt", image_scale=0.5)
    out = tmp_path / "half.json"
    argv = ["--ckpt", str(half), "--data-root", str(root), "--num-workers", "0", "--no-progress",
            "--output", str(out)]
    assert eval_script.main(argv) == 0
    report = json.loads(out.read_text())
    # the 24x32 predictions were brought to the 48x64 masks, not the masks to the predictions
    assert report["labelled_pixels"] == 5 * (48 * 64 - 10 * 13)


def test_ensemble_of_one_checkpoint_twice_scores_like_the_checkpoint(trained, tmp_path) -> None:
    root, ckpt = trained
    common = ["--data-root", str(root), "--num-workers", "0", "--no-progress", "--tta", "flip"]
    assert eval_script.main(["--ckpt", str(ckpt), *common, "--output", str(tmp_path / "one.json")]) == 0
    twice = ["--ckpt", str(ckpt), "--ckpt", str(ckpt), "--weights", "0.3,0.7",
             "--output", str(tmp_path / "two.json")]
    assert eval_script.main([*twice, *common]) == 0
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["confusion_matrix"] == one["confusion_matrix"]
    assert two["weights"] == [0.3, 0.7] and two["tta"] == "flip"


def test_checkpoints_with_different_classes_fail_in_one_line(trained, tmp_path, capsys) -> None:
    root, ckpt = trained
    other = copy_checkpoint(ckpt, tmp_path / "other.ckpt", class_names=[f"class{i}" for i in range(11)])
    argv = ["--ckpt", str(ckpt), "--ckpt", str(other), "--data-root", str(root), "--num-workers", "0"]
    assert run_entry_point(lambda: eval_script.main(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert str(other) in err and "same classes" in err


def test_dataset_with_other_classes_than_the_checkpoint_fails(trained, capsys) -> None:
    root, ckpt = trained
    argv = ["--ckpt", str(ckpt), "--data", "cityscapes", "--data-root", str(root), "--num-workers", "0"]
    assert run_entry_point(lambda: eval_script.main(argv)) == 2
    err = capsys.readouterr().err
    assert "--data cityscapes has 19 classes" in err and "--data camvid" in err


def test_confusion_matrix_by_hand() -> None:
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    preds = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(4)
    cm.update(preds[None], target[None])
    # rows: true class, columns: predicted; the two 255 pixels are not counted
    assert cm.matrix.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    result = scores(cm.matrix, ["a", "b", "c", "d"])
    assert result["IoU"] == {"a": pytest.approx(1 / 3), "b": pytest.approx(2 / 3), "c": pytest.approx(1 / 2),
                             "d": None}
    assert result["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)  # class d never seen: not in the mean
    assert result["pixel_acc"] == pytest.approx(4 / 6)


def test_scores_agree_with_the_training_metrics() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 20, 30), generator=gen)  # class 5 never appears in the labels
    target[:, ::4, ::3] = 255
    preds = torch.randint(0, 5, (3, 20, 30), generator=gen)
    cm = ConfusionMatrix(6)
    cm.update(preds, target)
    metrics = StageMetrics(6)
    metrics.update(preds, target)
    result = scores(cm.matrix, [str(i) for i in range(6)])
    training = metrics.compute()
    assert np.array_equal(metrics.matrix().numpy(), cm.matrix)
    assert result["mIoU"] == pytest.approx(float(training["mIoU"]), abs=1e-6)
    assert result["pixel_acc"] == pytest.approx(float(training["pixel_acc"]), abs=1e-6)
    per_class = training["iou"]
    for i in range(5):
        assert result["IoU"][str(i)] == pytest.approx(float(per_class[i]), abs=1e-6)
