"""Benchmark submissions: label-id PNGs scored by the official Cityscapes evaluator equal eval.py.

The reference is cityscapesScripts' ``evalPixelLevelSemanticLabeling`` (PyPI ``cityscapesscripts``),
run as a user runs it: its ``main()`` in a subprocess, pointed at a Cityscapes-layout folder through
``CITYSCAPES_DATASET`` / ``CITYSCAPES_RESULTS`` / ``CITYSCAPES_EXPORT_DIR``. One setting differs
from its defaults: ``args.evalInstLevelScore = False``. The instance-level (iIoU) path of
cityscapesscripts 2.3.0 calls ``np.in1d``, which NumPy 2.4 removed, and iIoU is out of scope here
(no instance masks); the pixel-level IoU code is untouched by that switch.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers import labels as cs_labels  # the official label table (requirements.txt)
from PIL import Image

import predict
from drivseg.data.cityscapes import CITYSCAPES19_SPEC, LABELS
from drivseg.entry import run_entry_point
from drivseg.submission import (
    CITYSCAPES_CATEGORIES,
    cityscapes_scores,
    merge_classes,
    submission_name,
    to_label_ids,
)

from tests.conftest import train_single_threaded, train_tiny_checkpoint
from tests.data.fixtures_cityscapes import write_cityscapes_frame, write_png

pytestmark = pytest.mark.usefixtures("one_torch_thread")

eval_script = importlib.import_module("eval")  # the repo's eval.py (the name shadows a builtin)

CS_NAMES = list(CITYSCAPES19_SPEC.class_names)
EVALUATED_IDS = {lb.id for lb in LABELS if 0 <= lb.train_id < 255}  # label ids of the 19 classes
SIZE = (64, 128)  # (H, W)
# label ids drawn into the fixture masks: 9 evaluated classes, and void / ignoreInEval ids
# (unlabeled 0, ego vehicle 1, parking 9, caravan 29) that both scorers must leave out
FIXTURE_IDS = [7, 8, 11, 17, 21, 23, 24, 26, 33, 0, 1, 9, 29]
FRAMES = {
    "train": [("aachen", s, 19) for s in range(6)] + [("bochum", 0, 313), ("bochum", 1, 313)],
    "val": [("frankfurt", 0, 294), ("frankfurt", 1, 294), ("lindau", 0, 19)],
}


def learnable_frame(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image, label ids): 16x16 blocks of ``FIXTURE_IDS`` whose colour is the label's, plus noise."""
    h, w = SIZE
    blocks = rng.choice(FIXTURE_IDS, (h // 16, w // 16))
    label_ids = np.kron(blocks, np.ones((16, 16), dtype=np.int64)).astype(np.uint8)
    colours = np.zeros((256, 3), dtype=np.int64)
    for lb in LABELS:
        if lb.id >= 0:
            colours[lb.id] = lb.color
    colours[[0, 1]] = [(20, 20, 20), (60, 0, 60)]  # void ids share black in the official palette
    noise = rng.integers(-20, 21, (h, w, 3))
    return np.clip(colours[label_ids] + noise, 0, 255).astype(np.uint8), label_ids


def write_learnable_cityscapes(root: Path, seed: int = 0) -> Path:
    """The gtFine layout of ``FRAMES`` (official names, ``*_gtFine_labelIds.png``), learnable images."""
    rng = np.random.default_rng(seed)
    for split, frames in FRAMES.items():
        for city, seq, frame in frames:
            image, label_ids = learnable_frame(rng)
            image_path, _ = write_cityscapes_frame(root, split, city, seq, frame, label_ids=label_ids)
            Image.fromarray(image).save(image_path)
    return root


def train_tiny_cityscapes_checkpoint(tmp_dir: Path) -> tuple[Path, Path]:
    """(dataset root, best checkpoint): tiny_fcn trained by train.main for one epoch, csv logger."""
    root = write_learnable_cityscapes(tmp_dir / "cityscapes")
    argv = ["--data", "cityscapes", "--data-root", str(root), "--arch", "tiny_fcn", "--crop-size", "none",
            "--batch-size", "1", "--lr", "0.02", "--num-workers", "0", "--logger", "csv", "--epochs", "1",
            "--output-dir", str(tmp_dir / "run")]
    train_single_threaded(argv)
    return root, tmp_dir / "run" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def cityscapes_trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny_cityscapes_checkpoint(tmp_path_factory.mktemp("cityscapes_trained"))


OFFICIAL_MAIN = """
import sys
import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as ev
ev.args.evalInstLevelScore = False  # see the module docstring
sys.argv = [ev.__file__]  # no arguments: ground truth from CITYSCAPES_DATASET/gtFine/val
ev.main()
"""


def official_scores(dataset: Path, results: Path, export: Path) -> dict:
    """cityscapesScripts' evaluator on ``dataset``'s gtFine/val against the PNGs under ``results``."""
    export.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYSCAPES_")}
    env.update(CITYSCAPES_DATASET=str(dataset), CITYSCAPES_RESULTS=str(results),
               CITYSCAPES_EXPORT_DIR=str(export))
    env.pop("DISPLAY", None)  # the evaluator must run headless
    proc = subprocess.run([sys.executable, "-c", OFFICIAL_MAIN], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads((export / "resultPixelLevelSemanticLabeling.json").read_text())


def eval_py_report(ckpt: Path, root: Path, out: Path, capsys) -> tuple[dict, str]:
    """eval.py --format cityscapes on the val split: (its JSON report, its printed table)."""
    argv = ["--ckpt", str(ckpt), "--data-root", str(root), "--split", "val", "--num-workers", "0",
            "--no-progress", "--format", "cityscapes", "--output", str(out)]
    capsys.readouterr()
    assert eval_script.main(argv) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def printed_scores(table: str, block: str) -> dict[str, float]:
    """``name: value`` rows of one block (``classes`` / ``categories``) of the printed table."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(block))
    scores = {}
    for line in lines[start + 2:]:
        if line.startswith("-"):
            break
        name, values = line.split(":")
        scores[name.strip()] = float(values.split()[0])
    return scores


def predict_val(ckpt: Path, root: Path, out: Path, fmt: str) -> Path:
    argv = ["--ckpt", str(ckpt), "--input", str(root / "leftImg8bit" / "val"), "--output", str(out),
            "--format", fmt, "--no-progress"]
    assert predict.main(argv) == 0
    return out


def assert_same_scores(official: dict, report: dict) -> None:
    """Every evaluated class IoU and the mean agree to 1e-4 (NaN = not measured on both sides)."""
    for name in CS_NAMES:
        ours = report["IoU"][name]
        theirs = official["classScores"][name]
        if ours is None:
            assert np.isnan(theirs), name
        else:
            assert theirs == pytest.approx(ours, abs=1e-4), name
    assert official["averageScoreClasses"] == pytest.approx(report["mIoU"], abs=1e-4)


def test_label_id_predictions_score_under_the_official_evaluator_like_eval_py(
    cityscapes_trained, tmp_path, capsys
) -> None:
    root, ckpt = cityscapes_trained
    results = predict_val(ckpt, root, tmp_path / "results", "labelids")
    names = sorted(p.relative_to(results).as_posix() for p in results.rglob("*.png"))
    assert names == [
        "frankfurt/frankfurt_000000_000294_labelIds.png",
        "frankfurt/frankfurt_000001_000294_labelIds.png",
        "lindau/lindau_000000_000019_labelIds.png",
    ]  # the city folders mirrored, nothing else that the evaluator could take for a prediction
    with Image.open(results / names[0]) as im:
        assert im.mode == "L" and im.size == (SIZE[1], SIZE[0])
        assert set(np.unique(np.asarray(im))) <= EVALUATED_IDS

    official = official_scores(root, results, tmp_path / "export")
    report, table = eval_py_report(ckpt, root, tmp_path / "eval.json", capsys)
    measured = [v for v in report["IoU"].values() if v is not None]
    # the comparison means something: several classes measured, some of them well predicted
    assert len(measured) >= 9 and report["mIoU"] > 0.2, report["IoU"]
    assert_same_scores(official, report)
    # the category scores --format cityscapes prints, at full precision
    ours = cityscapes_scores(np.array(report["confusion_matrix"]), CS_NAMES)
    for name, value in ours["categories"].items():
        assert value == pytest.approx(official["categoryScores"][name], abs=1e-4), name
    assert ours["category_mean"] == pytest.approx(official["averageScoreCategories"], abs=1e-4)

    # the printed benchmark table: class and category IoU (3 decimals, as the evaluator prints them)
    for name, value in printed_scores(table, "classes").items():
        theirs = official["classScores"][name]
        assert (np.isnan(value) and np.isnan(theirs)) or value == pytest.approx(theirs, abs=6e-4), name
    categories = printed_scores(table, "categories")
    assert list(categories) == list(CITYSCAPES_CATEGORIES)
    for name, value in categories.items():
        theirs = official["categoryScores"][name]
        assert (np.isnan(value) and np.isnan(theirs)) or value == pytest.approx(theirs, abs=6e-4), name
    assert "iIoU" in table and "not computed" in table


@pytest.mark.parametrize("shift", ["trainids", "label ids - 1"])
def test_a_shifted_label_map_is_caught_by_the_official_evaluator(cityscapes_trained, tmp_path, capsys, shift):
    root, ckpt = cityscapes_trained
    if shift == "trainids":  # a common mistake: uploading train ids (their names match too)
        results = predict_val(ckpt, root, tmp_path / "results", "trainids")
    else:
        results = predict_val(ckpt, root, tmp_path / "results", "labelids")
        for path in results.rglob("*.png"):
            ids = np.asarray(Image.open(path)).astype(np.int64)
            Image.fromarray((ids - 1).astype(np.uint8), mode="L").save(path)
    official = official_scores(root, results, tmp_path / "export")
    report, _ = eval_py_report(ckpt, root, tmp_path / "eval.json", capsys)
    with pytest.raises(AssertionError):
        assert_same_scores(official, report)
    assert official["averageScoreClasses"] < report["mIoU"] - 0.1


def test_kitti_and_other_frames_get_benchmark_names(cityscapes_trained, tmp_path):
    _, ckpt = cityscapes_trained
    frames = tmp_path / "image_2"
    rng = np.random.default_rng(1)
    for name in ("000000_10.png", "000001_10.png", "street.jpg"):
        write_png(frames / name, learnable_frame(rng)[0])
    out = tmp_path / "semantic"
    assert predict.main(["--ckpt", str(ckpt), "--input", str(frames), "--output", str(out),
                         "--format", "labelids", "--no-progress"]) == 0
    # KITTI: results named exactly like the test images (devkit_semantics), 8-bit label ids
    assert sorted(p.name for p in out.iterdir()) == ["000000_10.png", "000001_10.png", "street_labelIds.png"]
    with Image.open(out / "000000_10.png") as im:
        assert im.mode == "L" and set(np.unique(np.asarray(im))) <= EVALUATED_IDS


def test_submission_names() -> None:
    cityscapes = Path("a/berlin_000123_000019_leftImg8bit.png")
    assert submission_name(cityscapes) == "berlin_000123_000019_labelIds.png"
    assert submission_name(Path("bielefeld_000000_000321.png")) == "bielefeld_000000_000321_labelIds.png"
    assert submission_name(Path("000042_10.png")) == "000042_10.png"
    assert submission_name(Path("IMG_0001.jpg")) == "IMG_0001_labelIds.png"


def test_label_ids_and_categories_match_cityscapes_scripts() -> None:
    train_ids = np.array([[0, 1, 2, 18], [13, 11, 255, 10]], dtype=np.uint8)
    expected = [[cs_labels.trainId2label[int(t)].id if t != 255 else 0 for t in row] for row in train_ids]
    assert to_label_ids(train_ids).tolist() == expected
    for category, names in CITYSCAPES_CATEGORIES.items():
        official = [lb.name for lb in cs_labels.category2labels[category] if not lb.ignoreInEval]
        assert list(names) == official
    evaluated = [lb.name for lb in cs_labels.labels if not lb.ignoreInEval]
    assert sorted(n for names in CITYSCAPES_CATEGORIES.values() for n in names) == sorted(evaluated)


def test_merge_classes_by_hand() -> None:
    matrix = np.array([[5, 1, 0], [2, 7, 3], [0, 4, 9]])
    merged = merge_classes(matrix, ["a", "b", "c"], {"ab": ("a", "b"), "c": ("c",)})
    assert merged.tolist() == [[5 + 1 + 2 + 7, 0 + 3], [0 + 4, 9]]


def test_cityscapes_scores_equal_the_evaluator_on_a_random_matrix() -> None:
    """Our 19x19 train id matrix vs the evaluator's own functions on the 34x34 label id matrix,
    with void ground-truth rows (which we never count) filled with random pixels."""
    ev = importlib.import_module("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    rng = np.random.default_rng(0)
    ours = rng.integers(0, 1000, (19, 19))
    ours[4] = ours[:, 4] = 0  # fence absent from ground truth and predictions: not measured
    ours[16, :] = 0  # train never in the ground truth, but predicted: IoU 0, counted
    args = ev.CArgs()
    confusion = ev.generateMatrix(args)
    evaluated = sorted((lb for lb in LABELS if 0 <= lb.train_id < 255), key=lambda lb: lb.train_id)
    ids = [lb.id for lb in evaluated]
    confusion[np.ix_(ids, ids)] = ours
    void = [lb.id for lb in LABELS if lb.id >= 0 and lb.train_id == 255]
    confusion[np.ix_(void, ids)] = rng.integers(0, 1000, (len(void), 19))
    result = cityscapes_scores(ours, CS_NAMES)
    for name, lb_id in zip(CS_NAMES, ids):
        theirs = ev.getIouScoreForLabel(lb_id, confusion, args)
        ours = result["classes"][name]
        assert (ours is None and np.isnan(theirs)) or ours == pytest.approx(theirs)
    assert result["classes"]["fence"] is None and result["classes"]["train"] == 0.0
    for category in CITYSCAPES_CATEGORIES:
        theirs = ev.getIouScoreForCategory(category, confusion, args)
        assert result["categories"][category] == pytest.approx(theirs)
    class_scores = {lb.name: ev.getIouScoreForLabel(lb.id, confusion, args)
                    for lb in cs_labels.labels if lb.id >= 0}
    assert result["class_mean"] == pytest.approx(ev.getScoreAverage(class_scores, args))


@pytest.fixture(scope="module")
def camvid_trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny_checkpoint(tmp_path_factory.mktemp("camvid_trained"))


def test_cityscapes_table_for_other_classes_is_one_line(camvid_trained, capsys) -> None:
    root, ckpt = camvid_trained
    argv = ["--ckpt", str(ckpt), "--data-root", str(root), "--num-workers", "0", "--format", "cityscapes"]
    assert run_entry_point(lambda: eval_script.main(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --format cityscapes: ") and "\n" not in err
    assert "11 classes" in err and "the default --format" in err
