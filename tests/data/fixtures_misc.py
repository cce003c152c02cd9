"""Writers of tiny on-disk datasets in the real layouts of Mapillary Vistas, Lyft-CARLA, the
folder dataset and colour-coded CamVid. Masks are given already encoded (label ids, CARLA tags,
RGB colours) so tests state the official encoding themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
from PIL import Image

Colour = tuple[int, int, int]


def write_photo(path: Path, height: int, width: int, seed: int = 0) -> Path:
    """A random RGB image (JPEG or PNG by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_index_png(path: Path, ids: np.ndarray, palette: Optional[Sequence[Colour]] = None) -> Path:
    """A single-channel PNG: palette ("P") mode when ``palette`` is given, else grey ("L")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids.astype(np.uint8))
    if palette is not None:
        image = image.convert("P")
        image.putpalette([c for colour in palette for c in colour])
    image.save(path)
    return path


def write_rgb_png(path: Path, rgb: np.ndarray) -> Path:
    """An RGB PNG, e.g. a colour-coded label."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def paint(ids: np.ndarray, colours: Mapping[int, Colour]) -> np.ndarray:
    """Colour-code an id map: pixel id ``i`` -> ``colours[i]`` (H, W, 3)."""
    rgb = np.zeros((*ids.shape, 3), dtype=np.uint8)
    for i, colour in colours.items():
        rgb[ids == i] = colour
    return rgb


def write_mapillary(
    root: Path,
    labels: Mapping[str, Mapping[str, np.ndarray]],
    test_ids: Sequence[str] = (),
    palette: Optional[Sequence[Colour]] = None,
    label_dir: str = "labels",
) -> None:
    """``root/<training|validation>/images/<id>.jpg`` + ``<label_dir>/<id>.png``; ``testing`` images only.

    A 2-D mask is written as a palette PNG (index = label id), a 3-D one as an RGB PNG.
    """
    for split_dir, masks in labels.items():
        for i, (image_id, mask) in enumerate(masks.items()):
            write_photo(root / split_dir / "images" / f"{image_id}.jpg", *mask.shape[:2], seed=i)
            target = root / split_dir / label_dir / f"{image_id}.png"
            if mask.ndim == 3:
                write_rgb_png(target, mask)
            else:
                write_index_png(target, mask, palette or [(i, i, i) for i in range(256)])
    for i, image_id in enumerate(test_ids):
        write_photo(root / "testing" / "images" / f"{image_id}.jpg", 32, 64, seed=i)


def write_lyft(folder: Path, tags: Mapping[str, np.ndarray]) -> None:
    """``folder/CameraRGB/<name>.png`` + ``folder/CameraSeg/<name>.png`` with the tag in RED."""
    for i, (name, tag_map) in enumerate(tags.items()):
        write_photo(folder / "CameraRGB" / f"{name}.png", *tag_map.shape, seed=i)
        seg = np.zeros((*tag_map.shape, 3), dtype=np.uint8)
        seg[..., 0] = tag_map  # CARLA leaves green and blue at 0
        write_rgb_png(folder / "CameraSeg" / f"{name}.png", seg)


def write_folder_dataset(
    root: Path,
    classes_yaml: str,
    masks: Mapping[str, np.ndarray],
    split: Optional[str] = None,
) -> None:
    """``root/classes.yaml`` + ``root/images[/split]/<name>.jpg`` + ``root/masks[/split]/<name>.png``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(classes_yaml)
    sub = Path(split) if split else Path()
    for i, (name, mask) in enumerate(masks.items()):
        write_photo(root / "images" / sub / f"{name}.jpg", *mask.shape[:2], seed=i)
        target = root / "masks" / sub / f"{name}.png"
        if mask.ndim == 3:
            write_rgb_png(target, mask)
        else:
            write_index_png(target, mask)


def write_camvid_official(root: Path, labels: Mapping[str, np.ndarray], labels_in_root: bool = False) -> None:
    """``root/701_StillsRaw_full/<frame>.png`` + ``root/LabeledApproved_full/<frame>_L.png`` (RGB)."""
    label_dir = root if labels_in_root else root / "LabeledApproved_full"
    for i, (frame, rgb) in enumerate(labels.items()):
        write_photo(root / "701_StillsRaw_full" / f"{frame}.png", *rgb.shape[:2], seed=i)
        write_rgb_png(label_dir / f"{frame}_L.png", rgb)


def write_camvid_split_folders(root: Path, labels: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """``root/<split>/<frame>.png`` + ``root/<split>_labels/<frame>_L.png`` (the Kaggle CamVid copy)."""
    for split, frames in labels.items():
        for i, (frame, rgb) in enumerate(frames.items()):
            write_photo(root / split / f"{frame}.png", *rgb.shape[:2], seed=i)
            write_rgb_png(root / f"{split}_labels" / f"{frame}_L.png", rgb)
