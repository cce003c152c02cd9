"""Procedural driving scenes: exact labels, determinism, sequences, and the on-disk dataset."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from drivseg.data import synthetic
from drivseg.data.camvid import CAMVID_CLASSES, CAMVID_SPEC, find_segnet_pairs
from drivseg.data.source import read_index_mask, read_rgb_image, sequence_from_prefix
from drivseg.data.synthetic import (
    SYNTHETIC,
    default_synthetic_root,
    render_scene,
    sample_style,
    write_synthetic_dataset,
)
from drivseg.errors import ConfigError, DataError

H, W = 144, 192
SMALL = (48, 64)
TINY_COUNTS = {"train": 5, "val": 3, "test": 2}
NAME = re.compile(r"synth\d{2}_\d{6}\.png")
ROAD, PAVEMENT, SKY = (CAMVID_CLASSES.index(name) for name in ("Road", "Pavement", "Sky"))


def scene(seed: int, height: int = H, width: int = W) -> tuple[np.ndarray, np.ndarray]:
    return render_scene(np.random.default_rng(seed), height, width)


def write_tiny(root: Path, seed: int = 0) -> Path:
    return write_synthetic_dataset(root, seed=seed, size=SMALL, counts=TINY_COUNTS, frames_per_sequence=2)


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# one scene


def test_scene_is_an_rgb_image_with_a_camvid_mask_of_the_same_size() -> None:
    image, mask = scene(0, 60, 80)
    assert image.shape == (60, 80, 3) and image.dtype == np.uint8
    assert mask.shape == (60, 80) and mask.dtype == np.uint8
    assert mask.max() < len(CAMVID_CLASSES)  # 0..10; no void, nothing ignored
    assert image.std() > 20  # a picture, not a flat fill


def test_same_seed_gives_the_same_scene_and_another_seed_a_different_one() -> None:
    a_img, a_mask = scene(3)
    b_img, b_mask = scene(3)
    c_img, c_mask = scene(4)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    assert (a_mask != c_mask).mean() > 0.05
    assert np.abs(a_img.astype(int) - c_img).mean() > 10


def test_every_class_appears_in_most_scenes() -> None:
    present = np.zeros(len(CAMVID_CLASSES), int)
    for seed in range(8):
        _, mask = scene(seed)
        present += np.bincount(mask.ravel(), minlength=len(CAMVID_CLASSES)) > 0
    counts = dict(zip(CAMVID_CLASSES, present.tolist()))
    assert all(n >= 5 for n in counts.values()), f"scenes (of 8) showing each class: {counts}"


def test_sky_lies_above_the_horizon_and_the_road_below_it() -> None:
    for seed in range(6):
        _, mask = scene(seed)
        sky_rows = np.nonzero((mask == SKY).any(axis=1))[0]
        road_rows = np.nonzero((mask == ROAD).any(axis=1))[0]
        assert sky_rows.size and road_rows.size
        assert sky_rows.max() < road_rows.min()
        assert road_rows.max() == H - 1  # the road runs to the bottom of the frame, under the camera
        assert (mask[-1] == ROAD).mean() > 0.3


def test_objects_are_drawn_exactly_where_the_mask_labels_them() -> None:
    """Render a frame with and without its objects, same noise and no blur: a pixel's colour
    changed exactly where its label changed (ground excepted: objects cast shadows on it)."""
    for seed in range(4):
        # garden trees go too, so no object hides background of its own class unnoticed
        style = dataclasses.replace(sample_style(np.random.default_rng(seed)), garden_trees=(), blur=0.0)
        bare_style = dataclasses.replace(style, objects=())
        img, mask = render_scene(np.random.default_rng(100 + seed), H, W, style)
        bare_img, bare_mask = render_scene(np.random.default_rng(100 + seed), H, W, bare_style)
        changed = mask != bare_mask
        assert changed.mean() > 0.05  # cars, people, poles... cover part of the frame
        colour_changed = (img != bare_img).any(axis=2)
        assert colour_changed[changed].mean() > 0.99
        elsewhere = ~changed & (bare_mask != ROAD) & (bare_mask != PAVEMENT)
        assert elsewhere.mean() > 0.1  # sky, buildings, fences: enough pixels to compare
        assert not colour_changed[elsewhere].any()


def test_frames_of_a_sequence_share_their_street_and_differ_from_other_sequences() -> None:
    styles = [sample_style(np.random.default_rng(s), max_frames=10) for s in (1, 2)]
    frames = [[render_scene(np.random.default_rng(f), H, W, style, f) for f in (0, 1)] for style in styles]
    (a0, m0), (a1, m1) = frames[0]
    (b0, n0), _ = frames[1]
    assert (m0 != m1).any()  # the camera moved and traffic with it
    same_sequence = (m0 == m1).mean()
    other_sequence = (m0 == n0).mean()
    assert same_sequence > 0.8 and same_sequence > other_sequence + 0.1
    assert np.abs(a0.astype(int) - a1).mean() < np.abs(a0.astype(int) - b0).mean()


def test_a_standing_object_grows_as_the_camera_drives_towards_it() -> None:
    style = sample_style(np.random.default_rng(5))
    later = int(np.ceil(12.0 / style.camera_speed))  # the frame where the camera has driven 12 m
    standing = [o for o in style.objects if o.position(0) == o.position(later) and 25 < o.position(0)[1] < 40
                and abs(o.position(0)[0]) < 7]  # fmt: skip
    assert standing

    def height(obj: object, frame: int) -> int:
        """Rows covered by the object's label."""
        alone = dataclasses.replace(style, objects=(obj,), garden_trees=())
        empty = dataclasses.replace(alone, objects=())
        masks = [render_scene(np.random.default_rng(0), H, W, s, frame)[1] for s in (alone, empty)]
        rows = np.nonzero((masks[0] != masks[1]).any(axis=1))[0]
        return int(rows.max() - rows.min() + 1) if rows.size else 0

    for obj in standing[:3]:
        far, near = height(obj, 0), height(obj, later)
        # 25..40 m away, then 13..28 m: at least 1.4x taller on screen (less a pixel of rounding)
        assert far > 3 and near > 1.3 * far, (obj, far, near)


