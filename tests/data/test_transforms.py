"""Albumentations pipelines keep image and mask aligned, masks nearest-neighbour and padded with
255, eval scaling touches the image only; ``--augment`` pipelines load from YAML and are refused when
they would blend masks; ``pad_collate`` pads images with 0 and masks with 255."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from drivseg.data.dataset import pad_collate
from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.data.transforms import augment_names, eval_transform, load_augment, normalize, train_transform
from drivseg.errors import ConfigError

# each class has its own colour; void is black, the colour the crop padding fills images with
PALETTE = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255), 3: (255, 255, 255), IGNORE_INDEX: (0, 0, 0)}
H, W, BLOCK = 64, 96, 8


def _blocks(values: list[int], seed: int) -> np.ndarray:
    """(H, W) uint8 mask of 8x8 blocks with values drawn from ``values``."""
    rng = np.random.default_rng(seed)
    grid = rng.choice(values, size=(H // BLOCK, W // BLOCK))
    return np.kron(grid, np.ones((BLOCK, BLOCK), dtype=np.int64)).astype(np.uint8)


def _colour_coded(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An image whose colour at each pixel encodes that pixel's class, and the mask."""
    mask = _blocks(list(PALETTE), seed)
    image = np.zeros((H, W, 3), dtype=np.uint8)
    for value, colour in PALETTE.items():
        image[mask == value] = colour
    return image, mask


def _decode(image: torch.Tensor) -> np.ndarray:
    """(3, h, w) uint8 image -> (h, w) class of the nearest palette colour."""
    values = np.array(list(PALETTE))
    colours = np.array(list(PALETTE.values()), dtype=float)  # (K, 3)
    pixels = image.permute(1, 2, 0).numpy().astype(float)[..., None, :]  # (h, w, 1, 3)
    return values[np.argmin(((pixels - colours) ** 2).sum(-1), axis=-1)]


