"""report.py / drivseg.report: one self-contained HTML page per run, also for runs missing inputs."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import report as report_script
from drivseg.checkpoint import load_module
from drivseg.data.camvid import CAMVID_CLASSES
from drivseg.entry import run_entry_point
from drivseg.evaluation import write_confusion_csv
from drivseg.report import SECTION_IDS, curve_series, score_val_split, write_report

from tests.conftest import train_single_threaded, write_segnet_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAMVID_VOID = 11


PNG_URI = "data:image/png;base64,"


class Page(HTMLParser):
    """Sections of a report: their ids, notes, text and embedded images."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current: dict | None = None
        self.in_note = False
        self.scripts = 0
        self.external: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "section":
            self.current = self.sections.setdefault(attrs["id"], {"notes": [], "images": [], "text": ""})
        elif tag == "script":
            self.scripts += 1
        elif tag in ("link", "iframe") or (tag == "img" and not attrs["src"].startswith(PNG_URI)):
            self.external.append(attrs.get("src") or attrs.get("href", ""))
        elif tag == "img" and self.current is not None:
            self.current["images"].append(attrs["src"].split(",", 1)[1])
        elif tag == "p" and "note" in (attrs.get("class") or ""):
            self.in_note = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.current = None
        elif tag == "p":
            self.in_note = False

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.current["text"] += data
            if self.in_note:
                self.current["notes"].append(data)


def read_page(path: Path) -> Page:
    page = Page(path.read_text())
    assert list(page.sections) == list(SECTION_IDS)
    assert page.scripts == 0 and page.external == []  # self-contained: nothing to fetch, nothing to run
    for section in page.sections.values():
        for data in section["images"]:
            with Image.open(io.BytesIO(base64.b64decode(data))) as im:
                im.load()
                assert im.format == "PNG" and min(im.size) > 0
    return page


def train_csv_run(tmp_dir: Path) -> tuple[Path, Path]:
    """(dataset root, run dir): tiny_fcn trained by train.main for 2 epochs with the CSV logger."""
    root = write_segnet_dataset(tmp_dir / "camvid", {"train": 8, "val": 5})
    run = tmp_dir / "run"
    argv = ["--data", "camvid", "--data-root", str(root), "--arch", "tiny_fcn", "--crop-size", "32x48",
            "--batch-size", "4", "--num-workers", "0", "--logger", "csv", "--epochs", "2",
            "--output-dir", str(run)]
    train_single_threaded(argv)
    return root, run


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory) -> tuple[Path, Path]:
    return train_csv_run(tmp_path_factory.mktemp("csv_run"))


def per_image_by_hand(ckpt: Path, root: Path) -> dict[str, tuple[float, np.ndarray]]:
    """name -> (mIoU over the classes in the image or its prediction, confusion), with numpy."""
    module = load_module(ckpt)
    cfg = module.hparams.model_config
    mean, std = np.array(cfg["mean"], np.float32), np.array(cfg["std"], np.float32)
    out = {}
    for path in sorted((root / "val").iterdir()):
        image = (np.asarray(Image.open(path).convert("RGB"), np.float32) / 255 - mean) / std
        with torch.no_grad():
            pred = module(torch.from_numpy(image).permute(2, 0, 1)[None]).argmax(1)[0].numpy()
        mask = np.asarray(Image.open(root / "valannot" / path.name)).astype(np.int64)
        matrix = np.zeros((11, 11), dtype=np.int64)
        valid = mask != CAMVID_VOID
        np.add.at(matrix, (mask[valid], pred[valid]), 1)
        tp = np.diag(matrix)
        union = matrix.sum(0) + matrix.sum(1) - tp
        out[path.name] = (float(np.mean(tp[union > 0] / union[union > 0])), matrix)
    return out


def test_report_of_a_real_training_run(csv_run) -> None:
    _, run = csv_run
    out = write_report(run)
    assert out == run / "report.html"
    page = read_page(out)
    for section_id in SECTION_IDS:
        assert page.sections[section_id]["notes"] == [], section_id  # every input was there
    results = json.loads((run / "results.json").read_text())
    assert f"{100 * results['val/mIoU']:.2f}%" in page.sections["iou"]["text"]
    newer = (run / "history.csv").is_file()  # written by train.py itself, whatever the logger
    assert ("From history.csv" if newer else "From metrics.csv") in page.sections["curves"]["text"]
    confusion = "From val_confusion.csv" if (run / "val_confusion.csv").is_file() else "on the 5 val images"
    assert confusion in page.sections["confusion"]["text"]
    # 5 val images: the 3 best and the 2 others as the worst, 3 panels each
    assert len(page.sections["samples"]["images"]) == 5 * 3
    assert "train_seconds" in page.sections["timings"]["text"]
    assert "tiny_fcn" in page.sections["config"]["text"]


