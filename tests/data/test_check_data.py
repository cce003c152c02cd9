"""``--check-data`` reads every split in one pass and reports every problem, grouped by kind."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drivseg.data.camvid import CAMVID, find_segnet_pairs
from drivseg.data.check import KINDS, check_dataset
from drivseg.data.cityscapes import CITYSCAPES
from drivseg.data.folder import folder_source
from drivseg.data.source import report_unpaired
from drivseg.errors import DataError
from tests.conftest import write_segnet_dataset
from tests.data.fixtures_cityscapes import write_cityscapes_tree, write_png
from tests.data.fixtures_misc import write_folder_dataset


def sections(out: str) -> dict[str, list[str]]:
    """The report's groups: kind heading -> its entries (``"[split] file: detail"``)."""
    groups: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("    ") and current is not None:
            groups[current].append(line.strip())
        elif line.startswith("  "):
            current = next((h for h, _ in KINDS.values() if f" {h} (" in line), line.strip())
            groups[current] = []
        else:
            current = None
    return groups


def run_check(capsys, source, root: Path, tmp_path: Path, workers: int = 0) -> tuple[int, str]:
    code = check_dataset(source, root, tmp_path / "histogram.png", num_workers=workers)
    return code, capsys.readouterr().out


def name(i: int) -> str:
    return f"seq{i % 3:02d}_{i:06d}.png"  # write_segnet_dataset's file names


def halve(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def camvid_with_every_fault(tmp_path: Path) -> Path:
    """SegNet layout: 12 train pairs with one fault each (11 is clean) and an empty val split."""
    root = write_segnet_dataset(tmp_path / "camvid", {"train": 12, "val": 0})
    train, annot = root / "train", root / "trainannot"
    (annot / name(0)).unlink()  # image without a mask
    (train / name(1)).unlink()  # mask without an image
    write_png(annot / name(2), np.zeros((20, 30), np.uint8))  # size mismatch (image is 64x48)
    halve(train / name(3))  # truncated image
    (annot / name(4)).write_bytes(b"")  # empty mask
    (train / name(5)).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)  # corrupt image
    write_png(annot / name(6), np.zeros((48, 64, 3), np.uint8))  # colour mask
    for i, values in ((7, [77]), (8, [77, 200])):  # values outside 0..11
        mask = np.array(Image.open(annot / name(i)))
        mask[0, : len(values)] = values
        write_png(annot / name(i), mask)
    (train / name(9)).write_bytes(b"")  # empty image
    halve(annot / name(10))  # truncated mask
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_every_fault_in_one_report(capsys, tmp_path, camvid_with_every_fault, workers) -> None:
    code, out = run_check(capsys, CAMVID, camvid_with_every_fault, tmp_path, workers)
    assert code == 1
    assert out.count("problem(s):") == 1  # one report, after reading everything
    assert "[train] 11 images, 11 masks, 10 complete pairs" in out
    groups = sections(out)
    assert groups["images without a mask"] == [f"[train] train/{name(0)}"]
    assert groups["masks without an image"] == [f"[train] trainannot/{name(1)}"]
    assert groups["image/mask size mismatches (WxH)"] == [
        f"[train] trainannot/{name(2)}: is 30x20, its image train/{name(2)} is 64x48"
    ]
    undecodable = {entry.split(":")[0]: entry for entry in groups["files that cannot be decoded"]}
    assert sorted(undecodable) == sorted(
        [f"[train] train/{name(3)}", f"[train] trainannot/{name(4)}", f"[train] train/{name(5)}",
         f"[train] train/{name(9)}", f"[train] trainannot/{name(10)}"]
    )  # fmt: skip
    assert "is empty (0 bytes)" in undecodable[f"[train] train/{name(9)}"]
    assert "truncated" in undecodable[f"[train] train/{name(3)}"]
    assert groups["files in a mode this dataset cannot read"] == [
        f"[train] trainannot/{name(6)}: mode RGB (colour)"
    ]
    assert f"mask value 77 in 2 file(s): [train] trainannot/{name(7)}, [train] trainannot/{name(8)}" in out
    assert f"mask value 200 in 1 file(s): [train] trainannot/{name(8)}" in out
    assert "outside the camvid label spec (valid raw values: 0..11)" in out
    [empty] = groups["empty or unusable splits"]
    assert empty.startswith("[val]: ") and "holds no images" in empty
    assert (tmp_path / "histogram.png").stat().st_size > 1000  # the clean pairs still give a histogram


def test_cityscapes_unpaired_image_and_size_mismatch_and_missing_split(capsys, tmp_path) -> None:
    root = write_cityscapes_tree(tmp_path / "cityscapes")
    gt = root / "gtFine" / "train"
    (gt / "aachen" / "aachen_000001_000019_gtFine_labelIds.png").unlink()
    write_png(gt / "bochum" / "bochum_000000_000313_gtFine_labelIds.png", np.zeros((16, 32), np.uint8))
    shutil.rmtree(root / "gtFine" / "val")
    code, out = run_check(capsys, CITYSCAPES, root, tmp_path)
    assert code == 1
    groups = sections(out)
    assert groups["images without a mask"] == [
        "[train] leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png"
    ]
    assert groups["image/mask size mismatches (WxH)"] == [
        "[train] gtFine/train/bochum/bochum_000000_000313_gtFine_labelIds.png: is 32x16, its image "
        "leftImg8bit/train/bochum/bochum_000000_000313_leftImg8bit.png is 64x32"
    ]
    [missing] = groups["missing split folders"]
    assert missing.startswith("[val] gtFine/val: ") and "does not exist" in missing