def _interior(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """Pixels whose (2r+1)^2 neighbourhood holds one label: away from block edges, where linear
    image resampling blends colours and nearest-neighbour masks may shift by a pixel."""
    h, w = mask.shape
    padded = np.pad(mask.astype(int), radius, constant_values=-1)
    same = np.ones_like(mask, dtype=bool)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            same &= padded[dy : dy + h, dx : dx + w] == mask
    return same


# ---------------------------------------------------------------- train transform


@pytest.mark.parametrize("image_scale", [1.0, 0.5])
def test_train_transform_keeps_image_and_mask_aligned(image_scale: float) -> None:
    transform = train_transform(crop_size=(48, 64), image_scale=image_scale, scale_range=(0.75, 1.5),
                                augment=load_augment("light"))
    checked = 0
    for seed in range(12):
        transform.set_random_seed(seed)
        image, mask = _colour_coded(seed)
        out = transform(image=image, mask=mask)
        out_image, out_mask = out["image"], np.asarray(out["mask"])
        assert out_image.shape == (3, 48, 64) and out_mask.shape == (48, 64)
        assert out_image.dtype == torch.uint8  # normalised later, on the device

        inside = _interior(out_mask)
        assert np.array_equal(_decode(out_image)[inside], out_mask[inside]), f"misaligned at seed {seed}"
        checked += inside.sum()
    assert checked > 0.15 * 12 * 48 * 64  # thousands of pixels were compared, not just a few


def test_train_transform_resizes_masks_nearest_and_pads_with_255() -> None:
    # sparse label values: any linear blending of 0, 7 and 19 would create new values
    transform = train_transform(crop_size=(80, 120), scale_range=(0.6, 1.4), augment=load_augment("strong"))
    seen: set[int] = set()
    for seed in range(10):
        transform.set_random_seed(seed)
        mask = _blocks([0, 7, 19], seed)
        out_mask = np.asarray(transform(image=np.zeros((H, W, 3), np.uint8), mask=mask)["mask"])
        seen |= set(np.unique(out_mask).tolist())
    assert seen <= {0, 7, 19, IGNORE_INDEX}
    assert IGNORE_INDEX in seen  # crops larger than the scaled image were padded


@pytest.mark.parametrize("image_scale,scale_range", [(1.0, (0.5, 0.5)), (0.5, (1.0, 1.0))])
def test_train_scale_is_image_scale_times_jitter(image_scale: float, scale_range: tuple) -> None:
    # 64x96 scaled by 0.5 is 32x48 = 1536 labelled pixels; the 48x64 crop pads the remaining
    # 3072 - 1536 with 255 in the mask and black in the image
    transform = train_transform(crop_size=(48, 64), image_scale=image_scale, scale_range=scale_range)
    image, mask = _colour_coded(seed=0)
    mask[mask == IGNORE_INDEX] = 1  # no void in the source: every 255 comes from padding
    image[mask == 1] = PALETTE[1]
    out = transform(image=image, mask=mask)
    out_mask = np.asarray(out["mask"])
    assert (out_mask != IGNORE_INDEX).sum() == 32 * 48
    padding = out_mask == IGNORE_INDEX
    assert np.all(out["image"].permute(1, 2, 0).numpy()[padding] == 0)


def test_train_transform_without_crop_scales_both_by_image_scale() -> None:
    transform = train_transform(image_scale=0.5)
    transform.set_random_seed(0)
    image, mask = _colour_coded(seed=3)
    out = transform(image=image, mask=mask)
    out_mask = np.asarray(out["mask"])
    assert out["image"].shape == (3, 32, 48) and out_mask.shape == (32, 48)
    assert set(np.unique(out_mask).tolist()) <= set(PALETTE)
    inside = _interior(out_mask, radius=1)
    assert np.array_equal(_decode(out["image"])[inside], out_mask[inside])


def test_colour_jitter_leaves_the_mask_alone() -> None:
    transform = train_transform(augment=A.Compose([A.ColorJitter(0.4, 0.4, 0.4, 0.02, p=1.0)]))
    image, mask = _colour_coded(seed=4)
    for seed in range(5):
        transform.set_random_seed(seed)
        assert np.array_equal(np.asarray(transform(image=image, mask=mask)["mask"]), mask)


# ---------------------------------------------------------------- eval transform


def test_normalize_on_the_device_uses_mean_and_std() -> None:
    out = eval_transform()(image=np.full((2, 3, 3), 255, dtype=np.uint8), mask=np.zeros((2, 3), np.uint8))
    assert out["image"].dtype == torch.uint8
    mean = torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)
    std = torch.tensor([0.25, 0.5, 2.0]).view(1, 3, 1, 1)
    # (1 - 0.5) / 0.25 = 2, (1 - 0.25) / 0.5 = 1.5, (1 - 0) / 2 = 0.5
    assert normalize(out["image"][None], mean, std)[0, :, 0, 0].tolist() == pytest.approx([2.0, 1.5, 0.5])


def test_eval_image_scale_halves_the_image_and_keeps_the_mask() -> None:
    image, mask = _colour_coded(seed=5)
    out = eval_transform(image_scale=0.5)(image=image, mask=mask)
    assert out["image"].shape == (3, 32, 48)
    assert np.array_equal(np.asarray(out["mask"]), mask)
    # the halved image still shows the same blocks, now 4x4 pixels each
    small = mask[::2, ::2]
    inside = _interior(small, radius=1)
    assert np.array_equal(_decode(out["image"])[inside], small[inside])


# ---------------------------------------------------------------- --augment pipelines


def test_named_augment_pipelines_load_and_default_is_flip_plus_colour_jitter() -> None:
    assert {"none", "light", "default", "strong"} <= set(augment_names())
    ops = [type(t).__name__ for t in load_augment("default").transforms]
    assert ops == ["HorizontalFlip", "ColorJitter"]
    assert load_augment("none").transforms == []


