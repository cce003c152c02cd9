"""Loss registry: values against plain numpy formulas, ignore index, spec parsing, fp32, weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError
from drivseg.losses import LOSSES, build_loss, median_frequency_weights, parse_loss_spec
from drivseg.losses.boundary import signed_distance_maps
from drivseg.losses.ohem import OhemCrossEntropy

NEW_LOSSES = ["ohem", "generalized_dice", "focal_tversky", "log_cosh_dice", "boundary"]
LOSS_NAMES = ["ce", "dice", "jaccard", "focal", "lovasz", "tversky", *NEW_LOSSES]
# losses whose value depends on where pixels are, not only on which pixels there are
SPATIAL = {"boundary"}
Tensor = torch.Tensor


# ---------------------------------------------------------------- numpy references (float64)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _flat(logits: Tensor, target: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(B, C, H, W), (B, H, W) -> logits (P, C) and labels (P,) of the non-void pixels."""
    z = logits.detach().double().movedim(1, -1).reshape(-1, logits.shape[1]).numpy()
    y = target.reshape(-1).numpy()
    keep = y != IGNORE_INDEX
    return z[keep], y[keep]


def ce_ref(logits: Tensor, target: Tensor, weights: list[float] | None = None) -> float:
    """Cross-entropy, weighted mean over the non-void pixels."""
    z, y = _flat(logits, target)
    nll = -np.log(_softmax(z)[np.arange(len(y)), y])
    w = np.ones(z.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    return float((w[y] * nll).sum() / w[y].sum())


def _soft_counts(logits: Tensor, target: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class over the whole batch: soft intersection, soft prediction sum, target count."""
    z, y = _flat(logits, target)
    p = _softmax(z)
    onehot = np.eye(z.shape[1])[y]
    return (p * onehot).sum(0), p.sum(0), onehot.sum(0)


def dice_ref(logits: Tensor, target: Tensor, class_weights: list[float] | None = None) -> float:
    """1 - 2 I / (P + T) per class over the whole batch, (weighted) mean over classes."""
    inter, pred, true = _soft_counts(logits, target)
    per_class = 1 - 2 * inter / (pred + true)
    w = np.ones_like(per_class) if class_weights is None else np.asarray(class_weights, dtype=float)
    return float((w * per_class).sum() / w.sum())


def jaccard_ref(logits: Tensor, target: Tensor) -> float:
    """1 - I / (P + T - I) per class, mean over classes."""
    inter, pred, true = _soft_counts(logits, target)
    return float(np.mean(1 - inter / (pred + true - inter)))


def tversky_ref(logits: Tensor, target: Tensor, alpha: float = 0.3, beta: float = 0.7) -> float:
    """1 - TP / (TP + alpha FP + beta FN) per class, mean over classes."""
    inter, pred, true = _soft_counts(logits, target)
    fp, fn = pred - inter, true - inter
    return float(np.mean(1 - inter / (inter + alpha * fp + beta * fn)))


def focal_ref(logits: Tensor, target: Tensor, gamma: float = 2.0) -> float:
    """One-vs-rest sigmoid focal loss: mean over pixels, then over classes."""
    z, y = _flat(logits, target)
    losses = []
    for c in range(z.shape[1]):
        p = 1 / (1 + np.exp(-z[:, c]))
        pt = np.where(y == c, p, 1 - p)
        losses.append(np.mean(-((1 - pt) ** gamma) * np.log(pt)))
    return float(np.mean(losses))


def lovasz_ref(logits: Tensor, target: Tensor) -> float:
    """Lovasz-softmax through the level-set form of the Lovasz extension.

    For errors sorted e_1 >= ... >= e_n, ext(e) = sum_k (e_k - e_{k+1}) J(S_k) with S_k the k
    largest errors, e_{n+1} = 0 and J(S) = 1 - |fg \\ S| / |fg u S| (the Jaccard loss when the
    pixels of S are wrong); averaged over the classes present in the target.
    """
    z, y = _flat(logits, target)
    p = _softmax(z)
    losses = []
    for c in np.unique(y):
        fg = y == c
        err = np.abs(fg - p[:, c])
        order = np.argsort(-err, kind="stable")
        e = np.append(err[order], 0.0)
        total = 0.0
        for k in range(1, len(order) + 1):
            wrong = np.zeros_like(fg)
            wrong[order[:k]] = True
            jac = 1 - (fg & ~wrong).sum() / (fg | wrong).sum()
            total += (e[k - 1] - e[k]) * jac
        losses.append(total)
    return float(np.mean(losses))


def ohem_ref(logits: Tensor, target: Tensor, threshold: float = 0.7, min_kept: int | None = None) -> float:
    """Mean CE over pixels with p(true) < threshold, or over the min_kept lowest p(true) if fewer."""
    z, y = _flat(logits, target)
    p = _softmax(z)[np.arange(len(y)), y]
    n_min = min(max(len(y) // 16 if min_kept is None else min_kept, 1), len(y))
    keep = p < threshold
    if keep.sum() < n_min:
        keep = np.zeros_like(keep)
        keep[np.argsort(p)[:n_min]] = True
    return float(np.mean(-np.log(p[keep])))


def generalized_dice_ref(logits: Tensor, target: Tensor) -> float:
    """1 - 2 sum w I / sum w (P + T), w = 1 / T**2; absent classes take the largest finite weight."""
    inter, pred, true = _soft_counts(logits, target)
    w = np.where(true > 0, 1 / np.maximum(true, 1) ** 2, 0.0)
    w = np.where(true > 0, w, w.max())
    return float(1 - 2 * (w * inter).sum() / (w * (pred + true)).sum())


def focal_tversky_ref(logits: Tensor, target: Tensor) -> float:
    """mean_c (1 - TI_c) ** 0.75, TI = (I + 1) / (I + 0.7 FN + 0.3 FP + 1)."""
    inter, pred, true = _soft_counts(logits, target)
    ti = (inter + 1) / (inter + 0.7 * (true - inter) + 0.3 * (pred - inter) + 1)
    return float(np.mean((1 - ti) ** 0.75))


def log_cosh_dice_ref(logits: Tensor, target: Tensor) -> float:
    return float(np.log(np.cosh(dice_ref(logits, target))))


def boundary_ref(logits: Tensor, target: Tensor) -> float:
    """sum p_c phi_c / (labelled pixels x classes), distance maps by scipy's exact EDT.

    ``distance_transform_edt(m)`` is, for every True pixel of m, the distance to the nearest False one.
    """
    p = _softmax(logits.detach().double().numpy())  # (B, C, H, W)
    labels_all = target.numpy()
    total = 0.0
    for b, labels in enumerate(labels_all):
        labelled = labels != IGNORE_INDEX
        for c in range(p.shape[1]):
            inside = labels == c
            outside = labelled & ~inside
            if inside.any() and outside.any():
                phi = np.where(outside, distance_transform_edt(~inside), 0.0)
                phi -= np.where(inside, distance_transform_edt(~outside) - 1, 0.0)
                total += (p[b, c] * phi).sum()
    return float(total / ((labels_all != IGNORE_INDEX).sum() * p.shape[1]))


REFERENCES = {
    "ce": ce_ref,
    "dice": dice_ref,
    "jaccard": jaccard_ref,
    "focal": focal_ref,
    "lovasz": lovasz_ref,
    "tversky": tversky_ref,
    "ohem": ohem_ref,
    "generalized_dice": generalized_dice_ref,
    "focal_tversky": focal_tversky_ref,
    "log_cosh_dice": log_cosh_dice_ref,
    "boundary": boundary_ref,
}


def _tiny_example() -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, 2, 2) logits and a target where every class occurs."""
    logits = torch.tensor(
        [[[[2.0, -1.0], [0.5, 0.0]], [[0.0, 1.5], [0.2, -0.5]], [[-1.0, 0.3], [1.0, 2.5]]]]
    )
    target = torch.tensor([[[0, 1], [2, 2]]])
    return logits, target


def _random_example(seed: int = 0, void_fraction: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """(2, 3, 4, 5) logits and a target with some 255 pixels; every class keeps valid pixels."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 4, 5, generator=g) * 2
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[torch.rand(2, 4, 5, generator=g) < void_fraction] = IGNORE_INDEX
    target[0, 0, :3] = torch.tensor([0, 1, 2])
    return logits, target


# ---------------------------------------------------------------- values


def test_registry_holds_the_documented_losses() -> None:
    assert set(LOSSES) == set(LOSS_NAMES)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_equals_numpy_formula_on_tiny_example(name: str) -> None:
    logits, target = _tiny_example()
    value = build_loss(name)(logits, target)
    assert value.shape == ()
    assert value.item() == pytest.approx(REFERENCES[name](logits, target), rel=1e-5, abs=1e-6)


def test_ce_on_one_pixel_matches_hand_computation() -> None:
    # logits (0, ln 3) for classes (0, 1), label 1: p1 = 3 / (1 + 3) = 0.75, loss = -ln 0.75
    logits = torch.tensor([0.0, float(np.log(3.0))]).reshape(1, 2, 1, 1)
    value = build_loss("ce")(logits, torch.tensor([[[1]]]))
    assert value.item() == pytest.approx(-np.log(0.75), rel=1e-6)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_equals_numpy_formula_on_random_batch_with_void(name: str) -> None:
    logits, target = _random_example(seed=3)
    value = build_loss(name)(logits, target)
    assert value.item() == pytest.approx(REFERENCES[name](logits, target), rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------- the reading-list losses by hand


def _two_class_example() -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 2, 2, 3) logits with p(class 1) = [[.9, .85, .6], [.75, .5, .2]] and the target
    [[1, 1, 1], [1, 255, 0]]: four pixels of class 1, one of class 0, one void."""
    p1 = torch.tensor([[0.9, 0.85, 0.6], [0.75, 0.5, 0.2]], dtype=torch.float64)
    logits = torch.stack([torch.zeros_like(p1), torch.log(p1 / (1 - p1))])[None].float()
    return logits, torch.tensor([[[1, 1, 1], [1, IGNORE_INDEX, 0]]])


# soft counts of that example over the 5 labelled pixels:
#   class 1: true 4, tp = .9 + .85 + .6 + .75 = 3.1, pred = 3.1 + .2 = 3.3 -> fn .9, fp .2
#   class 0: true 1, tp = .8, pred = (.1 + .15 + .4 + .25) + .8 = 1.7    -> fn .2, fp .9
HAND_VALUES = {
    # p(true) = .9 .85 .6 .75 .8; only .6 is below 0.7 (1/16 of 5 pixels rounds to the minimum, 1)
    "ohem": -math.log(0.6),
    # w1 = 1/4**2, w0 = 1/1**2
    "generalized_dice": 1 - 2 * (3.1 / 16 + 0.8) / ((3.3 + 4) / 16 + (1.7 + 1)),
    # TI1 = (3.1 + 1) / (3.1 + .7 * .9 + .3 * .2 + 1), TI0 = (.8 + 1) / (.8 + .7 * .2 + .3 * .9 + 1)
    "focal_tversky": ((1 - 4.1 / 4.79) ** 0.75 + (1 - 1.8 / 2.21) ** 0.75) / 2,
    # Dice loss per class: 1 - 2 tp / (pred + true)
    "log_cosh_dice": math.log(math.cosh(((1 - 6.2 / 7.3) + (1 - 1.6 / 2.7)) / 2)),
    # signed distances (the void pixel is neither class 1 nor "another class"):
    #   phi_1 = [[-(sqrt5 - 1), -(sqrt2 - 1), 0], [-1, void, 1]]
    #   phi_0 = [[sqrt5, sqrt2, 1], [2, void, 0]]
    # sum over pixels of p1 phi_1 + p0 phi_0, divided by 5 pixels x 2 classes
    "boundary": (
        0.9 * -(math.sqrt(5) - 1) + 0.1 * math.sqrt(5)
        + 0.85 * -(math.sqrt(2) - 1) + 0.15 * math.sqrt(2)
        + 0.4 * 1
        + 0.75 * -1 + 0.25 * 2
        + 0.2 * 1
    ) / 10,
}  # fmt: skip


@pytest.mark.parametrize("name", NEW_LOSSES)
def test_reading_list_loss_equals_hand_computed_value(name: str) -> None:
    logits, target = _two_class_example()
    assert build_loss(name)(logits, target).item() == pytest.approx(HAND_VALUES[name], rel=1e-5, abs=1e-6)


def test_ohem_keeps_at_least_min_kept_hardest_pixels() -> None:
    logits, target = _two_class_example()
    # one pixel is hard (p = .6); min_kept 3 adds the next hardest, p = .75 and .8
    value = OhemCrossEntropy(min_kept=3)(logits, target)
    assert value.item() == pytest.approx(-(math.log(0.6) + math.log(0.75) + math.log(0.8)) / 3, rel=1e-5)
    # a threshold above every p(true) keeps every labelled pixel: plain cross-entropy
    everything = OhemCrossEntropy(threshold=1.01)(logits, target)
    plain = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    assert everything.item() == pytest.approx(plain.item())


def test_ohem_class_weights_weight_the_kept_pixels() -> None:
    logits, target = _two_class_example()
    weights = torch.tensor([3.0, 0.5])
    # kept: p(true) .6 (class 1, weight .5), .75 (class 1, .5), .8 (class 0, 3)
    expected = -(0.5 * math.log(0.6) + 0.5 * math.log(0.75) + 3 * math.log(0.8)) / (0.5 + 0.5 + 3)
    value = OhemCrossEntropy(min_kept=3, class_weights=weights)(logits, target)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_boundary_distance_maps_ignore_void() -> None:
    target = np.array([[[1, 1, 1], [1, IGNORE_INDEX, 0]]])
    maps = signed_distance_maps(target, 3)
    r2, r5 = math.sqrt(2), math.sqrt(5)
    # were the void pixel another class, phi_1 at (0, 0) would be -(sqrt2 - 1), not -(sqrt5 - 1)
    np.testing.assert_allclose(maps[0, 1], [[-(r5 - 1), -(r2 - 1), 0], [-1, 0, 1]], rtol=1e-6)
    np.testing.assert_allclose(maps[0, 0], [[r5, r2, 1], [2, 0, 0]], rtol=1e-6)
    assert np.all(maps[0, 2] == 0)  # a class absent from the image is left to the others


def test_boundary_loss_prefers_the_true_class_everywhere() -> None:
    # for every pixel the lowest phi is its own class, so moving probability there lowers the loss
    logits, target = _random_example(seed=11)
    loss_fn = build_loss("boundary")
    onehot = F.one_hot(target.clamp(max=2), 3).movedim(-1, 1).float()
    confident = onehot * 20 - 10
    right, random, wrong = (loss_fn(x, target).item() for x in (confident, logits, -confident))
    assert right < random < wrong


# ---------------------------------------------------------------- ignore index


@pytest.mark.parametrize("name", [n for n in LOSS_NAMES if n not in SPATIAL])
def test_void_pixels_change_nothing_and_get_zero_gradient(name: str) -> None:
    logits, target = _random_example(seed=1)
    keep = target != IGNORE_INDEX
    assert (~keep).sum() > 0
    logits.requires_grad_(True)
    loss_fn = build_loss(name)

    with_void = loss_fn(logits, target)
    # the same pixels without the void ones, as a (1, C, 1, K) image
    kept_logits = logits.detach().movedim(1, -1)[keep].T.reshape(1, 3, 1, -1)
    without_void = loss_fn(kept_logits, target[keep].reshape(1, 1, -1))
    assert with_void.item() == pytest.approx(without_void.item(), rel=1e-6, abs=1e-7)

    with_void.backward()
    grad = logits.grad.movedim(1, -1)  # (B, H, W, C)
    assert torch.all(grad[~keep] == 0)
    assert grad[keep].abs().sum() > 0


@pytest.mark.parametrize("name", sorted(SPATIAL))
def test_void_pixels_get_zero_gradient_and_their_logits_change_nothing(name: str) -> None:
    logits, target = _random_example(seed=1)
    void = target == IGNORE_INDEX
    logits.requires_grad_(True)
    loss = build_loss(name)(logits, target)
    loss.backward()
    grad = logits.grad.movedim(1, -1)
    assert torch.all(grad[void] == 0) and grad[~void].abs().sum() > 0
    other = logits.detach().clone().movedim(1, -1)
    other[void] = torch.randn(int(void.sum()), 3) * 5
    assert build_loss(name)(other.movedim(-1, 1), target).item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_all_void_batch_gives_zero_loss_and_zero_gradient(name: str) -> None:
    # a random crop can land entirely on void/padding; the step must be a no-op, not NaN or a crash
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), IGNORE_INDEX)
    loss = build_loss(name)(logits, target)
    assert loss.shape == ()
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


# ---------------------------------------------------------------- spec parsing


def test_spec_plus_means_unit_weights() -> None:
    assert parse_loss_spec("ce+dice") == [("ce", 1.0), ("dice", 1.0)]


def test_spec_with_weights_spaces_and_capitals() -> None:
    assert parse_loss_spec(" CE : 2 , Lovasz:0.5 ") == [("ce", 2.0), ("lovasz", 0.5)]


def test_ce_plus_dice_is_the_sum_of_both() -> None:
    logits, target = _random_example(seed=4)
    expected = ce_ref(logits, target) + dice_ref(logits, target)
    assert build_loss("ce+dice")(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_weighted_spec_weights_each_term() -> None:
    logits, target = _random_example(seed=5)
    expected = 1.0 * ce_ref(logits, target) + 0.5 * lovasz_ref(logits, target)
    assert build_loss("ce:1.0,lovasz:0.5")(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_unknown_loss_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as err:
        parse_loss_spec("ce+dise")
    message = str(err.value)
    assert "'dise'" in message
    for name in LOSS_NAMES:
        assert name in message


def test_non_numeric_weight_names_the_weight() -> None:
    with pytest.raises(ConfigError, match="'abc'"):
        parse_loss_spec("ce:abc")


@pytest.mark.parametrize("spec", ["", " + , "])
def test_spec_naming_no_loss_is_rejected(spec: str) -> None:
    with pytest.raises(ConfigError, match="names no loss"):
        parse_loss_spec(spec)


@pytest.mark.parametrize("spec", ["ce:nan", "ce+dice:inf", "ce+dice:-1"])
def test_non_finite_or_negative_weight_is_rejected(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_loss_spec(spec)


# ---------------------------------------------------------------- precision


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_loss_is_fp32_under_autocast(dtype: torch.dtype) -> None:
    # 90,000 pixels of class 0: the Dice target sum overflows fp16 (max 65504) and is off by
    # hundreds in bf16 (8-bit mantissa); large logits stress the log-softmax
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(1, 3, 300, 300, generator=g) * 40).to(dtype)
    target = torch.zeros(1, 300, 300, dtype=torch.long)
    target[:, :20] = 1
    target[:, 20:30] = 2
    target[:, -5:] = IGNORE_INDEX
    with torch.autocast(device_type="cpu", dtype=dtype):
        loss = build_loss("ce+dice")(logits, target)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    expected = ce_ref(logits.float(), target) + dice_ref(logits.float(), target)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", NEW_LOSSES)
def test_reading_list_losses_are_fp32_under_autocast(name: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(1, 3, 120, 150, generator=g) * 10).to(dtype)
    target = torch.zeros(1, 120, 150, dtype=torch.long)
    target[:, :30] = 1
    target[:, 40:50, 20:90] = 2
    target[:, -5:] = IGNORE_INDEX
    with torch.autocast(device_type="cpu", dtype=dtype):
        loss = build_loss(name)(logits, target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(REFERENCES[name](logits.float(), target), rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------- class weights, smoothing


def test_class_weights_reach_cross_entropy() -> None:
    logits, target = _random_example(seed=6)
    weights = torch.tensor([0.2, 1.0, 3.0])
    value = build_loss("ce", class_weights=weights)(logits, target)
    assert value.item() == pytest.approx(ce_ref(logits, target, weights.tolist()), rel=1e-5)
    assert value.item() != pytest.approx(ce_ref(logits, target), rel=1e-3)


def test_label_smoothing_reaches_cross_entropy() -> None:
    # smoothed CE per pixel: (1 - eps) * nll + eps / C * sum_c -log p_c
    logits, target = _random_example(seed=7)
    eps = 0.1
    z, y = _flat(logits, target)
    logp = np.log(_softmax(z))
    expected = np.mean((1 - eps) * -logp[np.arange(len(y)), y] + eps / 3 * -logp.sum(1))
    value = build_loss("ce", label_smoothing=eps)(logits, target)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_class_weights_and_smoothing_match_torch_cross_entropy() -> None:
    logits, target = _random_example(seed=8)
    weights = torch.tensor([0.5, 2.0, 1.0])
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE_INDEX, label_smoothing=0.2)
    value = build_loss("ce", class_weights=weights, label_smoothing=0.2)(logits, target)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_class_weights_reach_dice() -> None:
    logits, target = _random_example(seed=9)
    weights = [0.2, 1.0, 3.0]
    value = build_loss("dice", class_weights=torch.tensor(weights))(logits, target)
    assert value.item() == pytest.approx(dice_ref(logits, target, weights), rel=1e-5)


def test_class_weights_reach_focal_tversky_and_log_cosh_dice() -> None:
    logits, target = _random_example(seed=10)
    weights = [0.2, 1.0, 3.0]
    inter, pred, true = _soft_counts(logits, target)
    ti = (inter + 1) / (inter + 0.7 * (true - inter) + 0.3 * (pred - inter) + 1)
    expected = float((np.array(weights) * (1 - ti) ** 0.75).sum() / sum(weights))
    value = build_loss("focal_tversky", class_weights=torch.tensor(weights))(logits, target)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value = build_loss("log_cosh_dice", class_weights=torch.tensor(weights))(logits, target)
    assert value.item() == pytest.approx(np.log(np.cosh(dice_ref(logits, target, weights))), rel=1e-5)


@pytest.mark.parametrize("name", ["lovasz", "generalized_dice", "boundary"])
def test_losses_without_class_weights_ignore_them(name: str) -> None:
    # documented: --class-weights reaches the other losses of a spec, these compute as without it
    logits, target = _random_example(seed=12)
    weighted = build_loss(name, class_weights=torch.tensor([0.2, 1.0, 3.0]))(logits, target)
    assert weighted.item() == pytest.approx(REFERENCES[name](logits, target), rel=1e-5, abs=1e-6)


def test_median_frequency_weights_on_hand_made_split() -> None:
    # three 2x2 masks: A = [0 0 1 1], B = [1 1 1 2], C = [2 2 2 2]; class 3 never appears
    #   pixels:          c0 = 2, c1 = 2 + 3 = 5, c2 = 1 + 4 = 5, c3 = 0
    #   present pixels:  c0 in A -> 4, c1 in A, B -> 8, c2 in B, C -> 8, c3 -> 0
    #   freq = 0.5, 0.625, 0.625; median 0.625 -> weights 1.25, 1, 1; unseen class -> 0
    weights = median_frequency_weights(torch.tensor([2, 5, 5, 0]), torch.tensor([4, 8, 8, 0]))
    assert weights.dtype == torch.float32
    assert weights.tolist() == pytest.approx([1.25, 1.0, 1.0, 0.0])


def test_median_frequency_weights_need_labelled_pixels() -> None:
    with pytest.raises(ConfigError, match="no labelled pixels"):
        median_frequency_weights(torch.zeros(3), torch.zeros(3))


# ---------------------------------------------------------------- optimisation


def test_ce_plus_dice_goes_down_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    images = torch.randn(2, 3, 16, 16)
    target = images.argmax(dim=1)  # the class is the brightest channel: learnable per pixel
    target[:, :2] = IGNORE_INDEX
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    loss_fn = build_loss("ce+dice")

    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_fn(net(images), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
