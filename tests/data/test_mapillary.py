"""Mapillary Vistas v1.2: official layout, palette and RGB labels, 65-class and Cityscapes-19 specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.data.mapillary import MAPILLARY, MAPILLARY_CS19, MAPILLARY_CS19_SPEC, MAPILLARY_SPEC
from drivseg.errors import DataError
from tests.data.fixtures_misc import paint, write_mapillary

# label ids of config_v1.2.json (position in its "labels" list)
BIRD, CURB, GUARD_RAIL, ROAD, PERSON, MARKING_GENERAL = 0, 2, 4, 13, 19, 24
SKY, SIGN_BACK, CAR, UNLABELED = 27, 49, 55, 65
# their official colours in config_v1.2.json
COLOURS = {ROAD: (128, 64, 128), CAR: (0, 0, 142), CURB: (196, 196, 196), UNLABELED: (0, 0, 0)}
# Cityscapes train ids (cityscapesScripts labels.py)
CS_ROAD, CS_SIDEWALK, CS_TRAFFIC_SIGN, CS_SKY, CS_PERSON, CS_CAR = 0, 1, 7, 10, 11, 13

# real Vistas image ids are 22 url-safe characters, underscores and dashes included
TRAIN_IDS = ("__CRyFzoDOXn6unQ6a3DnQ", "-Ab9_kLmN0pQrStUvWxYz1")
VAL_IDS = ("0aB_cD-eF1gH2iJ3kL4mN5",)


def label_map() -> np.ndarray:
    """A 32x64 label map with one band per id, written by hand."""
    ids = np.full((32, 64), UNLABELED, dtype=np.uint8)
    for column, raw in enumerate([BIRD, CURB, GUARD_RAIL, ROAD, PERSON, MARKING_GENERAL, SKY, SIGN_BACK, CAR]):
        ids[:, column * 6 : column * 6 + 6] = raw
    return ids


@pytest.fixture()
def vistas(tmp_path: Path) -> Path:
    write_mapillary(
        tmp_path,
        {
            "training": {image_id: label_map() for image_id in TRAIN_IDS},
            "validation": {image_id: label_map() for image_id in VAL_IDS},
        },
        test_ids=("zzTestImage000000000000",),
    )
    return tmp_path


def test_find_pairs_pairs_the_official_splits(vistas: Path) -> None:
    train = MAPILLARY.find_pairs(vistas, "train")
    val = MAPILLARY.find_pairs(vistas, "val")
    assert sorted(image.stem for image, _ in train) == sorted(TRAIN_IDS)
    assert all(image.parent == vistas / "training" / "images" for image, _ in train)
    assert all(mask == vistas / "training" / "labels" / f"{image.stem}.png" for image, mask in train)
    assert [image.stem for image, _ in val] == list(VAL_IDS)


def test_palette_labels_give_65_classes_and_unlabeled_is_ignored(vistas: Path) -> None:
    _, mask_path = MAPILLARY.find_pairs(vistas, "val")[0]
    train_ids = MAPILLARY_SPEC.encode(MAPILLARY.read_mask(mask_path))
    # v1.2: the 65 evaluated labels come first, so their train id is their label id
    expected = label_map().astype(np.int64)
    expected[expected == UNLABELED] = IGNORE_INDEX
    np.testing.assert_array_equal(train_ids, expected)
    assert MAPILLARY_SPEC.num_classes == 65
    assert MAPILLARY_SPEC.class_names[ROAD] == "Road" and MAPILLARY_SPEC.palette[CAR] == (0, 0, 142)


def test_cityscapes19_reduction(vistas: Path) -> None:
    _, mask_path = MAPILLARY_CS19.find_pairs(vistas, "train")[0]
    train_ids = MAPILLARY_CS19_SPEC.encode(MAPILLARY_CS19.read_mask(mask_path))
    expected_by_band = [
        IGNORE_INDEX,  # bird: no Cityscapes class
        CS_SIDEWALK,  # curb belongs to sidewalk in Cityscapes
        IGNORE_INDEX,  # guard rail is void in Cityscapes-19
        CS_ROAD,
        CS_PERSON,
        CS_ROAD,  # lane markings are road
        CS_SKY,
        CS_TRAFFIC_SIGN,  # back of a sign
        CS_CAR,
    ]
    for column, expected in enumerate(expected_by_band):
        assert (train_ids[:, column * 6 : column * 6 + 6] == expected).all(), f"band {column}"
    assert (train_ids[:, 54:] == IGNORE_INDEX).all()  # unlabeled
    assert MAPILLARY_CS19_SPEC.num_classes == 19


def test_rgb_colour_coded_labels_are_mapped_through_the_config_colours(tmp_path: Path) -> None:
    ids = np.full((32, 64), UNLABELED, dtype=np.uint8)
    ids[:16, :32], ids[:16, 32:], ids[16:, :32] = ROAD, CAR, CURB
    write_mapillary(tmp_path, {"training": {TRAIN_IDS[0]: paint(ids, COLOURS)}})
    _, mask_path = MAPILLARY.find_pairs(tmp_path, "train")[0]
    np.testing.assert_array_equal(MAPILLARY.read_mask(mask_path), ids)


def test_unknown_colour_in_rgb_label_is_named(tmp_path: Path) -> None:
    rgb = paint(np.full((32, 64), ROAD), COLOURS)
    rgb[0, 0] = (1, 2, 3)
    write_mapillary(tmp_path, {"training": {TRAIN_IDS[0]: rgb}})
    _, mask_path = MAPILLARY.find_pairs(tmp_path, "train")[0]
    with pytest.raises(DataError, match=r"\(1, 2, 3\)") as err:
        MAPILLARY.read_mask(mask_path)
    assert mask_path.name in str(err.value)


def test_out_of_spec_label_id_is_named(tmp_path: Path) -> None:
    ids = label_map()
    ids[5, 5] = 70  # v1.2 has ids 0..65 only
    write_mapillary(tmp_path, {"training": {TRAIN_IDS[0]: ids}})
    _, mask_path = MAPILLARY.find_pairs(tmp_path, "train")[0]
    with pytest.raises(ValueError, match="70"):
        MAPILLARY_SPEC.encode(MAPILLARY.read_mask(mask_path))


def test_v2_archive_keeps_v12_labels_in_a_subfolder(tmp_path: Path) -> None:
    write_mapillary(tmp_path, {"validation": {VAL_IDS[0]: label_map()}}, label_dir="v1.2/labels")
    (image, mask), = MAPILLARY.find_pairs(tmp_path, "val")
    assert mask == tmp_path / "validation" / "v1.2" / "labels" / f"{VAL_IDS[0]}.png"


def test_missing_label_folder_is_named(vistas: Path) -> None:
    for label in (vistas / "validation" / "labels").iterdir():
        label.unlink()
    (vistas / "validation" / "labels").rmdir()
    with pytest.raises(DataError, match="validation/labels"):
        MAPILLARY.find_pairs(vistas, "val")


def test_missing_split_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="training/images"):
        MAPILLARY.find_pairs(tmp_path, "train")


def test_image_without_label_is_named(vistas: Path) -> None:
    (vistas / "training" / "labels" / f"{TRAIN_IDS[1]}.png").unlink()
    with pytest.raises(DataError, match=f"{TRAIN_IDS[1]}.jpg"):
        MAPILLARY.find_pairs(vistas, "train")


def test_testing_split_has_no_labels_and_is_reported_absent(vistas: Path) -> None:
    with pytest.raises(DataError, match="no public labels"):
        MAPILLARY.find_pairs(vistas, "test")
    assert "test" in MAPILLARY.optional_splits and not MAPILLARY.has_split(vistas, "test")
    assert MAPILLARY.has_split(vistas, "val")


def test_every_image_is_its_own_sequence(vistas: Path) -> None:
    images = [image for image, _ in MAPILLARY.find_pairs(vistas, "train")]
    assert len({MAPILLARY.sequence_of(image) for image in images}) == len(images)