def test_an_older_run_gets_its_curves_from_the_csv_logger(csv_run, tmp_path) -> None:
    _, run = csv_run
    older = tmp_path / "older"
    newer_files = shutil.ignore_patterns("history.csv", "val_confusion.csv", "report.html")
    shutil.copytree(run, older, ignore=newer_files)
    page = read_page(write_report(older))
    assert all(page.sections[s]["notes"] == [] for s in SECTION_IDS)
    assert "From metrics.csv" in page.sections["curves"]["text"]
    assert "Best val mIoU" in page.sections["curves"]["text"] and len(page.sections["curves"]["images"]) == 1
    assert "on the 5 val images" in page.sections["confusion"]["text"]  # computed from best.ckpt


def test_scoring_equals_a_confusion_matrix_by_hand(csv_run) -> None:
    root, run = csv_run
    config = yaml.safe_load((run / "config.yaml").read_text())
    ckpt = run / "checkpoints" / "best.ckpt"
    scoring = score_val_split(ckpt, config, samples=2)
    by_hand = per_image_by_hand(ckpt, root)
    assert np.array_equal(scoring.matrix, sum(m for _, m in by_hand.values()))
    assert scoring.class_names == list(CAMVID_CLASSES) and scoring.images == 5
    ranked = sorted(by_hand, key=lambda n: by_hand[n][0], reverse=True)
    assert [s.name for s in scoring.best] == ranked[:2]
    assert [s.name for s in scoring.worst] == ranked[::-1][:2]  # worst first
    for s in scoring.best + scoring.worst:
        assert s.miou == pytest.approx(by_hand[s.name][0])
        assert s.image.shape == (48, 64, 3) and s.truth.shape == s.pred.shape == (48, 64)


def make_run_dir(csv_run, dst: Path) -> Path:
    """A run directory of the newer layout: history.csv, val_confusion.csv, a timing dict."""
    _, run = csv_run
    dst.mkdir()
    shutil.copytree(run / "checkpoints", dst / "checkpoints")
    shutil.copy(run / "config.yaml", dst / "config.yaml")
    results = json.loads((run / "results.json").read_text())
    results["best_checkpoint"] = "/elsewhere/checkpoints/best.ckpt"  # the run was moved
    results["timing"] = {"train_seconds": 12.5, "val_seconds": 3.25, "data_seconds": 80.0, "device": "cpu"}
    (dst / "results.json").write_text(json.dumps(results))
    (dst / "history.csv").write_text(
        "epoch,step,elapsed_seconds,lr,train/loss,val/loss,val/mIoU,val/pixel_acc\n"
        "1,2,1.5,0.002,2.4,2.3,0.05,0.2\n"
        "2,4,3.0,0.001,2.1,2.2,0.08,\n"
    )
    matrix = np.arange(121).reshape(11, 11)
    write_confusion_csv(matrix, CAMVID_CLASSES, dst / "val_confusion.csv")
    return dst


MISSING = {  # input -> {section: expected note}
    "config.yaml": {"config": "No config.yaml", "samples": "No config.yaml to say where the data is"},
    "results.json": {"timings": "No results.json: no training timings"},
    "history.csv": {"curves": "No history.csv or csv/metrics.csv"},
    "val_confusion.csv": {},  # computed from the checkpoint instead: no note
    "checkpoints": {"samples": "No best checkpoint"},
    "data": {"samples": "Could not score best.ckpt on the val split: data root"},
}


