"""--taxonomy cityscapes19: Cityscapes, KITTI, BDD100K and Mapillary share one class list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drivseg.data import get_source
from drivseg.data.bdd100k import BDD100K
from drivseg.data.cityscapes import CITYSCAPES
from drivseg.data.dataset import SegmentationDataset
from drivseg.data.kitti import KITTI, kitti_split_of
from drivseg.data.mapillary import MAPILLARY, MAPILLARY_CS19
from drivseg.data.source import DatasetSource
from drivseg.data.taxonomy import apply_taxonomy
from drivseg.errors import ConfigError
from tests.data.fixtures_cityscapes import (
    stripes,
    write_bdd100k_frame,
    write_cityscapes_frame,
    write_kitti_frame,
)
from tests.data.fixtures_misc import write_mapillary

# cityscapesScripts helpers/labels.py, the 19 evaluated classes in train id order
CITYSCAPES_19 = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip

# one scene in each dataset's own encoding, band by band:
# road, sidewalk, building, traffic sign, vegetation, sky, person, car, bicycle, void
CITYSCAPES_LABEL_IDS = [7, 8, 11, 20, 21, 23, 24, 26, 33, 0]  # labels.py ids
MAPILLARY_LABEL_IDS = [13, 15, 17, 50, 30, 27, 19, 55, 52, 65]  # config_v1.2.json positions
TRAIN_IDS = [0, 1, 2, 7, 8, 10, 11, 13, 18, 255]  # Cityscapes train ids (BDD100K masks hold these)

FOUR = {"cityscapes": CITYSCAPES, "kitti": KITTI, "bdd100k": BDD100K, "mapillary": MAPILLARY}


def test_the_four_datasets_share_class_list_and_palette() -> None:
    specs = {name: apply_taxonomy(source, "cityscapes19").label_spec for name, source in FOUR.items()}
    for name, spec in specs.items():
        assert spec.class_names == CITYSCAPES_19, name
        assert spec.palette == specs["cityscapes"].palette, name
    palette = dict(zip(CITYSCAPES_19, specs["mapillary"].palette))
    assert (palette["road"], palette["sky"], palette["car"]) == ((128, 64, 128), (70, 130, 180), (0, 0, 142))


def load_masks(source: DatasetSource, root: Path, split: str) -> list[np.ndarray]:
    dataset = SegmentationDataset(source.find_pairs(root, split), apply_taxonomy(source, "cityscapes19"))
    return [dataset.load(i)[1] for i in range(len(dataset))]


def test_equivalent_masks_of_the_four_datasets_give_the_same_train_ids(tmp_path: Path) -> None:
    cs_ids, vistas_ids = stripes(CITYSCAPES_LABEL_IDS), stripes(MAPILLARY_LABEL_IDS)
    write_cityscapes_frame(tmp_path / "cs", "val", "frankfurt", 0, 294, label_ids=cs_ids)
    val_scene = next(s for s in range(100) if kitti_split_of(f"{s:06d}") == "val")
    write_kitti_frame(tmp_path / "kitti", val_scene, label_ids=cs_ids)
    write_bdd100k_frame(tmp_path / "bdd", "val", "7d2f7975-e0c1c5a7", train_ids=stripes(TRAIN_IDS))
    write_mapillary(tmp_path / "vistas", {"validation": {"0aB_cD-eF1gH2iJ3kL4mN5": vistas_ids}})

    masks = {
        "cityscapes": load_masks(CITYSCAPES, tmp_path / "cs", "val"),
        "kitti": load_masks(KITTI, tmp_path / "kitti", "val"),
        "bdd100k": load_masks(BDD100K, tmp_path / "bdd", "val"),
        "mapillary": load_masks(MAPILLARY, tmp_path / "vistas", "val"),
    }
    expected = stripes(TRAIN_IDS)
    for name, found in masks.items():
        assert len(found) == 1, name
        np.testing.assert_array_equal(found[0], expected, err_msg=name)


def test_native_mapillary_keeps_its_65_classes(tmp_path: Path) -> None:
    write_mapillary(tmp_path, {"validation": {"0aB_cD-eF1gH2iJ3kL4mN5": stripes(MAPILLARY_LABEL_IDS)}})
    native = apply_taxonomy(MAPILLARY, "native")
    assert native is MAPILLARY and native.label_spec.num_classes == 65
    _, mask = SegmentationDataset(native.find_pairs(tmp_path, "val"), native).load(0)
    assert mask[0, 0] == 13  # Vistas road is its 14th class, not Cityscapes road (0)


def test_mapillary_becomes_the_registered_cs19_source() -> None:
    assert apply_taxonomy(MAPILLARY, "cityscapes19") == MAPILLARY_CS19
    assert apply_taxonomy(MAPILLARY_CS19, "cityscapes19") is MAPILLARY_CS19
    assert apply_taxonomy(get_source("kitti"), "cityscapes19") is KITTI


@pytest.mark.parametrize("name", ["camvid", "synthetic", "lyft_carla"])
def test_datasets_without_a_mapping_are_refused_naming_those_with_one(name: str) -> None:
    supported = "bdd100k, cityscapes, kitti, mapillary, mapillary_cs19"
    with pytest.raises(ConfigError, match=f"--data {name} has its own .*datasets that have one: {supported}"):
        apply_taxonomy(get_source(name), "cityscapes19")
    assert apply_taxonomy(get_source(name), "native") is get_source(name)


def test_unknown_taxonomy_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="'coco' is unknown; valid: native, cityscapes19"):
        apply_taxonomy(CITYSCAPES, "coco")


def test_a_cityscapes_model_is_scored_on_mapillary_under_cityscapes19(tmp_path: Path, capsys) -> None:
    import importlib

    import train
    from drivseg.entry import run_entry_point
    from tests.data.fixtures_cityscapes import write_cityscapes_tree

    eval_script = importlib.import_module("eval")
    cs = write_cityscapes_tree(tmp_path / "cs")
    run = tmp_path / "run"
    argv = ["--data", "cityscapes", "--data-root", str(cs), "--arch", "tiny_fcn", "--crop-size", "32x48",
            "--batch-size", "2", "--num-workers", "0", "--epochs", "1", "--logger", "none",
            "--taxonomy", "cityscapes19", "--output-dir", str(run)]  # fmt: skip
    assert train.main(argv) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    vistas = tmp_path / "vistas"
    write_mapillary(vistas, {"validation": {"0aB_cD-eF1gH2iJ3kL4mN5": stripes(MAPILLARY_LABEL_IDS)}})

    base = ["--ckpt", str(ckpt), "--data", "mapillary", "--data-root", str(vistas), "--num-workers", "0", "--no-progress"]
    # native Mapillary has 65 classes: the class check refuses it in one line
    assert run_entry_point(lambda: eval_script.main([*base, "--taxonomy", "native"])) == 2
    assert "65 classes" in capsys.readouterr().err
    # the checkpoint remembers it was trained under cityscapes19: that is eval.py's default
    out = tmp_path / "cross.json"
    assert run_entry_point(lambda: eval_script.main([*base, "--output", str(out)])) == 0
    result = json.loads(out.read_text())
    assert result["class_names"] == list(CITYSCAPES_19) and 0.0 <= result["mIoU"] <= 1.0
    # every Mapillary band but "unlabeled" maps to a Cityscapes class and is scored
    assert result["labelled_pixels"] == int((stripes(TRAIN_IDS) != 255).sum())
