"""Writers for tiny Cityscapes, KITTI semantic and BDD100K trees in their real layouts.

Sizes are small (32x64) but folder structure, file naming and label encoding are the official
ones, so tests exercise the same code paths as the real downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (32, 64)  # (H, W)


def stripes(values: list[int], size: tuple[int, int] = SIZE) -> np.ndarray:
    """A (H, W) uint8 map of vertical stripes, one per value, left to right (covers every column)."""
    h, w = size
    columns = np.array_split(np.arange(w), len(values))
    out = np.zeros((h, w), dtype=np.uint8)
    for value, cols in zip(values, columns):
        out[:, cols] = value
    return out


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 (H, W) or (H, W, 3) array as PNG, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def write_image(path: Path, size: tuple[int, int] = SIZE, seed: int = 0) -> Path:
    """A random RGB frame (PNG or JPEG by suffix)."""
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


# ---------------------------------------------------------------- Cityscapes

def cityscapes_frame(city: str, seq: int, frame: int) -> str:
    """Official frame name, e.g. ``aachen_000000_000019``."""
    return f"{city}_{seq:06d}_{frame:06d}"


def write_cityscapes_frame(
    root: Path,
    split: str,
    city: str,
    seq: int,
    frame: int,
    label_ids: np.ndarray | None = None,
    train_ids: np.ndarray | None = None,
    color: bool = False,
) -> tuple[Path, dict[str, Path]]:
    """Write ``leftImg8bit`` + the requested gtFine masks of one frame; returns (image, masks by kind)."""
    name = cityscapes_frame(city, seq, frame)
    image = write_image(Path(root) / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", seed=frame)
    gt = Path(root) / "gtFine" / split / city
    masks: dict[str, Path] = {}
    if label_ids is not None:
        masks["labelIds"] = write_png(gt / f"{name}_gtFine_labelIds.png", label_ids)
    if train_ids is not None:
        masks["labelTrainIds"] = write_png(gt / f"{name}_gtFine_labelTrainIds.png", train_ids)
    if color:
        masks["color"] = write_png(gt / f"{name}_gtFine_color.png", np.zeros((*SIZE, 3), np.uint8))
    return image, masks


# frames with real city names per split; test masks only hold void ids, like the official release
CITYSCAPES_FRAMES = {
    "train": [("aachen", 0, 19), ("aachen", 1, 19), ("bochum", 0, 313)],
    "val": [("frankfurt", 0, 294), ("lindau", 0, 19)],
    "test": [("berlin", 0, 19), ("bielefeld", 0, 19)],
}
# road, sidewalk, car, person, unlabeled, parking, bicycle
CITYSCAPES_TRAIN_IDS_USED = [7, 8, 26, 24, 0, 9, 33]
CITYSCAPES_TEST_IDS_USED = [1, 2, 3]  # ego vehicle, rectification border, out of roi


def write_cityscapes_tree(root: Path) -> Path:
    """gtFine layout with ``CITYSCAPES_FRAMES``; train/val masks are ``stripes(TRAIN_IDS_USED)``."""
    for split, frames in CITYSCAPES_FRAMES.items():
        ids = CITYSCAPES_TEST_IDS_USED if split == "test" else CITYSCAPES_TRAIN_IDS_USED
        for city, seq, frame in frames:
            write_cityscapes_frame(root, split, city, seq, frame, label_ids=stripes(ids), color=True)
    return Path(root)


# ---------------------------------------------------------------- KITTI semantic

def write_kitti_frame(root: Path, scene: int, label_ids: np.ndarray | None = None) -> tuple[Path, Path]:
    """``training/image_2/{scene:06d}_10.png`` + ``training/semantic/`` (Cityscapes label ids)."""
    name = f"{scene:06d}_10.png"
    image = write_image(Path(root) / "training" / "image_2" / name, seed=scene)
    ids = stripes(CITYSCAPES_TRAIN_IDS_USED) if label_ids is None else label_ids
    mask = write_png(Path(root) / "training" / "semantic" / name, ids)
    return image, mask


def write_kitti_tree(root: Path, scenes: range = range(10)) -> Path:
    """Training scenes ``scenes`` plus two unlabeled ``testing/image_2`` frames."""
    for scene in scenes:
        write_kitti_frame(root, scene)
    for scene in range(2):
        write_image(Path(root) / "testing" / "image_2" / f"{scene:06d}_10.png", seed=scene)
    return Path(root)


def write_kitti_mapping(root: Path, lines: list[str]) -> Path:
    """``mapping/train_mapping.txt`` as in the scene flow devkit (line i = scene i)."""
    path = Path(root) / "mapping" / "train_mapping.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- BDD100K

BDD100K_NAMES = {
    "train": ["0a0a0b1a-7c39d841", "0a0b16e2-93f8c456", "b1c81faa-3df17267"],
    "val": ["7d2f7975-e0c1c5a7", "b1c81faa-c80764c5"],
}
BDD100K_TRAIN_IDS_USED = [0, 1, 13, 11, 255, 10, 18]  # road, sidewalk, car, person, unknown, sky, bicycle


def write_bdd100k_frame(
    root: Path, split: str, name: str, train_ids: np.ndarray | None = None, legacy: bool = False
) -> tuple[Path, Path]:
    """One image + mask, current layout or the 2018 ``seg/`` layout (``legacy``)."""
    ids = stripes(BDD100K_TRAIN_IDS_USED) if train_ids is None else train_ids
    root = Path(root)
    if legacy:
        image = write_image(root / "seg" / "images" / split / f"{name}.jpg")
        mask = write_png(root / "seg" / "labels" / split / f"{name}_train_id.png", ids)
    else:
        image = write_image(root / "images" / "10k" / split / f"{name}.jpg")
        mask = write_png(root / "labels" / "sem_seg" / "masks" / split / f"{name}.png", ids)
    return image, mask


def write_bdd100k_tree(root: Path, legacy: bool = False) -> Path:
    """``BDD100K_NAMES`` in train/val plus unlabeled test images (current layout only)."""
    for split, names in BDD100K_NAMES.items():
        for name in names:
            write_bdd100k_frame(root, split, name, legacy=legacy)
    if not legacy:
        write_image(Path(root) / "images" / "10k" / "test" / "ac6d4f42-00000000.jpg")
    return Path(root)
