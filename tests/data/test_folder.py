"""The folder dataset: classes.yaml validation, index and colour masks, split folders, val_fraction."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from drivseg.data.folder import ColourMaskReader, folder_source, split_by_sequence
from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError, DataError
from tests.data.fixtures_misc import paint, write_folder_dataset

VALUES_YAML = "classes: [road, car, background]\nvalues: [1, 2, 0]\nvoid: [255]\n"
ROAD_RGB, CAR_RGB, BACKGROUND_RGB, VOID_RGB = (128, 64, 128), (0, 0, 142), (70, 70, 70), (255, 255, 255)
COLOURS_YAML = (
    "classes: [road, car, background]\n"
    "colors: [[128, 64, 128], [0, 0, 142], [70, 70, 70]]\n"
    "void_colors: [[255, 255, 255]]\n"
    "val_fraction: 0.3\n"
)


def index_mask() -> np.ndarray:
    """Mask values: 1 road (top-left), 2 car (top-right), 0 background (bottom), 255 void (corner)."""
    mask = np.zeros((32, 64), dtype=np.uint8)
    mask[:16, :32], mask[:16, 32:] = 1, 2
    mask[-4:, -4:] = 255
    return mask


def colour_mask() -> np.ndarray:
    """The same scene colour-coded: 1 road, 2 car, 0 background, 3 void."""
    ids = np.zeros((32, 64), dtype=np.uint8)
    ids[:16, :32], ids[:16, 32:], ids[-4:, -4:] = 1, 2, 3
    return paint(ids, {0: BACKGROUND_RGB, 1: ROAD_RGB, 2: CAR_RGB, 3: VOID_RGB})


# train ids the yaml promises: road 0, car 1, background 2, void 255
EXPECTED = np.full((32, 64), 2, dtype=np.uint8)
EXPECTED[:16, :32], EXPECTED[:16, 32:], EXPECTED[-4:, -4:] = 0, 1, IGNORE_INDEX


@pytest.fixture()
def split_folders(tmp_path: Path) -> Path:
    write_folder_dataset(tmp_path, VALUES_YAML, {"a_000": index_mask(), "a_001": index_mask()}, split="train")
    write_folder_dataset(tmp_path, VALUES_YAML, {"b_000": index_mask()}, split="val")
    return tmp_path


@pytest.fixture()
def colour_pool(tmp_path: Path) -> Path:
    frames = {f"{seq}_{i:03d}": colour_mask() for seq in ("seqA", "seqB", "seqC", "seqD") for i in range(2)}
    write_folder_dataset(tmp_path, COLOURS_YAML, frames)
    return tmp_path


def test_split_folders_are_paired(split_folders: Path) -> None:
    source = folder_source(split_folders)
    train, val = source.find_pairs(split_folders, "train"), source.find_pairs(split_folders, "val")
    assert [image.name for image, _ in train] == ["a_000.jpg", "a_001.jpg"]
    assert [(image.name, mask.name) for image, mask in val] == [("b_000.jpg", "b_000.png")]
    assert not source.has_split(split_folders, "test")


def test_index_values_map_to_class_order_and_void(split_folders: Path) -> None:
    source = folder_source(split_folders)
    assert source.label_spec.class_names == ("road", "car", "background")
    _, mask_path = source.find_pairs(split_folders, "val")[0]
    np.testing.assert_array_equal(source.label_spec.encode(source.read_mask(mask_path)), EXPECTED)


def test_colours_map_to_class_order_and_void_colours(colour_pool: Path) -> None:
    source = folder_source(colour_pool)
    assert source.label_spec.palette == (ROAD_RGB, CAR_RGB, BACKGROUND_RGB)
    _, mask_path = source.find_pairs(colour_pool, "train")[0]
    np.testing.assert_array_equal(source.label_spec.encode(source.read_mask(mask_path)), EXPECTED)


def test_val_fraction_split_keeps_sequences_and_is_deterministic(colour_pool: Path) -> None:
    source = folder_source(colour_pool)
    train = [image.stem for image, _ in source.find_pairs(colour_pool, "train")]
    val = [image.stem for image, _ in source.find_pairs(colour_pool, "val")]
    assert sorted(train + val) == sorted(f"{s}_{i:03d}" for s in ("seqA", "seqB", "seqC", "seqD") for i in range(2))
    train_seqs, val_seqs = {n.split("_")[0] for n in train}, {n.split("_")[0] for n in val}
    assert train_seqs and val_seqs and not train_seqs & val_seqs
    assert len(val) >= 0.3 * 8  # val_fraction from the yaml
    assert [image.stem for image, _ in folder_source(colour_pool).find_pairs(colour_pool, "val")] == val


def test_one_sequence_cannot_be_split(tmp_path: Path) -> None:
    pairs = [(tmp_path / f"run_{i}.jpg", tmp_path / f"run_{i}.png") for i in range(3)]
    with pytest.raises(DataError, match="one sequence"):
        split_by_sequence(pairs, "val", 0.2, lambda p: p.name.split("_")[0], "here")


def test_value_outside_the_yaml_is_named(tmp_path: Path) -> None:
    mask = index_mask()
    mask[0, 0] = 7
    write_folder_dataset(tmp_path, VALUES_YAML, {"a_000": mask}, split="train")
    source = folder_source(tmp_path)
    _, mask_path = source.find_pairs(tmp_path, "train")[0]
    with pytest.raises(ValueError, match=r"\[7\]"):
        source.label_spec.encode(source.read_mask(mask_path))


def test_colour_outside_the_yaml_is_named(tmp_path: Path) -> None:
    rgb = colour_mask()
    rgb[3, 3] = (9, 9, 9)
    write_folder_dataset(tmp_path, COLOURS_YAML, {"x_000": rgb, "y_000": colour_mask()})
    source = folder_source(tmp_path)
    with pytest.raises(DataError, match=r"x_000\.png.*\(9, 9, 9\)"):
        source.read_mask(tmp_path / "masks" / "x_000.png")


def test_missing_mask_folder_is_named(tmp_path: Path) -> None:
    write_folder_dataset(tmp_path, VALUES_YAML, {"a_000": index_mask()})
    for mask in (tmp_path / "masks").iterdir():
        mask.unlink()
    (tmp_path / "masks").rmdir()
    with pytest.raises(DataError, match="masks"):
        folder_source(tmp_path).find_pairs(tmp_path, "train")


def test_image_without_mask_is_named(split_folders: Path) -> None:
    (split_folders / "masks" / "train" / "a_001.png").unlink()
    with pytest.raises(DataError, match="a_001.jpg"):
        folder_source(split_folders).find_pairs(split_folders, "train")


def test_missing_yaml_says_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="classes.yaml.*\n.*classes:"):
        folder_source(tmp_path)


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("classes: [a, b]\nvalues: [0, 1]\ncolors: [[0, 0, 0], [1, 1, 1]]\n", "exactly one of 'values'"),
        ("classes: [a, b]\n", "exactly one of 'values'"),
        ("classes: [a, b]\nvalues: [0]\n", "2 classes but 1 values"),
        ("classes: [a, b]\nvalues: [0, 0]\n", "'values' lists a value twice"),
        ("classes: [a, b]\ncolors: [[0, 0, 0], [300, 0, 0]]\n", r"'colors' has \[300, 0, 0\]"),
        ("classes: [a, b]\nvalues: [0, 1]\nvoid: [1]\n", r"values \[1\] are both"),
        ("classes: [a, b]\nvalues: [0, 1]\nnames: [x]\n", r"unknown key\(s\) \['names'\]"),
        ("classes: [a, b]\nvalues: [0, 1]\nval_fraction: 1.5\n", "'val_fraction' is 1.5"),
        ("classes: [a, b]\nvalues: [0, 1]\nvoid_colors: [[0, 0, 0]]\n", "'void_colors' goes with 'colors'"),
        ("classes: road\nvalues: [0]\n", "'classes' is 'road'"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_bad_yaml_names_the_file_and_key(tmp_path: Path, yaml_text: str, named: str) -> None:
    (tmp_path / "classes.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError, match=named) as err:
        folder_source(tmp_path)
    assert str(tmp_path / "classes.yaml") in str(err.value)


def test_colour_reader_survives_pickling_for_workers() -> None:
    reader = ColourMaskReader([(10, 20, 30), (40, 50, 60)], "test colours")
    rgb = np.array([[[40, 50, 60], [10, 20, 30]]], dtype=np.uint8)
    np.testing.assert_array_equal(reader.decode(rgb, Path("m.png")), [[1, 0]])
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._table is None  # the 16 MB table is rebuilt, not shipped
    np.testing.assert_array_equal(clone.decode(rgb, Path("m.png")), [[1, 0]])
