"""Cross-validation folds: groups never straddle folds, every pool image once, stable files,
class balance better than a random group split, mismatching folds files named."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drivseg.data.camvid import CAMVID
from drivseg.errors import ConfigError, DataError
from drivseg.folds import (
    assign_groups,
    class_pixel_counts,
    fold_shares,
    fold_split,
    imbalance,
    make_folds,
    natural_key,
    pool_pairs,
    read_folds,
    write_folds,
)

from tests.conftest import write_segnet_dataset


def write_sequences(root: Path, frames: dict[str, int], classes_of: dict[str, list[int]], split: str = "train",
                    size: tuple[int, int] = (8, 8)) -> Path:
    """SegNet-layout masks where sequence ``s`` shows only the classes ``classes_of[s]`` (in stripes)."""
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
    for sequence, n in frames.items():
        classes = classes_of[sequence]
        for f in range(n):
            mask = np.array([[classes[(x + f) % len(classes)] for x in range(size[1])]] * size[0], dtype=np.uint8)
            name = f"{sequence}_{f * 30:06d}.png"
            Image.fromarray(np.zeros((*size, 3), np.uint8)).save(root / split / name)
            Image.fromarray(mask, mode="L").save(root / f"{split}annot" / name)
    return root


def test_no_group_in_two_folds_and_every_pool_image_in_exactly_one(tmp_path) -> None:
    root = write_segnet_dataset(tmp_path / "d", {"train": 30, "val": 9, "test": 6}, size=(16, 16))
    rows, counts, block = make_folds(CAMVID, root, folds=3, pool="train+val")
    pool = {p.relative_to(root).as_posix() for p, _ in pool_pairs(CAMVID, root, "train+val")}
    assert sorted(r.image for r in rows) == sorted(pool) and len(rows) == 39  # each once, no test image
    assert not any(r.image.startswith("test/") for r in rows)
    folds_of_group = defaultdict(set)
    for r in rows:
        folds_of_group[r.group].add(r.fold)
    assert all(len(f) == 1 for f in folds_of_group.values())
    assert {r.fold for r in rows} == {0, 1, 2}
    assert counts.shape == (39, 11) and block == 4  # ceil(39 / (4 groups per fold * 3 folds))


def test_fewer_sequences_than_folds_are_cut_into_contiguous_frame_blocks(tmp_path) -> None:
    # 2 sequences for 4 folds: CamVid's situation
    root = write_sequences(tmp_path / "d", {"seqA": 20, "seqB": 12}, {"seqA": [0, 1], "seqB": [2, 3]})
    rows, _, block = make_folds(CAMVID, root, folds=4, pool="train", group_frames=5)
    assert block == 5
    for sequence in ("seqA", "seqB"):
        frames = sorted((r for r in rows if r.image.startswith(f"train/{sequence}")), key=lambda r: natural_key(r.image))
        groups = [r.group for r in frames]
        # a block is a run of consecutive frames: once a group ends it never comes back
        runs = [g for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]]
        assert len(runs) == len(set(runs)) and all(g.startswith(f"{sequence}/") for g in groups)
        assert max(groups.count(g) for g in set(groups)) <= 5
    with pytest.raises(ConfigError, match="2 groups cannot fill 4 folds"):
        make_folds(CAMVID, root, folds=4, pool="train", group_frames=0)  # 0: sequences are never cut


def test_folds_file_is_identical_across_runs_and_machines(tmp_path) -> None:
    first = write_segnet_dataset(tmp_path / "machine_a" / "camvid", {"train": 24, "val": 6}, size=(16, 16))
    second = tmp_path / "machine_b" / "data" / "camvid"
    shutil.copytree(first, second)
    write_folds(tmp_path / "a.csv", make_folds(CAMVID, first, 3)[0])
    write_folds(tmp_path / "a_again.csv", make_folds(CAMVID, first, 3)[0])
    write_folds(tmp_path / "b.csv", make_folds(CAMVID, second, 3)[0])
    text = (tmp_path / "a.csv").read_bytes()
    assert text == (tmp_path / "a_again.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert text.startswith(b"image,mask,group,fold\ntrain/seq00_000000.png,trainannot/seq00_000000.png,")
    assert read_folds(tmp_path / "a.csv") == sorted(make_folds(CAMVID, first, 3)[0], key=lambda r: r.image)


def test_class_balance_beats_random_group_splits_on_an_unbalanced_fixture(tmp_path) -> None:
    # 24 sequences of very different sizes, each showing three classes; class 10 only in 3 of them
    sizes = [20, 3, 8, 15, 4, 9, 2, 12, 6, 10, 5, 7, 14, 3, 6, 11, 2, 8, 16, 4, 5, 9, 3, 7]
    frames = {f"s{i:02d}": n for i, n in enumerate(sizes)}
    classes = {f"s{i:02d}": [i % 10, (i * 7 + 3) % 10, 10 if i in (1, 9, 17) else (i + 5) % 10] for i in range(24)}
    root = write_sequences(tmp_path / "d", frames, classes)
    rows, counts, _ = make_folds(CAMVID, root, folds=4, pool="train", group_frames=0)
    ours = imbalance(fold_shares(np.array([r.fold for r in rows]), counts, 4))

    groups = [r.group for r in rows]
    rng = np.random.default_rng(0)
    names = sorted(set(groups))
    random_scores = []
    for _ in range(200):
        # a random group split: shuffled groups dealt round-robin (GroupKFold with shuffling)
        fold_of = {g: i % 4 for i, g in enumerate(rng.permutation(names))}
        random_scores.append(imbalance(fold_shares(np.array([fold_of[g] for g in groups]), counts, 4)))
    assert ours < min(random_scores), (ours, min(random_scores), np.median(random_scores))
    assert ours < 0.7 * np.median(random_scores)
    sizes_per_fold = np.bincount([r.fold for r in rows])
    assert sizes_per_fold.max() - sizes_per_fold.min() <= 4  # 189 images: sizes stay even too
    # the rare class 10 (three sequences) lands in three different folds
    assert len({r.fold for r, c in zip(rows, counts[:, 10]) if c > 0}) == 3


def test_assignment_keeps_fold_sizes_even() -> None:
    groups = [f"g{i}" for i in range(12) for _ in range(i + 1)]  # groups of 1..12 images: 78 in total
    counts = np.ones((len(groups), 2), dtype=np.int64)
    fold_of = assign_groups(groups, counts, 3)
    sizes = np.bincount([fold_of[g] for g in groups], minlength=3)
    assert sizes.sum() == 78 and sizes.max() - sizes.min() <= 2


def test_fold_split_trains_on_the_other_folds_and_validates_on_fold_k(tmp_path) -> None:
    root = write_segnet_dataset(tmp_path / "d", {"train": 12, "val": 6}, size=(16, 16))
    rows, _, _ = make_folds(CAMVID, root, 3)
    write_folds(tmp_path / "folds.csv", rows)
    split = fold_split(tmp_path / "folds.csv", 1, CAMVID, root)
    assert sorted(p.relative_to(root).as_posix() for p, _ in split["val"]) == sorted(r.image for r in rows if r.fold == 1)
    assert len(split["train"]) + len(split["val"]) == 18
    assert not {p for p, _ in split["train"]} & {p for p, _ in split["val"]}
    assert all(m == root / m.relative_to(root) and m.is_file() for _, m in split["train"])
    with pytest.raises(ConfigError, match="--fold 3: .* has folds 0..2"):
        fold_split(tmp_path / "folds.csv", 3, CAMVID, root)


def test_folds_file_that_does_not_match_the_dataset_names_the_files(tmp_path) -> None:
    root = write_segnet_dataset(tmp_path / "d", {"train": 12, "val": 6}, size=(16, 16))
    write_folds(tmp_path / "folds.csv", make_folds(CAMVID, root, 3)[0])
    extra = write_segnet_dataset(tmp_path / "more", {"train": 13}, size=(16, 16))
    for sub in ("train", "trainannot"):
        shutil.copy(extra / sub / "seq00_000012.png", root / sub / "seq00_000012.png")
    (root / "val" / "seq01_000004.png").unlink()
    (root / "valannot" / "seq01_000004.png").unlink()
    with pytest.raises(DataError) as err:
        fold_split(tmp_path / "folds.csv", 0, CAMVID, root)
    message = str(err.value)
    assert "1 images the dataset" in message and "val/seq01_000004.png" in message
    assert "1 images of the train+val splits are missing from it" in message and "train/seq00_000012.png" in message


def test_class_pixel_counts_skip_void(tmp_path) -> None:
    root = write_segnet_dataset(tmp_path / "d", {"train": 2}, size=(16, 16), void_every=4)
    pairs = pool_pairs(CAMVID, root, "train")
    counts = class_pixel_counts(pairs, CAMVID)
    mask = np.asarray(Image.open(pairs[0][1]))
    assert counts[0].sum() == (mask != 11).sum() == 16 * 16 - 16
    assert counts[0, 3] == (mask == 3).sum()


@pytest.mark.camvid
def test_camvid_train_folds_keep_sequences_in_blocks(camvid_root) -> None:
    rows, counts, block = make_folds(CAMVID, camvid_root, folds=5, pool="train")
    assert len(rows) == 367 and block == 19  # 3 sequences -> blocks of at most 19 frames
    assert {r.group.split("/")[0] for r in rows} == {"0001TP", "0006R0", "0016E5"}
    sizes = np.bincount([r.fold for r in rows])
    assert sizes.min() >= 60 and sizes.max() <= 87
    assert imbalance(fold_shares(np.array([r.fold for r in rows]), counts, 5)) < 0.05