def test_augment_from_a_yaml_path_round_trips(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    A.save(A.Compose([A.VerticalFlip(p=1.0)]), str(path), data_format="yaml")
    image, mask = _colour_coded(seed=6)
    out = train_transform(augment=load_augment(str(path)))(image=image, mask=mask)
    assert np.array_equal(np.asarray(out["mask"]), mask[::-1])
    assert np.array_equal(out["image"].permute(1, 2, 0).numpy(), image[::-1])


@pytest.mark.parametrize(
    "op, field",
    [
        (A.Affine(rotate=10, mask_interpolation=cv2.INTER_LINEAR, fill_mask=IGNORE_INDEX), "mask_interpolation"),
        (A.Affine(rotate=10, mask_interpolation=cv2.INTER_NEAREST, fill_mask=0), "fill_mask"),
        (A.Resize(32, 48, mask_interpolation=cv2.INTER_CUBIC), "mask_interpolation"),
    ],
)
def test_augment_that_would_blend_or_fill_masks_is_refused_naming_the_op(tmp_path, op, field) -> None:
    path = tmp_path / "bad.yaml"
    A.save(A.Compose([A.HorizontalFlip(), op]), str(path), data_format="yaml")
    with pytest.raises(ConfigError, match=f"{type(op).__name__}.*{field}"):
        load_augment(str(path))


def test_unknown_augment_name_lists_the_named_ones() -> None:
    with pytest.raises(ConfigError, match="default.*light"):
        load_augment("heavy")


# ---------------------------------------------------------------- pad_collate


def test_pad_collate_pads_images_with_zero_and_masks_with_255() -> None:
    a = {"image": torch.full((3, 4, 5), 1.0), "mask": torch.full((4, 5), 1), "name": "a.png"}
    b = {"image": torch.full((3, 6, 3), 2.0), "mask": torch.full((6, 3), 2), "name": "b.png"}
    batch = pad_collate([a, b])

    assert batch["name"] == ["a.png", "b.png"]
    assert batch["image"].shape == (2, 3, 6, 5) and batch["mask"].shape == (2, 6, 5)
    # sample a: content top-left, two padded rows below
    assert torch.all(batch["image"][0, :, :4, :] == 1) and torch.all(batch["image"][0, :, 4:, :] == 0)
    assert torch.all(batch["mask"][0, :4, :] == 1) and torch.all(batch["mask"][0, 4:, :] == IGNORE_INDEX)
    # sample b: content top-left, two padded columns on the right
    assert torch.all(batch["image"][1, :, :, :3] == 2) and torch.all(batch["image"][1, :, :, 3:] == 0)
    assert torch.all(batch["mask"][1, :, :3] == 2) and torch.all(batch["mask"][1, :, 3:] == IGNORE_INDEX)
    assert batch["mask"].dtype == torch.long and batch["skipped"] == []


def test_pad_collate_drops_unreadable_samples_and_lists_them() -> None:
    good = {"image": torch.zeros(3, 2, 2, dtype=torch.uint8), "mask": torch.zeros(2, 2, dtype=torch.uint8), "name": "a"}
    bad = {"skipped": "b.png", "error": "image b.png cannot be read"}
    batch = pad_collate([good, bad])
    assert batch["name"] == ["a"] and batch["image"].shape == (1, 3, 2, 2)
    assert batch["skipped"] == [("b.png", "image b.png cannot be read")]
    empty = pad_collate([bad])
    assert empty["image"].shape[0] == 0 and empty["skipped"] == [("b.png", "image b.png cannot be read")]


def test_pad_collate_pads_images_and_masks_to_their_own_sizes() -> None:
    # with eval image_scale the image is smaller than its mask; each is padded to its own maximum
    samples = [
        {"image": torch.zeros(3, 2, 3), "mask": torch.zeros(4, 6, dtype=torch.long), "name": "a"},
        {"image": torch.zeros(3, 3, 2), "mask": torch.zeros(6, 4, dtype=torch.long), "name": "b"},
    ]
    batch = pad_collate(samples)
    assert batch["image"].shape == (2, 3, 3, 3)
    assert batch["mask"].shape == (2, 6, 6)