@pytest.mark.parametrize("missing", list(MISSING))
def test_each_missing_input_gives_a_note_not_a_crash(csv_run, tmp_path, missing) -> None:
    run = make_run_dir(csv_run, tmp_path / "run")
    if missing == "data":
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["data_root"] = str(tmp_path / "moved_away")
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    else:
        target = run / missing
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    page = read_page(write_report(run))

    for section_id in SECTION_IDS:
        notes = page.sections[section_id]["notes"]
        if section_id in MISSING[missing]:
            assert len(notes) == 1 and MISSING[missing][section_id] in notes[0], notes
        else:
            assert notes == [], (section_id, notes)
    if missing != "history.csv":
        curves = page.sections["curves"]["text"]
        assert "From history.csv" in curves and "at epoch 2" in curves
    if missing == "val_confusion.csv":
        assert "on the 5 val images" in page.sections["confusion"]["text"]
    else:
        assert "From val_confusion.csv" in page.sections["confusion"]["text"]
    if missing == "results.json":
        assert "from the confusion matrix below" in page.sections["iou"]["text"]
    else:
        timings = page.sections["timings"]["text"]
        assert "val_seconds" in timings and "3.2 s" in timings and "80.0 s (1 min 20 s)" in timings
        assert "device" not in timings  # not a number
    if "samples" not in MISSING[missing]:
        assert len(page.sections["samples"]["images"]) == 5 * 3


def test_corrupt_inputs_are_reported_like_missing_ones(csv_run, tmp_path) -> None:
    run = make_run_dir(csv_run, tmp_path / "run")
    (run / "results.json").write_text('{"val/mIoU": 0.5,')  # cut off mid-write
    (run / "config.yaml").write_text("data: [camvid\n")
    (run / "val_confusion.csv").write_text("true \\ predicted,Sky\nSky,lots\n")
    (run / "history.csv").write_bytes(b"epoch,val/mIoU\n1,\xff\xfe\n")
    text = write_report(run).read_text()
    page = read_page(run / "report.html")
    assert "results.json cannot be read (JSONDecodeError" in text
    assert any("config.yaml cannot be read" in n for n in page.sections["config"]["notes"])
    curves = page.sections["curves"]["notes"]
    assert any("Could not build this section: UnicodeDecodeError" in n for n in curves)
    assert "val_confusion.csv cannot be read" in page.sections["confusion"]["text"]


def test_an_empty_run_directory_still_gives_every_section(tmp_path) -> None:
    page = read_page(write_report(tmp_path))
    assert all(page.sections[s]["notes"] for s in SECTION_IDS)


def test_curves_leave_out_the_final_revalidation_row() -> None:
    # what --logger csv writes: val and train rows per epoch, lr rows per step, then the
    # re-validation of the best checkpoint after fit as one more epoch
    rows = [
        {"epoch": None, "step": 4.0, "lr-AdamW/pg1": 0.0015},
        {"epoch": 0.0, "step": 7.0, "val/loss": 2.3, "val/mIoU": 0.06},
        {"epoch": 0.0, "step": 7.0, "train/loss_epoch": 2.4, "train/loss_step": 2.2},
        {"epoch": 1.0, "step": 15.0, "val/loss": 2.1, "val/mIoU": 0.18},
        {"epoch": 1.0, "step": 15.0, "train/loss_epoch": 2.2},
        {"epoch": 2.0, "step": 16.0, "val/loss": 2.1, "val/mIoU": 0.18},
    ]
    series = curve_series(rows, epoch_offset=1.0)  # the CSV logger counts epochs from 0
    assert series["train/loss"] == [(1.0, 2.4), (2.0, 2.2)]
    assert series["val/mIoU"] == [(1.0, 0.06), (2.0, 0.18)]
    assert series["val/loss"] == [(1.0, 2.3), (2.0, 2.1)]
    assert series["lr"] == [(4.0, 0.0015)]


def test_report_script_and_its_errors(csv_run, tmp_path, capsys) -> None:
    _, run = csv_run
    assert report_script.main([str(run), "--samples", "1"]) == 0
    assert capsys.readouterr().out.strip() == f"Report in {run / 'report.html'}"
    assert len(read_page(run / "report.html").sections["samples"]["images"]) == 2 * 3
    argv = [str(tmp_path / "nowhere")]
    assert run_entry_point(lambda: report_script.main(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run directory") and "\n" not in err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_a_headless_browser_renders_the_report(csv_run, tmp_path) -> None:
    _, run = csv_run
    out = write_report(run)
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1200,2400", f"--screenshot={shot}", out.as_uri()],
        capture_output=True, timeout=120, check=True,
    )
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[:2] == (2400, 1200)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1  # not a blank page
