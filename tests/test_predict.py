"""predict.py: palette masks and overlays for an image, a folder and a video; the ONNX backend."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import export as export_script
import predict
from drivseg.checkpoint import load_module
from drivseg.data.camvid import CAMVID_PALETTE
from drivseg.entry import run_entry_point

from tests.conftest import train_tiny_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny_checkpoint(tmp_path_factory.mktemp("trained"))


def mask_by_hand(ckpt: Path, image: np.ndarray) -> np.ndarray:
    """The checkpoint's own prediction: normalise with its statistics, argmax of its logits."""
    module = load_module(ckpt)
    cfg = module.hparams.model_config
    mean, std = np.array(cfg["mean"], np.float32), np.array(cfg["std"], np.float32)
    x = (image.astype(np.float32) / 255 - mean) / std
    with torch.no_grad():
        return module(torch.from_numpy(x).permute(2, 0, 1)[None]).argmax(1)[0].numpy()


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_predict_an_image_writes_a_palette_mask_and_an_overlay(trained, tmp_path) -> None:
    root, ckpt = trained
    image_path = sorted((root / "val").iterdir())[0]
    out = tmp_path / "out"
    argv = ["--ckpt", str(ckpt), "--input", str(image_path), "--output", str(out), "--alpha", "0.4"]
    assert predict.main(argv) == 0

    stem = image_path.stem
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}_mask.png", f"{stem}_overlay.png"]
    with Image.open(out / f"{image_path.stem}_mask.png") as im:
        assert im.mode == "P" and im.size == (64, 48)
        assert im.getpalette()[: 3 * 11] == [v for c in CAMVID_PALETTE for v in c]
        mask = np.asarray(im)
    image = rgb(image_path)
    assert np.array_equal(mask, mask_by_hand(ckpt, image))
    colours = np.asarray(CAMVID_PALETTE, np.float32)[mask]
    expected = np.rint(0.6 * image.astype(np.float32) + 0.4 * colours).astype(np.uint8)
    assert np.array_equal(rgb(out / f"{image_path.stem}_overlay.png"), expected)


def test_predict_a_folder_of_mixed_sizes(trained, tmp_path) -> None:
    root, ckpt = trained
    folder = tmp_path / "frames"
    folder.mkdir()
    sources = sorted((root / "val").iterdir())[:3]
    for p in sources:
        Image.open(p).save(folder / p.name)
    Image.fromarray(rgb(sources[0])[:40, :56]).save(folder / "cropped.jpg")
    out = tmp_path / "out"
    argv = ["--ckpt", str(ckpt), "--input", str(folder), "--output", str(out), "--batch-size", "3",
            "--tta", "flip", "--no-progress"]
    assert predict.main(argv) == 0

    stems = [p.stem for p in sources] + ["cropped"]
    expected = sorted(f"{s}_{kind}.png" for s in stems for kind in ("mask", "overlay"))
    assert sorted(p.name for p in out.iterdir()) == expected
    for stem, size in zip(stems, [(64, 48)] * 3 + [(56, 40)]):
        with Image.open(out / f"{stem}_mask.png") as mask, Image.open(out / f"{stem}_overlay.png") as overlay:
            assert mask.size == overlay.size == size
            assert np.asarray(mask).max() < 11