def test_too_small_a_scene_is_refused() -> None:
    with pytest.raises(ConfigError, match="too small"):
        scene(0, 16, 16)


# ---------------------------------------------------------------------------------------------
# the dataset on disk


def test_written_layout_pairs_up_and_splits_hold_disjoint_sequences(tmp_path) -> None:
    root = write_tiny(tmp_path / "synth")
    sequences = {}
    for split, count in TINY_COUNTS.items():
        pairs = find_segnet_pairs(root, split)
        assert len(pairs) == count
        for image_path, mask_path in pairs:
            assert NAME.fullmatch(image_path.name) and image_path.name == mask_path.name
            image, mask = read_rgb_image(image_path), read_index_mask(mask_path)
            assert image.shape == (*SMALL, 3) and mask.shape == SMALL
            CAMVID_SPEC.encode(mask)  # raises on values outside the CamVid spec
            assert mask.max() <= 10
        seqs = [sequence_from_prefix(p) for p, _ in pairs]
        assert max(seqs.count(s) for s in seqs) <= 2  # frames_per_sequence
        sequences[split] = set(seqs)
    assert len(sequences["train"]) == 3 and len(sequences["val"]) == 2 and len(sequences["test"]) == 1
    assert not sequences["train"] & sequences["val"]
    assert not (sequences["train"] | sequences["val"]) & sequences["test"]
    manifest = json.loads((root / "dataset.json").read_text())
    assert manifest["seed"] == 0 and manifest["size"] == list(SMALL) and manifest["counts"] == TINY_COUNTS


