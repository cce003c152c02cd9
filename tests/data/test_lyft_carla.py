"""Lyft-Udacity / CARLA: red-channel tags, 3-class reduction, ego hood, sequence-keeping split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivseg.data.lyft_carla import (
    LYFT_CARLA,
    LYFT_CARLA_SPEC,
    first_hood_row,
    lyft_carla_source,
    lyft_sequence_of,
)
from drivseg.errors import DataError
from tests.data.fixtures_misc import write_lyft

# CARLA 0.8 semantic tags (red channel)
NONE, BUILDINGS, PEDESTRIANS, ROAD_LINES, ROADS, SIDEWALKS, VEHICLES = 0, 1, 4, 6, 7, 8, 10
OTHER, ROAD, VEHICLE = 0, 1, 2  # the challenge's 3 classes
H, W = 60, 80  # a 600x800 frame at 1/10: the hood starts at row 496/10 -> 50


def tag_map() -> np.ndarray:
    """Hand-made tags: road with lane lines, a car at rows 40..49, the hood's Vehicles at 50..59."""
    tags = np.full((H, W), BUILDINGS, dtype=np.uint8)
    tags[20:, :] = ROADS
    tags[20:, 38:42] = ROAD_LINES
    tags[20:, :10] = SIDEWALKS
    tags[25:35, 60:70] = PEDESTRIANS
    tags[40:50, 20:30] = VEHICLES  # another car, just above the hood line
    tags[50:, 10:70] = VEHICLES  # the ego hood
    tags[:5, :] = NONE
    return tags


def expected_ids(hood_from_row: int) -> np.ndarray:
    """The challenge's reduction of ``tag_map`` with Vehicles pixels from ``hood_from_row`` on removed."""
    ids = np.full((H, W), OTHER, dtype=np.uint8)  # none, buildings, sidewalk
    ids[20:, 10:] = ROAD  # roads and lane lines
    ids[25:35, 60:70] = OTHER  # pedestrian
    ids[40:50, 20:30] = VEHICLE  # the other car
    ids[50:, 10:70] = OTHER  # the hood
    ids[hood_from_row:50, 20:30] = OTHER  # rows of the car below a higher hood line
    return ids


@pytest.fixture()
def train_folder(tmp_path: Path) -> Path:
    # the challenge's Train/ folder: plain frame numbers from three 100-frame blocks
    write_lyft(tmp_path / "Train", {name: tag_map() for name in ("0", "1", "150", "151", "230")})
    return tmp_path / "Train"


def test_find_pairs_pairs_camera_rgb_with_camera_seg(train_folder: Path) -> None:
    pairs = LYFT_CARLA.find_pairs(train_folder, "train") + LYFT_CARLA.find_pairs(train_folder, "val")
    assert sorted(image.stem for image, _ in pairs) == sorted(["0", "1", "150", "151", "230"])
    assert all(mask == train_folder / "CameraSeg" / image.name for image, mask in pairs)


def test_red_channel_is_reduced_to_other_road_vehicle_without_the_hood(train_folder: Path) -> None:
    mask_path = train_folder / "CameraSeg" / "0.png"
    ids = LYFT_CARLA_SPEC.encode(LYFT_CARLA.read_mask(mask_path))
    assert first_hood_row(H) == 50
    np.testing.assert_array_equal(ids, expected_ids(hood_from_row=50))
    assert (ids[40:50, 20:30] == VEHICLE).all()  # a car above the hood line stays a vehicle


def test_hood_row_is_configurable(train_folder: Path) -> None:
    source = lyft_carla_source(hood_row=450)  # row 45 at this size
    ids = LYFT_CARLA_SPEC.encode(source.read_mask(train_folder / "CameraSeg" / "0.png"))
    np.testing.assert_array_equal(ids, expected_ids(hood_from_row=45))


def test_hood_row_follows_the_challenge_at_full_size() -> None:
    assert first_hood_row(600) == 496
    assert first_hood_row(300) == 248
    assert first_hood_row(601) == 497  # ceil(496 * 601 / 600)


def test_split_is_deterministic_disjoint_and_keeps_blocks(train_folder: Path) -> None:
    train = {image.stem for image, _ in LYFT_CARLA.find_pairs(train_folder, "train")}
    val = {image.stem for image, _ in LYFT_CARLA.find_pairs(train_folder, "val")}
    assert train and val and not train & val
    assert train | val == {"0", "1", "150", "151", "230"}
    for block in ({"0", "1"}, {"150", "151"}, {"230"}):
        assert block <= train or block <= val
    assert {image.stem for image, _ in LYFT_CARLA.find_pairs(train_folder, "val")} == val


def test_sequence_ids_from_names() -> None:
    assert lyft_sequence_of(Path("CameraRGB/123.png")) == "/1"
    assert lyft_sequence_of(Path("dataA/CameraRGB/02_00_000.png")) == "02_00/0"
    assert lyft_sequence_of(Path("episode_0003_000250.png"), block_size=50) == "episode_0003/5"


def test_kaggle_copies_of_the_same_frame_stay_in_one_split(tmp_path: Path) -> None:
    names = ("02_00_000", "02_00_001", "03_01_000", "03_01_001")
    for copy in ("dataA", "dataB"):
        write_lyft(tmp_path / copy / copy, {name: tag_map() for name in names})
    train = LYFT_CARLA.find_pairs(tmp_path, "train")
    val = LYFT_CARLA.find_pairs(tmp_path, "val")
    assert len(train) + len(val) == 8
    train_names = {image.stem for image, _ in train}
    assert train_names and not train_names & {image.stem for image, _ in val}
    assert all(mask.parent == image.parent.parent / "CameraSeg" for image, mask in train + val)


def test_missing_camera_seg_is_named(tmp_path: Path) -> None:
    write_lyft(tmp_path, {"0": tag_map(), "1": tag_map()})
    for mask in (tmp_path / "CameraSeg").iterdir():
        mask.unlink()
    (tmp_path / "CameraSeg").rmdir()
    with pytest.raises(DataError, match="CameraSeg"):
        LYFT_CARLA.find_pairs(tmp_path, "train")


def test_no_camera_rgb_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="CameraRGB"):
        LYFT_CARLA.find_pairs(tmp_path, "train")


def test_frame_without_mask_is_named(train_folder: Path) -> None:
    (train_folder / "CameraSeg" / "151.png").unlink()
    with pytest.raises(DataError, match="151.png"):
        LYFT_CARLA.find_pairs(train_folder, "train")


def test_tag_outside_carla_08_is_named(tmp_path: Path) -> None:
    tags = tag_map()
    tags[0, 0] = 13  # CARLA 0.9 "Sky"; not in the 0.8 challenge data
    write_lyft(tmp_path, {"0": tags})
    with pytest.raises(ValueError, match="13"):
        LYFT_CARLA_SPEC.encode(LYFT_CARLA.read_mask(tmp_path / "CameraSeg" / "0.png"))
