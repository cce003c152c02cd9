"""Every image mode is read as RGB uint8 by one rule; 16-bit masks; EXIF orientation; decode failures.

The rule (``read_rgb_image``): grey and 1-bit replicated, palette looked up, alpha dropped (not
composited), 16-bit samples ``>> 8``, CMYK converted by PIL. Expected values are worked out by
hand from that rule.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from drivseg.data.camvid import CAMVID
from drivseg.data.check import check_dataset
from drivseg.data.dataset import SegmentationDataset
from drivseg.data.folder import folder_source
from drivseg.data.lyft_carla import read_lyft_mask
from drivseg.data.source import DECODE, read_index_mask, read_rgb_image
from drivseg.errors import DataError
from tests.conftest import run_train, write_segnet_dataset


Writer = Callable[[Path], Path]


def _pil(array: np.ndarray, suffix: str = ".png") -> Writer:
    """PIL picks the mode from the array: (H, W, 2) uint8 -> LA, >u2 -> I;16B, int32 -> I, ..."""

    def write(path: Path) -> Path:
        Image.fromarray(array).save(path.with_suffix(suffix))
        return path.with_suffix(suffix)

    return write


def _palette(transparency) -> Writer:
    def write(path: Path) -> Path:
        im = Image.new("P", (2, 1))
        im.putpalette([10, 20, 30, 200, 100, 50])
        im.putpixel((1, 0), 1)
        im.save(path.with_suffix(".png"), **({} if transparency is None else {"transparency": transparency}))
        return path.with_suffix(".png")

    return write


def _one_bit(path: Path) -> Path:
    im = Image.new("1", (2, 1))
    im.putpixel((1, 0), 1)
    im.save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def _cv2_16bit(rgba: list[int]) -> Writer:
    def write(path: Path) -> Path:
        pixel = np.array([[rgba]], dtype=np.uint16)
        order = [2, 1, 0, 3][: len(rgba)]  # OpenCV writes BGR(A)
        cv2.imwrite(str(path.with_suffix(".png")), pixel[..., order])
        return path.with_suffix(".png")

    return write


def _cmyk(path: Path) -> Path:
    # (C, M, Y, K) per pixel; PIL: R = (255 - C) * (255 - K) / 255, likewise G from M, B from Y
    cmyk = bytes([0, 255, 0, 0, 0, 0, 0, 51, 255, 0, 0, 51])
    Image.frombytes("CMYK", (3, 1), cmyk).save(path.with_suffix(".tif"))
    return path.with_suffix(".tif")


GREY16 = np.array([[0x1234, 0xFFFF, 0x00FF]], dtype=np.uint16)
MODES = {
    # mode: (writer, expected RGB rows)
    "L": (_pil(np.array([[77, 200]], np.uint8)), [[77] * 3, [200] * 3]),
    "LA": (_pil(np.array([[[100, 7], [3, 255]]], np.uint8)), [[100] * 3, [3] * 3]),
    "RGBA": (_pil(np.array([[[10, 20, 30, 0], [1, 2, 3, 128]]], np.uint8)), [[10, 20, 30], [1, 2, 3]]),
    "P": (_palette(None), [[10, 20, 30], [200, 100, 50]]),
    "P+transparency index": (_palette(0), [[10, 20, 30], [200, 100, 50]]),
    "P+transparency bytes": (_palette(bytes([0, 128])), [[10, 20, 30], [200, 100, 50]]),
    "1": (_one_bit, [[0] * 3, [255] * 3]),
    # 0x1234 >> 8 = 0x12; 0xFFFF -> 0xFF; 0x00FF -> 0 (PIL's own convert would clip it to 255)
    "I;16": (_pil(GREY16), [[0x12] * 3, [0xFF] * 3, [0] * 3]),
    "I;16B": (_pil(GREY16.astype(">u2"), ".tif"), [[0x12] * 3, [0xFF] * 3, [0] * 3]),
    # 32-bit: clipped to 0..65535 first: 70000 -> 65535 -> 255, -5 -> 0
    "I": (_pil(np.array([[4660, 70000, -5]], np.int32), ".tif"), [[18] * 3, [255] * 3, [0] * 3]),
    "RGB 16-bit": (_cv2_16bit([0x1234, 0xABCD, 0x00FF]), [[0x12, 0xAB, 0x00]]),
    "RGBA 16-bit": (_cv2_16bit([0x1234, 0xABCD, 0x00FF, 0x0101]), [[0x12, 0xAB, 0x00]]),
    "CMYK": (_cmyk, [[255, 0, 255], [204, 204, 204], [0, 204, 204]]),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_reads_as_rgb_by_the_rule(tmp_path, mode) -> None:
    writer, expected = MODES[mode]
    path = writer(tmp_path / "image")
    with Image.open(path) as im:
        assert im.mode == mode.split()[0].split("+")[0]  # the fixture is in the mode it names
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. PIL's palette-transparency warning on every file
        rgb = read_rgb_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, len(expected), 3)
    np.testing.assert_array_equal(rgb[0], np.array(expected, np.uint8))


def test_pil_opens_16_bit_rgb_pngs_as_8_bit_high_bytes(tmp_path) -> None:
    # the fact the rule is aligned with: 16-bit RGB PNGs never reach us as 16-bit data
    with Image.open(MODES["RGB 16-bit"][0](tmp_path / "image")) as im:
        assert im.mode == "RGB"


def test_float_image_is_refused_naming_the_file(tmp_path) -> None:
    path = tmp_path / "depth.tif"
    Image.fromarray(np.ones((2, 2), np.float32)).save(path)
    with pytest.raises(DataError, match=r"depth\.tif is a 32-bit float image \(mode F\)"):
        read_rgb_image(path)


# ------------------------------------------------------------------ 16-bit index masks


def _folder_with_16_bit_masks(root: Path, values: np.ndarray) -> Path:
    (root / "images" / "train").mkdir(parents=True)
    (root / "masks" / "train").mkdir(parents=True)
    (root / "images" / "val").mkdir()
    (root / "masks" / "val").mkdir()
    classes = {"classes": ["road", "car", "sky"], "values": [1000, 2000, 0]}
    (root / "classes.yaml").write_text(yaml.safe_dump(classes))
    for split in ("train", "val"):
        Image.fromarray(np.zeros((*values.shape, 3), np.uint8)).save(root / "images" / split / "a_0.png")
        Image.fromarray(values.astype(np.uint16)).save(root / "masks" / split / "a_0.png")
    return root


def test_16_bit_mask_in_spec_is_read(tmp_path) -> None:
    root = _folder_with_16_bit_masks(tmp_path / "ds", np.array([[1000, 2000], [0, 1000]]))
    with Image.open(root / "masks" / "train" / "a_0.png") as im:
        assert im.mode == "I;16"
    source = folder_source(root)
    _, mask = SegmentationDataset(source.find_pairs(root, "train"), source).load(0)
    np.testing.assert_array_equal(mask, [[0, 1], [2, 0]])


def test_16_bit_mask_out_of_spec_names_file_and_values(tmp_path, capsys) -> None:
    root = _folder_with_16_bit_masks(tmp_path / "ds", np.array([[1000, 3000], [40000, 0]]))
    source = folder_source(root)
    with pytest.raises(DataError, match=r"masks/train/a_0\.png has values \[3000, 40000\] outside"):
        SegmentationDataset(source.find_pairs(root, "train"), source).load(0)
    assert check_dataset(source, root, tmp_path / "h.png") == 1
    out = capsys.readouterr().out
    assert "mask value 3000 in 2 file(s): [train] masks/train/a_0.png, [val] masks/val/a_0.png" in out
    assert "mask value 40000 in 2 file(s)" in out


def test_32_bit_mask_values_beyond_16_bits_are_named(tmp_path) -> None:
    path = tmp_path / "m.tif"
    Image.fromarray(np.array([[0, 70000]], np.int32)).save(path)
    with pytest.raises(DataError, match=r"m\.tif has values \[70000\] outside 0\.\.65535"):
        read_index_mask(path)


# ------------------------------------------------------------------ EXIF orientation


def _rotated_jpeg(path: Path, orientation: int = 6) -> np.ndarray:
    """A 40x64 (HxW) JPEG whose left half is red and right half blue, tagged ``orientation``."""
    rgb = np.zeros((40, 64, 3), np.uint8)
    rgb[:, :32] = (255, 0, 0)
    rgb[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, quality=95, exif=exif)
    return rgb


def test_exif_rotated_jpeg_is_read_in_stored_order(tmp_path) -> None:
    stored = _rotated_jpeg(tmp_path / "frame.jpg")
    rgb = read_rgb_image(tmp_path / "frame.jpg")
    assert rgb.shape == (40, 64, 3)  # rotating by orientation 6 would give 64x40
    assert np.abs(rgb[5:35, 5:27].astype(int) - stored[5:35, 5:27]).max() < 8  # red stays on the left


def test_check_data_warns_about_exif_rotation_without_failing(tmp_path, capsys) -> None:
    root = write_segnet_dataset(tmp_path / "camvid", {"train": 3, "val": 2}, size=(40, 64))
    victim = sorted((root / "train").iterdir())[1]
    victim.unlink()
    _rotated_jpeg(victim.with_suffix(".jpg"))
    assert check_dataset(CAMVID, root, tmp_path / "h.png") == 0  # a warning alone keeps exit code 0
    out = capsys.readouterr().out
    assert "Warning: 1 images with an EXIF orientation other than 1" in out
    assert f"[train] train/{victim.stem}.jpg: orientation 6" in out and "No problems found" in out


# ------------------------------------------------------------------ decode failures


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _photo(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def _index_mask(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 11, (48, 64), dtype=np.uint8)).save(path)
    return path


READERS = {
    "image png": (read_rgb_image, "image.png", _photo),
    "image jpeg": (read_rgb_image, "image.jpg", _photo),
    "index mask": (read_index_mask, "mask.png", _index_mask),
    "colour mask (OpenCV)": (read_lyft_mask, "mask.png", _photo),
}


@pytest.mark.parametrize("damage", [_truncate, _corrupt, _empty], ids=["truncated", "corrupt", "empty"])
@pytest.mark.parametrize("reader", list(READERS))
def test_undecodable_file_is_a_data_error_naming_it(tmp_path, reader, damage) -> None:
    read, name, write = READERS[reader]
    path = damage(write(tmp_path / name))
    with pytest.raises(DataError) as info:
        read(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert info.value.kind == DECODE
    assert ("is empty (0 bytes)" in str(info.value)) == (damage is _empty)


def test_truncated_image_during_training_ends_the_run_in_one_line(tmp_path) -> None:
    root = write_segnet_dataset(tmp_path / "camvid", {"train": 8, "val": 5})
    victim = _truncate(sorted((root / "train").iterdir())[3])
    run_dir = tmp_path / "run"
    proc = run_train(["--data", "camvid", "--data-root", str(root), "--arch", "tiny_fcn", "--crop-size", "32x48",
                      "--batch-size", "2", "--epochs", "1", "--logger", "none", "--num-workers", "2",
                      "--output-dir", str(run_dir)], tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [proc.stderr.strip().splitlines()[-1]]  # one error line, and it is the last
    assert f"image {victim} cannot be decoded" in errors[0] and "truncated" in errors[0]
    assert not (run_dir / "results.json").exists()
