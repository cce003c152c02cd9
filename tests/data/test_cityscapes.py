"""Cityscapes label table, Cityscapes-19 spec and the gtFine layout source."""

from __future__ import annotations

import numpy as np
import pytest

from drivseg.data.cityscapes import (
    CITYSCAPES,
    CITYSCAPES19_SPEC,
    CITYSCAPES19_TRAINID_SPEC,
    LABELS,
    cityscapes_sequence_of,
    train_ids_to_label_ids,
)
from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import DataError
from tests.data.fixtures_cityscapes import (
    CITYSCAPES_FRAMES,
    SIZE,
    stripes,
    write_cityscapes_frame,
    write_cityscapes_tree,
    write_png,
)

# Typed from cityscapesScripts helpers/labels.py: label id -> trainId of the 19 evaluated classes.
OFFICIAL_ID_TO_TRAIN = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
OFFICIAL_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip


def expected_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Reference decoding straight from the official table, pixel by pixel."""
    out = np.full(label_ids.shape, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in OFFICIAL_ID_TO_TRAIN.items():
        out[label_ids == label_id] = train_id
    return out


# ---------------------------------------------------------------- label table and specs


def test_spec_matches_official_table() -> None:
    assert CITYSCAPES19_SPEC.class_names == OFFICIAL_NAMES
    assert CITYSCAPES19_SPEC.raw_to_train == OFFICIAL_ID_TO_TRAIN
    # every other id that can appear in a labelIds PNG (0..33) is void
    assert CITYSCAPES19_SPEC.void_values == frozenset(range(34)) - set(OFFICIAL_ID_TO_TRAIN)
    assert CITYSCAPES19_SPEC.palette[0] == (128, 64, 128)  # road
    assert CITYSCAPES19_SPEC.palette[13] == (0, 0, 142)  # car
    assert [lb.id for lb in LABELS] == [*range(34), -1]


def test_hand_written_ids_decode_to_official_train_ids() -> None:
    # road -> 0, car -> 13, unlabeled -> 255, ego vehicle -> 255, parking (not evaluated) -> 255
    raw = np.array([[7, 26, 0, 1, 9, 33, 24]], dtype=np.uint8)
    assert CITYSCAPES19_SPEC.encode(raw).tolist() == [[0, 13, 255, 255, 255, 18, 11]]


def test_label_id_out_of_spec_is_named() -> None:
    with pytest.raises(ValueError, match=r"\[34, 200\]"):
        CITYSCAPES19_SPEC.encode(np.array([[7, 34, 200]], dtype=np.uint8))


def test_trainid_spec_is_identity_with_void() -> None:
    raw = np.array([[0, 18, 255, 13]], dtype=np.uint8)
    assert CITYSCAPES19_TRAINID_SPEC.encode(raw).tolist() == [[0, 18, 255, 13]]
    assert CITYSCAPES19_TRAINID_SPEC.class_names == OFFICIAL_NAMES
    with pytest.raises(ValueError, match="19"):
        CITYSCAPES19_TRAINID_SPEC.encode(np.array([[19]], dtype=np.uint8))


def test_inverse_map_gives_official_id_for_every_train_id() -> None:
    train_ids = np.arange(19, dtype=np.uint8)
    official = {train: label for label, train in OFFICIAL_ID_TO_TRAIN.items()}
    assert train_ids_to_label_ids(train_ids).tolist() == [official[t] for t in range(19)]
    assert train_ids_to_label_ids(np.array([IGNORE_INDEX])).tolist() == [0]  # void -> unlabeled


def test_round_trip_of_evaluated_label_map_is_identity() -> None:
    rng = np.random.default_rng(0)
    label_map = rng.choice(list(OFFICIAL_ID_TO_TRAIN), size=(8, 16)).astype(np.uint8)
    back = train_ids_to_label_ids(CITYSCAPES19_SPEC.encode(label_map))
    np.testing.assert_array_equal(back, label_map)


def test_inverse_map_rejects_non_train_ids() -> None:
    with pytest.raises(ValueError, match=r"\[19, 254\]"):
        train_ids_to_label_ids(np.array([0, 19, 254], dtype=np.uint8))
    with pytest.raises(ValueError, match="300"):
        train_ids_to_label_ids(np.array([300]))


# ---------------------------------------------------------------- layout


def test_find_pairs_pairs_every_split(tmp_path) -> None:
    write_cityscapes_tree(tmp_path)
    for split, frames in CITYSCAPES_FRAMES.items():
        pairs = CITYSCAPES.find_pairs(tmp_path, split)
        assert len(pairs) == len(frames)
        for image, mask in pairs:
            frame = image.name.removesuffix("_leftImg8bit.png")
            assert mask.name == f"{frame}_gtFine_labelIds.png"
            assert image.parent.name == mask.parent.name  # same city folder
    assert CITYSCAPES.has_split(tmp_path, "test")
    assert "test" not in CITYSCAPES.splits  # official test masks are all void: no test stage


def test_read_mask_and_encode_give_official_train_ids(tmp_path) -> None:
    ids = stripes([7, 8, 26, 24, 0, 9, 33])
    write_cityscapes_frame(tmp_path, "train", "aachen", 0, 19, label_ids=ids)
    (_, mask), = CITYSCAPES.find_pairs(tmp_path, "train")
    raw = CITYSCAPES.read_mask(mask)
    assert raw.shape == SIZE
    got = CITYSCAPES.label_spec.encode(raw)
    np.testing.assert_array_equal(got, expected_train_ids(ids))
    assert {0, 1, 13, 11, 18, IGNORE_INDEX} == set(np.unique(got).tolist())


def test_official_test_masks_are_all_void(tmp_path) -> None:
    write_cityscapes_tree(tmp_path)
    for _, mask in CITYSCAPES.find_pairs(tmp_path, "test"):
        assert (CITYSCAPES.label_spec.encode(CITYSCAPES.read_mask(mask)) == IGNORE_INDEX).all()


def test_train_id_masks_decode_like_label_id_masks(tmp_path) -> None:
    ids = stripes([7, 8, 26, 24, 0, 9, 33])
    write_cityscapes_frame(tmp_path, "val", "lindau", 0, 19, train_ids=expected_train_ids(ids))
    (_, mask), = CITYSCAPES.find_pairs(tmp_path, "val")
    assert mask.name.endswith("_gtFine_labelTrainIds.png")
    got = CITYSCAPES.label_spec.encode(CITYSCAPES.read_mask(mask))
    np.testing.assert_array_equal(got, expected_train_ids(ids))


def test_label_ids_win_over_train_ids(tmp_path) -> None:
    ids = stripes([26, 7])
    # a stale train id file that disagrees: must be ignored, not mixed in
    write_cityscapes_frame(tmp_path, "train", "ulm", 0, 19, label_ids=ids, train_ids=stripes([5, 5]))
    (_, mask), = CITYSCAPES.find_pairs(tmp_path, "train")
    assert mask.name.endswith("_gtFine_labelIds.png")
    np.testing.assert_array_equal(CITYSCAPES.label_spec.encode(CITYSCAPES.read_mask(mask)), stripes([13, 0]))


def test_bad_train_id_mask_names_file(tmp_path) -> None:
    write_cityscapes_frame(tmp_path, "train", "ulm", 0, 19, train_ids=stripes([0, 19]))
    (_, mask), = CITYSCAPES.find_pairs(tmp_path, "train")
    with pytest.raises(DataError, match=r"ulm_000000_000019_gtFine_labelTrainIds\.png.*\[19\]"):
        CITYSCAPES.read_mask(mask)


def test_missing_folders_are_named(tmp_path) -> None:
    with pytest.raises(DataError, match=r"leftImg8bit/train.*gtFine/\{split\}"):
        CITYSCAPES.find_pairs(tmp_path, "train")
    (tmp_path / "leftImg8bit" / "val").mkdir(parents=True)
    with pytest.raises(DataError, match=r"gtFine/val does not exist"):
        CITYSCAPES.find_pairs(tmp_path, "val")


def test_pointing_inside_the_tree_is_explained(tmp_path) -> None:
    write_cityscapes_tree(tmp_path)
    with pytest.raises(DataError, match="parent folder"):
        CITYSCAPES.find_pairs(tmp_path / "gtFine", "train")


def test_gtcoarse_is_refused_by_name(tmp_path) -> None:
    write_cityscapes_frame(tmp_path, "train", "aachen", 0, 19)  # image only, no gtFine/
    write_png(tmp_path / "gtCoarse" / "train" / "aachen" / "aachen_000000_000019_gtCoarse_labelIds.png",
              stripes([7]))
    with pytest.raises(DataError, match="gtCoarse"):
        CITYSCAPES.find_pairs(tmp_path, "train")


def test_colour_only_masks_are_refused_by_name(tmp_path) -> None:
    write_cityscapes_frame(tmp_path, "train", "aachen", 0, 19, color=True)
    with pytest.raises(DataError, match=r"colour masks \(e\.g\. aachen_000000_000019_gtFine_color\.png\)"):
        CITYSCAPES.find_pairs(tmp_path, "train")


def test_rgb_label_file_is_refused(tmp_path) -> None:
    write_cityscapes_frame(tmp_path, "train", "aachen", 0, 19, label_ids=stripes([7]))
    (_, mask), = CITYSCAPES.find_pairs(tmp_path, "train")
    write_png(mask, np.zeros((*SIZE, 3), np.uint8))  # someone saved colours under the labelIds name
    with pytest.raises(DataError, match="colour"):
        CITYSCAPES.read_mask(mask)


def test_unpaired_files_are_named(tmp_path) -> None:
    write_cityscapes_tree(tmp_path)
    (tmp_path / "gtFine" / "train" / "bochum" / "bochum_000000_000313_gtFine_labelIds.png").unlink()
    with pytest.raises(DataError, match=r"1 images without a mask \(e\.g\. bochum_000000_000313_leftImg8bit"):
        CITYSCAPES.find_pairs(tmp_path, "train")
    write_cityscapes_tree(tmp_path)
    (tmp_path / "leftImg8bit" / "val" / "lindau" / "lindau_000000_000019_leftImg8bit.png").unlink()
    with pytest.raises(DataError, match=r"masks without an image \(e\.g\. lindau_000000_000019_gtFine"):
        CITYSCAPES.find_pairs(tmp_path, "val")


def test_sequence_is_city_and_sequence_number(tmp_path) -> None:
    write_cityscapes_tree(tmp_path)
    pairs = CITYSCAPES.find_pairs(tmp_path, "train")
    assert [cityscapes_sequence_of(img) for img, _ in pairs] == [
        "aachen_000000", "aachen_000001", "bochum_000000"
    ]
    assert all(cityscapes_sequence_of(img) == cityscapes_sequence_of(m) for img, m in pairs)
    with pytest.raises(DataError, match="frame_12.png"):
        cityscapes_sequence_of(tmp_path / "frame_12.png")
