"""BDD100K semantic segmentation source: both official layouts and train id masks."""

from __future__ import annotations

import numpy as np
import pytest

from drivseg.data.bdd100k import BDD100K, bdd100k_sequence_of
from drivseg.data.cityscapes import CITYSCAPES19_SPEC
from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import DataError
from tests.data.fixtures_cityscapes import (
    BDD100K_NAMES,
    SIZE,
    stripes,
    write_bdd100k_frame,
    write_bdd100k_tree,
    write_png,
)


def test_find_pairs_pairs_train_and_val(tmp_path) -> None:
    write_bdd100k_tree(tmp_path)
    for split, names in BDD100K_NAMES.items():
        pairs = BDD100K.find_pairs(tmp_path, split)
        expected = [(f"{n}.jpg", f"{n}.png") for n in sorted(names)]
        assert [(img.name, mask.name) for img, mask in pairs] == expected


def test_masks_are_train_ids_with_255_ignore(tmp_path) -> None:
    # road 0, sidewalk 1, car 13, person 11, unknown 255, sky 10, bicycle 18 (bdd100k format.rst)
    ids = stripes([0, 1, 13, 11, 255, 10, 18])
    write_bdd100k_frame(tmp_path, "train", "0a0a0b1a-7c39d841", ids)
    (_, mask), = BDD100K.find_pairs(tmp_path, "train")
    raw = BDD100K.read_mask(mask)
    assert raw.shape == SIZE
    np.testing.assert_array_equal(BDD100K.label_spec.encode(raw), ids)
    assert BDD100K.label_spec.class_names == CITYSCAPES19_SPEC.class_names
    assert BDD100K.label_spec.class_names[13] == "car"
    assert IGNORE_INDEX in BDD100K.label_spec.void_values


def test_out_of_spec_value_is_named(tmp_path) -> None:
    write_bdd100k_frame(tmp_path, "val", "7d2f7975-e0c1c5a7", stripes([0, 19]))
    (_, mask), = BDD100K.find_pairs(tmp_path, "val")
    with pytest.raises(ValueError, match=r"\[19\]"):
        BDD100K.label_spec.encode(BDD100K.read_mask(mask))


def test_legacy_layout_is_read(tmp_path) -> None:
    write_bdd100k_tree(tmp_path, legacy=True)
    pairs = BDD100K.find_pairs(tmp_path, "val")
    assert [(img.name, mask.name) for img, mask in pairs] == [
        (f"{n}.jpg", f"{n}_train_id.png") for n in sorted(BDD100K_NAMES["val"])
    ]


def test_current_layout_wins_when_both_exist(tmp_path) -> None:
    write_bdd100k_tree(tmp_path, legacy=True)
    write_bdd100k_tree(tmp_path)
    for _, mask in BDD100K.find_pairs(tmp_path, "train"):
        assert mask.parent == tmp_path / "labels" / "sem_seg" / "masks" / "train"


def test_test_split_has_no_masks(tmp_path) -> None:
    write_bdd100k_tree(tmp_path)
    with pytest.raises(DataError, match="'test' has no masks"):
        BDD100K.find_pairs(tmp_path, "test")


def test_missing_folders_and_colour_masks_are_named(tmp_path) -> None:
    with pytest.raises(DataError, match=r"images/10k/train does not exist"):
        BDD100K.find_pairs(tmp_path, "train")
    (tmp_path / "images" / "10k" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"labels/sem_seg/masks/train does not exist"):
        BDD100K.find_pairs(tmp_path, "train")
    colour = tmp_path / "labels" / "sem_seg" / "colormaps" / "train" / "0a0a0b1a-7c39d841.png"
    write_png(colour, np.zeros((*SIZE, 3), np.uint8))
    with pytest.raises(DataError, match="colour masks"):
        BDD100K.find_pairs(tmp_path, "train")


def test_parent_of_bdd100k_folder_is_explained(tmp_path) -> None:
    write_bdd100k_tree(tmp_path / "bdd100k")
    with pytest.raises(DataError, match="point --data-root at .*bdd100k"):
        BDD100K.find_pairs(tmp_path, "train")


def test_unpaired_files_are_named(tmp_path) -> None:
    write_bdd100k_tree(tmp_path)
    (tmp_path / "images" / "10k" / "val" / "7d2f7975-e0c1c5a7.jpg").unlink()
    with pytest.raises(DataError, match=r"masks without an image \(e\.g\. 7d2f7975-e0c1c5a7\.png\)"):
        BDD100K.find_pairs(tmp_path, "val")


def test_sequence_is_first_block_of_clip_name(tmp_path) -> None:
    image, mask = write_bdd100k_frame(tmp_path, "val", "b1c81faa-c80764c5")
    assert bdd100k_sequence_of(image) == bdd100k_sequence_of(mask) == "b1c81faa"
    legacy_image, legacy_mask = write_bdd100k_frame(tmp_path, "train", "b1c81faa-3df17267", legacy=True)
    assert bdd100k_sequence_of(legacy_mask) == bdd100k_sequence_of(legacy_image) == "b1c81faa"