def test_long_lists_show_the_first_20_and_a_count(capsys, tmp_path) -> None:
    root = write_segnet_dataset(tmp_path / "camvid", {"train": 50, "val": 2}, size=(8, 8))
    for i in range(25):
        (root / "trainannot" / name(i)).unlink()
    for i in range(25, 48):
        mask = np.array(Image.open(root / "trainannot" / name(i)))
        mask[0, 0] = 77
        write_png(root / "trainannot" / name(i), mask)
    code, out = run_check(capsys, CAMVID, root, tmp_path)
    assert code == 1
    unpaired = sections(out)["images without a mask"]
    assert "  25 images without a mask (" in out
    first_20 = [f"[train] train/{name(i)}" for i in sorted(range(25), key=name)[:20]]  # sorted by name
    assert unpaired == [*first_20, "... and 5 more"]
    [line] = [ln for ln in out.splitlines() if "mask value 77" in ln]
    files = line.split(": ", 1)[1].split(", ")
    assert "in 23 file(s)" in line and len(files) == 21 and files[-1] == "... and 3 more"


def test_pairing_reports_only_inside_the_check(tiny_camvid) -> None:
    (tiny_camvid / "trainannot" / name(0)).unlink()
    with pytest.raises(DataError, match="1 images without a mask"):
        find_segnet_pairs(tiny_camvid, "train")  # training keeps failing early
    with report_unpaired() as pairings:
        pairs = find_segnet_pairs(tiny_camvid, "train")
    assert len(pairs) == 7 and pairings[0].images_without_mask == [tiny_camvid / "train" / name(0)]
    with pytest.raises(DataError, match="1 images without a mask"):
        find_segnet_pairs(tiny_camvid, "train")


def test_absent_optional_split_is_no_problem_but_a_broken_one_is(capsys, tmp_path, tiny_camvid) -> None:
    (tiny_camvid / "test").mkdir()  # test images without testannot/: training skips the split
    write_png(tiny_camvid / "test" / name(0), np.zeros((48, 64, 3), np.uint8))
    code, out = run_check(capsys, CAMVID, tiny_camvid, tmp_path)
    assert code == 0 and "[test] absent (optional): test mask folder" in out and "No problems found" in out
    (tiny_camvid / "testannot").mkdir()
    for i in (0, 1):
        write_png(tiny_camvid / "testannot" / name(i), np.zeros((48, 64), np.uint8))
    code, out = run_check(capsys, CAMVID, tiny_camvid, tmp_path)
    assert code == 1 and sections(out)["masks without an image"] == [f"[test] testannot/{name(1)}"]


def test_pool_layout_reports_an_unpaired_file_once(capsys, tmp_path) -> None:
    # one images/ + masks/ pool split by sequence: every split's listing sees the same stray file
    masks = {f"{seq}_{i}": np.zeros((8, 8), np.uint8) for seq in ("a", "b", "c") for i in range(2)}
    root = tmp_path / "folder"
    write_folder_dataset(root, "classes: [road, car]\nvalues: [0, 1]\n", masks)
    (root / "masks" / "b_1.png").unlink()
    code, out = run_check(capsys, folder_source(root), root, tmp_path)
    assert code == 1 and sections(out)["images without a mask"] == ["[train] images/b_1.jpg"]


def test_colour_coded_masks_are_no_mode_problem_and_unknown_colours_are_named(capsys, tmp_path) -> None:
    road, car = (128, 64, 128), (0, 0, 142)
    masks = {f"{s}_{i}": np.tile(np.array(road if i else car, np.uint8), (8, 8, 1)) for s in "abc" for i in (0, 1)}
    masks["c_1"][0, 0] = (1, 2, 3)
    root = tmp_path / "folder"
    write_folder_dataset(root, f"classes: [road, car]\ncolors: [{list(road)}, {list(car)}]\n", masks)
    source = folder_source(root)
    split = "val" if root / "masks" / "c_1.png" in {m for _, m in source.find_pairs(root, "val")} else "train"
    code, out = run_check(capsys, source, root, tmp_path)
    assert code == 1 and "mode" not in " ".join(sections(out))
    assert "1 mask colour(s) outside the folder colour table:" in out
    assert f"mask colour (1, 2, 3) in 1 file(s): [{split}] masks/c_1.png" in out


def test_an_unexpected_reader_error_is_reported_and_the_check_goes_on(capsys, tmp_path, tiny_camvid) -> None:
    def read_mask(path: Path) -> np.ndarray:
        if path.name == name(2):
            raise RuntimeError("reader bug\nsecond line")
        return CAMVID.read_mask(path)

    code, out = run_check(capsys, replace(CAMVID, read_mask=read_mask), tiny_camvid, tmp_path)
    assert code == 1
    assert sections(out)["other mask problems"] == [
        f"[{split}] {split}annot/{name(2)}: RuntimeError: reader bug second line" for split in ("train", "val")
    ]  # every split still read to the end
