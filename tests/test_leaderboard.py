"""The local leaderboard: only the config keys that differ, sorted by the metric, CV rows with fold
std, the files it writes, and the same rows from a (fake) W&B API."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import yaml
from PIL import Image

import leaderboard as leaderboard_script
from drivseg.errors import ConfigError
from drivseg.leaderboard import leaderboard, render, rows_from_wandb

CLASSES = ["Road", "Car"]
BASE = {"data": "camvid", "arch": "unet", "encoder": "resnet18", "loss": "ce", "lr": 0.002, "batch_size": 8,
        "epochs": 8, "seed": 42, "data_root": "/data/camvid"}  # fmt: skip


def write_run(folder, name, config, miou, test=None, seconds=60.0):
    run = folder / name
    run.mkdir(parents=True)
    config = BASE | config | {"output_dir": str(run), "run_dir": str(run), "run_name": name}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    results = {"val/mIoU": miou, "val/IoU/Road": miou + 0.1, "val/IoU/Car": miou - 0.1, "train_seconds": seconds}
    if test is not None:
        results["test/mIoU"] = test
    (run / "results.json").write_text(json.dumps(results))
    return run


def markdown_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()]


def test_three_runs_list_only_the_differing_config_keys(tmp_path) -> None:
    write_run(tmp_path, "a", {"lr": 0.001}, 0.40, test=0.38)
    write_run(tmp_path, "b", {"lr": 0.003}, 0.50)
    write_run(tmp_path, "c", {"lr": 0.002, "batch_size": 16}, 0.45, test=0.44, seconds=3700)
    text = leaderboard(tmp_path)
    header, _, *rows = markdown_rows(text)
    assert header[:7] == ["#", "name", "arch", "encoder", "loss", "batch_size", "lr"]
    for same in ("epochs", "seed", "data", "output_dir", "run_dir", "run_name", "data_root"):
        assert same not in header
    assert [r[1] for r in rows] == ["b", "c", "a"]  # by val mIoU, best first
    c = dict(zip(header, rows[1]))
    assert c["batch_size"] == "16" and c["lr"] == "0.002" and c["train time"] == "1h01m"
    assert c["test mIoU %"] == "44.0" and c["Road"] == "55.0" and c["Car"] == "35.0"
    assert dict(zip(header, rows[0]))["test mIoU %"] == ""
    assert (tmp_path / "leaderboard.md").read_text().strip() == text
    with open(tmp_path / "leaderboard.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["name"] for r in table] == ["b", "c", "a"] and float(table[0]["score"]) == 0.5
    assert "IoU/Road" in table[0] and "epochs" not in table[0]
    assert Image.open(tmp_path / "leaderboard.png").size[0] > 500


def write_cv(folder, name, oof, std, folds=5):
    exp = folder / name
    (exp / "fold-0").mkdir(parents=True)
    (exp / "fold-0" / "results.json").write_text(json.dumps({"val/mIoU": 0.99}))  # part of the experiment
    results = {"oof/mIoU": oof, "oof/IoU/Road": oof, "oof/IoU/Car": oof, "folds/mIoU_std": std, "folds": folds,
               "cv_pool": "train", "val/mIoU": oof + 0.01, "train_seconds": 600.0, "parameters": 2_500_000,
               "class_names": CLASSES, "config": BASE | {"run_dir": str(exp)}}  # fmt: skip
    (exp / "cv_results.json").write_text(json.dumps(results))


def test_cv_experiments_are_one_row_with_oof_and_fold_std(tmp_path) -> None:
    write_run(tmp_path, "single", {}, 0.47)
    write_cv(tmp_path / "sweep", "cv-unet", 0.46, 0.012)
    unfinished = write_run(tmp_path / "sweep" / "cv-running", "fold-0", {}, 0.9).parent
    (unfinished / "cv_config.yaml").write_text("train: {}\n")  # no cv_results.json yet: no row, nor its folds
    header, _, *rows = markdown_rows(leaderboard(tmp_path, write=False))
    assert [r[1] for r in rows] == ["single", "sweep/cv-unet"]  # fold-0 is not a row of its own
    cv_row = dict(zip(header, rows[1]))
    assert cv_row["mIoU % (OOF ± folds / val)"] == "46.0 ± 1.2 (OOF)" and cv_row["params (M)"] == "2.50"
    assert cv_row["folds"] == "5" and cv_row["cv_pool"] == "train" and "lr" not in header
    assert not (tmp_path / "leaderboard.md").exists()  # write=False


def test_metric_sorts_rows_and_rows_without_it_go_last(tmp_path) -> None:
    write_run(tmp_path, "a", {"lr": 0.001}, 0.40, test=0.38, seconds=60)
    write_run(tmp_path, "b", {"lr": 0.003}, 0.50, seconds=30)
    write_run(tmp_path, "c", {"lr": 0.002}, 0.45, test=0.44, seconds=90)
    header, _, *rows = markdown_rows(leaderboard(tmp_path, metric="test/mIoU"))
    assert [r[1] for r in rows] == ["c", "a", "b"] and "test/mIoU" in header
    _, _, *rows = markdown_rows(leaderboard(tmp_path, metric="train_seconds", write=False))
    assert [r[1] for r in rows] == ["b", "a", "c"]  # times are better low


def test_empty_folder_is_one_clear_error(tmp_path, capsys) -> None:
    with pytest.raises(ConfigError, match="no results.json or cv_results.json under"):
        leaderboard(tmp_path)
    from drivseg.entry import run_entry_point

    assert run_entry_point(lambda: leaderboard_script.main([str(tmp_path / "missing")])) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_rows_from_the_wandb_api_skip_fold_runs(tmp_path) -> None:
    def run(name, job_type, summary, config):
        return SimpleNamespace(name=name, job_type=job_type, summary=summary, config=config)

    runs = [
        run("plain", None, {"val/mIoU": 0.41, "val/IoU/Road": 0.5, "_step": 3}, BASE | {"lr": 0.01}),
        run("exp-fold-0", "fold-0", {"val/mIoU": 0.9}, BASE),
        run("exp-cv", "summary", {"oof/mIoU": 0.44, "folds/mIoU_std": 0.02, "oof/IoU/Road": 0.6}, BASE),
    ]
    api = SimpleNamespace(runs=lambda path: runs if path == "team/proj" else [])
    rows = rows_from_wandb("team/proj", api)
    assert [(r["name"], r["kind"]) for r in rows] == [("plain", "run"), ("exp-cv", "cv")]
    header, _, *cells = markdown_rows(render(rows, None, tmp_path, write=True))
    assert [c[1] for c in cells] == ["exp-cv", "plain"] and "lr" in header
    assert (tmp_path / "leaderboard.csv").is_file()
    with pytest.raises(ConfigError, match="no runs found"):
        rows_from_wandb("team/empty", api)
