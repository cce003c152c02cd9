"""KITTI semantic source: layout, Cityscapes label ids, and the sequence-preserving split."""

from __future__ import annotations

import numpy as np
import pytest

from drivseg.data.cityscapes import CITYSCAPES19_SPEC
from drivseg.data.kitti import KITTI, kitti_sequence_of, kitti_split_of, read_raw_drive_mapping
from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import DataError
from tests.data.fixtures_cityscapes import (
    SIZE,
    stripes,
    write_kitti_frame,
    write_kitti_mapping,
    write_kitti_tree,
    write_png,
)


def test_train_and_val_partition_the_training_folder(tmp_path) -> None:
    write_kitti_tree(tmp_path, scenes=range(12))
    train = KITTI.find_pairs(tmp_path, "train")
    val = KITTI.find_pairs(tmp_path, "val")
    names = [img.name for img, _ in train + val]
    assert sorted(names) == [f"{s:06d}_10.png" for s in range(12)]  # every frame once, none twice
    assert train and val
    for image, mask in train + val:
        assert image.name == mask.name
        assert (image.parent.name, mask.parent.name) == ("image_2", "semantic")
    assert KITTI.find_pairs(tmp_path, "val") == val  # deterministic


def test_split_is_about_one_fifth_and_stable() -> None:
    scenes = [f"{s:06d}" for s in range(200)]
    val = [s for s in scenes if kitti_split_of(s) == "val"]
    assert 0.15 <= len(val) / len(scenes) <= 0.25
    assert {kitti_split_of(s) for s in scenes} == {"train", "val"}
    assert val == [s for s in scenes if kitti_split_of(s) == "val"]


def test_masks_are_cityscapes_label_ids(tmp_path) -> None:
    # road, sidewalk, car, person, unlabeled, parking, bicycle (cityscapesScripts labels.py)
    write_kitti_frame(tmp_path, 3, stripes([7, 8, 26, 24, 0, 9, 33]))
    pairs = KITTI.find_pairs(tmp_path, kitti_split_of("000003"))
    (_, mask), = pairs
    got = KITTI.label_spec.encode(KITTI.read_mask(mask))
    assert KITTI.label_spec is CITYSCAPES19_SPEC
    np.testing.assert_array_equal(got, stripes([0, 1, 13, 11, IGNORE_INDEX, IGNORE_INDEX, 18]))


def test_out_of_spec_value_is_named(tmp_path) -> None:
    write_kitti_frame(tmp_path, 3, stripes([7, 34]))
    (_, mask), = KITTI.find_pairs(tmp_path, kitti_split_of("000003"))
    with pytest.raises(ValueError, match=r"\[34\]"):
        KITTI.label_spec.encode(KITTI.read_mask(mask))


def test_sequence_is_scene_id_without_mapping(tmp_path) -> None:
    image, mask = write_kitti_frame(tmp_path, 42)
    assert kitti_sequence_of(image) == kitti_sequence_of(mask) == "000042"
    with pytest.raises(DataError, match="frame.png"):
        kitti_sequence_of(tmp_path / "frame.png")


def test_devkit_mapping_keeps_raw_drives_together(tmp_path) -> None:
    drives = ["2011_09_26_drive_0009_sync", "2011_09_26_drive_0001_sync", "2011_09_28_drive_0002_sync"]
    # 30 scenes, 10 per raw drive, interleaved; scene 30 has an empty line (drive not public)
    lines = [f"{drives[s % 3][:10]} {drives[s % 3]} {s:010d}" for s in range(30)]
    write_kitti_mapping(tmp_path, [*lines, ""])
    write_kitti_tree(tmp_path, scenes=range(31))
    split_of_drive: dict[str, set[str]] = {}
    for split in ("train", "val"):
        for image, _ in KITTI.find_pairs(tmp_path, split):
            split_of_drive.setdefault(kitti_sequence_of(image), set()).add(split)
    assert set(split_of_drive) == {*drives, "000030"}
    assert all(len(splits) == 1 for splits in split_of_drive.values())


def test_mapping_reader_follows_devkit_line_numbers(tmp_path) -> None:
    path = write_kitti_mapping(
        tmp_path, ["2011_09_26 2011_09_26_drive_0001_sync 0000000010", "", "2011_09_26 x_sync 0000000384"]
    )
    assert read_raw_drive_mapping(path) == {"000000": "2011_09_26_drive_0001_sync", "000002": "x_sync"}
    path.write_text("2011_09_26 broken\n")
    with pytest.raises(DataError, match="line 1"):
        read_raw_drive_mapping(path)


def test_missing_folders_and_colour_masks_are_named(tmp_path) -> None:
    with pytest.raises(DataError, match=r"training/image_2 does not exist"):
        KITTI.find_pairs(tmp_path, "train")
    write_png(tmp_path / "training" / "semantic_rgb" / "000000_10.png", np.zeros((*SIZE, 3), np.uint8))
    (tmp_path / "training" / "image_2").mkdir()
    with pytest.raises(DataError, match="semantic_rgb"):
        KITTI.find_pairs(tmp_path, "train")


def test_testing_folder_is_not_a_split(tmp_path) -> None:
    write_kitti_tree(tmp_path)
    with pytest.raises(DataError, match="no labels"):
        KITTI.find_pairs(tmp_path, "test")


def test_unpaired_files_are_named(tmp_path) -> None:
    write_kitti_tree(tmp_path, scenes=range(3))
    (tmp_path / "training" / "semantic" / "000001_10.png").unlink()
    with pytest.raises(DataError, match=r"without a mask \(e\.g\. 000001_10\.png\)"):
        KITTI.find_pairs(tmp_path, "train")