def test_same_seed_writes_identical_files_and_another_seed_different_ones(tmp_path) -> None:
    first = all_files(write_tiny(tmp_path / "a"))
    again = all_files(write_tiny(tmp_path / "b"))
    other = all_files(write_tiny(tmp_path / "c", seed=1))
    assert first == again
    images = [k for k in first if k.startswith("train/")]
    assert images and all(first[k] != other[k] for k in images)


def test_an_interrupted_write_leaves_nothing_that_passes_for_a_dataset(tmp_path, monkeypatch) -> None:
    root = tmp_path / "synth"
    save = synthetic._save_png
    calls = []

    def failing_save(array: np.ndarray, path: Path) -> None:
        calls.append(path)
        if len(calls) > 6:
            raise KeyboardInterrupt  # like Ctrl-C halfway through
        save(array, path)

    monkeypatch.setattr(synthetic.writer, "_save_png", failing_save)
    with pytest.raises(KeyboardInterrupt):
        write_tiny(root)
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []  # the partial folder is cleaned up too

    monkeypatch.setattr(synthetic.writer, "_save_png", save)
    write_tiny(root)
    assert len(find_segnet_pairs(root, "train")) == TINY_COUNTS["train"]


def test_a_complete_dataset_is_not_rewritten(tmp_path, monkeypatch) -> None:
    root = write_tiny(tmp_path / "synth")
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    def no_render(*args, **kwargs):
        raise AssertionError("a complete dataset was rendered again")

    monkeypatch.setattr(synthetic.writer, "render_scene", no_render)
    assert write_tiny(root) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_an_existing_folder_is_used_only_when_empty_or_generated_with_the_same_parameters(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(find_segnet_pairs(write_tiny(empty), "val")) == TINY_COUNTS["val"]

    with pytest.raises(DataError, match="seed"):
        write_tiny(empty, seed=1)

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(DataError, match="not empty"):
        write_tiny(foreign)
    assert (foreign / "holiday.jpg").read_bytes() == b"not ours"

    (empty / "train" / "synth00_000000.png").unlink()
    with pytest.raises(DataError, match="delete"):
        write_tiny(empty)


@pytest.mark.parametrize(
    "kwargs",
    [{"size": (16, 16)}, {"counts": {"train": -1}}, {"counts": {"train": 0}}, {"frames_per_sequence": 0},
     {"seed": -1}],  # fmt: skip
)
def test_bad_parameters_are_refused_before_writing(tmp_path, kwargs) -> None:
    with pytest.raises(ConfigError):
        write_synthetic_dataset(tmp_path / "synth", **kwargs)
    assert not (tmp_path / "synth").exists()


def test_default_root_is_in_the_cache_and_depends_on_the_parameters(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DRIVSEG_CACHE", str(tmp_path))
    root = default_synthetic_root()
    assert root.parent == tmp_path and root.name.startswith("synthetic-v1-")
    assert default_synthetic_root() == root
    assert default_synthetic_root(seed=1) != root
    assert default_synthetic_root(size=SMALL) != root
    monkeypatch.delenv("DRIVSEG_CACHE")
    assert default_synthetic_root().parent == Path.home() / ".cache" / "drivseg"


def test_source_is_registered_with_camvid_labels() -> None:
    assert SYNTHETIC.name == "synthetic"
    assert SYNTHETIC.label_spec is CAMVID_SPEC
    assert SYNTHETIC.find_pairs is find_segnet_pairs
    assert SYNTHETIC.default_root is default_synthetic_root
    assert SYNTHETIC.prepare is not None


@pytest.mark.slow
def test_prepare_writes_the_default_dataset(tmp_path) -> None:
    root = tmp_path / "synth"
    SYNTHETIC.prepare(root)
    for split, count in synthetic.DEFAULT_COUNTS.items():
        assert len(SYNTHETIC.find_pairs(root, split)) == count
    SYNTHETIC.prepare(root)  # second call: already there