def test_predict_a_video_writes_an_overlaid_video(trained, tmp_path) -> None:
    root, ckpt = trained
    frames = [rgb(p) for p in sorted((root / "val").iterdir())]  # five 48x64 frames
    video = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (64, 48))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "out"
    argv = ["--ckpt", str(ckpt), "--input", str(video), "--output", str(out), "--batch-size", "2"]
    assert predict.main(argv) == 0

    assert [p.name for p in out.iterdir()] == ["drive_overlay.mp4"]
    written = read_video(out / "drive_overlay.mp4")
    assert len(written) == 5 and all(f.shape == (48, 64, 3) for f in written)
    cap = cv2.VideoCapture(str(out / "drive_overlay.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)  # the input's frame rate
    cap.release()
    # each frame is the overlay of the decoded input frame (up to the codec's loss)
    decoded = read_video(video)
    colours = np.asarray(CAMVID_PALETTE, np.float32)
    for src, got in zip(decoded, written):
        overlay = 0.5 * src.astype(np.float32) + 0.5 * colours[mask_by_hand(ckpt, src)]
        error = np.abs(got.astype(np.float32) - overlay).mean()
        assert error < 12 and error < np.abs(got.astype(np.float32) - src).mean() / 2


def read_video(path: Path) -> list[np.ndarray]:
    """All frames of a video as RGB arrays."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def test_onnxruntime_backend_predicts_like_pytorch(trained, tmp_path) -> None:
    root, ckpt = trained
    onnx_file = tmp_path / "model.onnx"
    assert export_script.main(["--ckpt", str(ckpt), "--format", "onnx", "--output", str(onnx_file),
                               "--dynamic", "--height", "64", "--width", "64"]) == 0
    image_path = sorted((root / "val").iterdir())[1]
    out = tmp_path / "out"
    argv = ["--backend", "onnxruntime", "--onnx", str(onnx_file), "--input", str(image_path),
            "--output", str(out)]
    assert predict.main(argv) == 0
    with Image.open(out / f"{image_path.stem}_mask.png") as im:
        assert im.getpalette()[: 3 * 11] == [v for c in CAMVID_PALETTE for v in c]  # from the ONNX metadata
        mask = np.asarray(im)
    # logits agree to ~1e-6, so only exact ties could flip a pixel
    assert (mask == mask_by_hand(ckpt, rgb(image_path))).mean() > 0.999


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input", "nowhere.png"], "--input nowhere.png does not exist"),
        (["--input", "x.png", "--backend", "onnxruntime"], "--backend onnxruntime runs --onnx FILE alone"),
        (["--input", "x.png", "--device", "cuda"], "--device cuda but no CUDA device"),
    ],
)
def test_bad_predict_input_is_one_line(trained, tmp_path, capsys, monkeypatch, extra, message) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["--ckpt", str(trained[1]), "--output", str(tmp_path / "out"), *extra]
    assert run_entry_point(lambda: predict.main(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err


def test_trainids_format_writes_plain_class_ids_in_mirrored_subfolders(trained, tmp_path) -> None:
    root, ckpt = trained
    frames = tmp_path / "frames"
    sources = sorted((root / "val").iterdir())[:3]
    for p, city in zip(sources, ["a", "a", "b"]):
        (frames / city).mkdir(parents=True, exist_ok=True)
        Image.open(p).save(frames / city / p.name)
    out = tmp_path / "out"
    argv = ["--ckpt", str(ckpt), "--input", str(frames), "--output", str(out), "--format", "trainids"]
    assert predict.main(argv) == 0

    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(f"{c}/{p.stem}_trainIds.png" for p, c in zip(sources, ["a", "a", "b"]))
    for p, city in zip(sources, ["a", "a", "b"]):
        with Image.open(out / city / f"{p.stem}_trainIds.png") as im:
            assert im.mode == "L" and im.getpalette() is None  # plain values, no colours
            assert np.array_equal(np.asarray(im), mask_by_hand(ckpt, rgb(p)))


def test_a_second_run_into_a_folder_inside_the_input_ignores_its_own_outputs(trained, tmp_path) -> None:
    root, ckpt = trained
    frames = tmp_path / "frames"
    frames.mkdir()
    image = sorted((root / "val").iterdir())[0]
    Image.open(image).save(frames / image.name)
    argv = ["--ckpt", str(ckpt), "--input", str(frames), "--output", str(frames / "out")]
    assert predict.main(argv) == 0 and predict.main(argv) == 0
    written = sorted(p.name for p in (frames / "out").iterdir())
    assert written == [f"{image.stem}_mask.png", f"{image.stem}_overlay.png"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "labelids"],
         ("--format labelids: {ckpt} predicts 11 classes ['Sky', 'Building', 'Pole', 'Road']..., "
          "which have no Cityscapes label ids")),
        (["--format", "labelids", "--input", "drive.mp4"], "--format labelids writes one PNG per image"),
    ],
)
def test_formats_a_model_cannot_write_are_one_line(trained, tmp_path, capsys, extra, message) -> None:
    root, ckpt = trained
    image = sorted((root / "val").iterdir())[0]
    argv = ["--ckpt", str(ckpt), "--input", str(image), "--output", str(tmp_path / "out"), *extra]
    assert run_entry_point(lambda: predict.main(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message.format(ckpt=ckpt) in err
    assert "--format palette or --format trainids" in err or "video" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_two_inputs_for_one_output_file_are_refused_before_writing(trained, tmp_path, capsys) -> None:
    root, ckpt = trained
    frames = tmp_path / "frames"
    frames.mkdir()
    image = Image.open(sorted((root / "val").iterdir())[0])
    image.save(frames / "x.png")
    image.convert("RGB").save(frames / "x.jpg")
    argv = ["--ckpt", str(ckpt), "--input", str(frames), "--output", str(tmp_path / "out")]
    assert run_entry_point(lambda: predict.main(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert "x.jpg and" in err and "x.png would both be written to" in err and "\n" not in err
    assert not list((tmp_path / "out").iterdir())
