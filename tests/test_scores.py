"""drivseg.scores: confusion-matrix scores against scikit-learn on flattened pixels, per-image mIoU
and the BF score on hand-worked examples, state sums for DDP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt
from sklearn.metrics import balanced_accuracy_score, f1_score, jaccard_score, recall_score

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.errors import ConfigError
from drivseg.evaluation import ConfusionMatrix, iou_per_class
from drivseg.scores import (
    BoundaryF1,
    PerImageMIoU,
    boundary_f1_per_class,
    boundary_map,
    class_accuracy,
    dice_per_class,
    frequency_weighted_iou,
    mean_class_accuracy,
    mean_dice,
    per_image_confusion,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NUM_CLASSES = 6


def _random_split(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets use classes 0-3 and 255, predictions 0-4: class 4 is only predicted, class 5 nowhere."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 4, (n, 12, 15), generator=g)
    target[torch.rand(n, 12, 15, generator=g) < 0.2] = IGNORE_INDEX
    noise = torch.randint(0, 5, (n, 12, 15), generator=g)
    preds = torch.where(torch.rand(n, 12, 15, generator=g) < 0.6, target.clamp(max=3), noise)
    return preds, target


def _flat_labelled(preds: torch.Tensor, target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    keep = target != IGNORE_INDEX
    return target[keep].numpy(), preds[keep].numpy()


def _matrix(preds: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    cm = ConfusionMatrix(NUM_CLASSES)
    cm.update(preds, target)
    return cm.matrix


# ---------------------------------------------------------------- confusion-matrix scores


def test_hand_made_matrix() -> None:
    # rows true, columns predicted; class d is only predicted (1 pixel), class e nowhere
    matrix = np.array([[1, 1, 0, 0, 0], [0, 2, 0, 0, 0], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    # Dice = 2 tp / (2 tp + fp + fn): a 2/(2+1+1), b 4/(4+1+0), c 2/(2+0+2), d 0/(0+1+0), e n/a
    np.testing.assert_allclose(dice_per_class(matrix), [0.5, 0.8, 0.5, 0.0, np.nan])
    assert mean_dice(matrix) == pytest.approx((0.5 + 0.8 + 0.5 + 0.0) / 4)
    # recall: a 1/2, b 2/2, c 1/3; d and e have no ground-truth pixels
    np.testing.assert_allclose(class_accuracy(matrix), [0.5, 1.0, 1 / 3, np.nan, np.nan])
    assert mean_class_accuracy(matrix) == pytest.approx((0.5 + 1.0 + 1 / 3) / 3)
    # IoU = tp / (tp + fp + fn): a 1/3, b 2/3, c 1/3, weighted by the true pixels 2, 2, 3 of 7;
    # d (IoU 0) weighs 0
    assert frequency_weighted_iou(matrix) == pytest.approx((2 / 3 + 4 / 3 + 3 / 3) / 7)


def test_empty_matrix_gives_none() -> None:
    empty = np.zeros((3, 3), dtype=np.int64)
    assert mean_dice(empty) is None and mean_class_accuracy(empty) is None
    assert frequency_weighted_iou(empty) is None
    assert np.isnan(dice_per_class(empty)).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_confusion_scores_equal_scikit_learn_on_flattened_pixels(seed: int) -> None:
    preds, target = _random_split(seed=seed)
    matrix = _matrix(preds, target)
    y_true, y_pred = _flat_labelled(preds, target)
    labels = list(range(NUM_CLASSES))
    in_either = [c for c in labels if (y_true == c).any() or (y_pred == c).any()]
    assert in_either == [0, 1, 2, 3, 4]  # the predicted-only and the absent class are both covered

    dice = dice_per_class(matrix)
    reference = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    np.testing.assert_allclose(dice, reference)
    assert mean_dice(matrix) == pytest.approx(f1_score(y_true, y_pred, labels=in_either, average="macro"))

    iou = iou_per_class(matrix)
    np.testing.assert_allclose(iou[in_either], jaccard_score(y_true, y_pred, labels=in_either, average=None))
    assert np.isnan(iou[5])
    # scikit-learn's "weighted" average weighs each class by its ground-truth support: the FCN fwIoU
    fw = jaccard_score(y_true, y_pred, labels=in_either, average="weighted")
    assert frequency_weighted_iou(matrix) == pytest.approx(fw)

    in_truth = sorted(set(y_true.tolist()))
    recall = recall_score(y_true, y_pred, labels=in_truth, average=None)
    np.testing.assert_allclose(class_accuracy(matrix)[in_truth], recall)
    assert np.isnan(class_accuracy(matrix)[[4, 5]]).all()
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        balanced = balanced_accuracy_score(y_true, y_pred)
    assert mean_class_accuracy(matrix) == pytest.approx(balanced)


# ---------------------------------------------------------------- per-image mIoU


def test_per_image_confusion_matches_one_matrix_per_image() -> None:
    preds, target = _random_split(n=3)
    per_image = per_image_confusion(preds, target, NUM_CLASSES)
    assert per_image.shape == (3, NUM_CLASSES, NUM_CLASSES) and per_image.dtype == torch.int64
    for i in range(3):
        assert np.array_equal(per_image[i].numpy(), _matrix(preds[i : i + 1], target[i : i + 1]))


def test_per_image_miou_by_hand() -> None:
    # image 1 (1x4): target [0 0 1 1], pred [0 1 1 1]: IoU0 1/2, IoU1 2/3 -> 7/12
    # image 2 (1x4): target [2 2 2 255], pred [2 2 0 3]: IoU2 2/3, IoU0 0 (predicted only);
    #   class 3 only predicted on the void pixel: absent from both -> (2/3 + 0) / 2 = 1/3
    # image 3: only void -> skipped
    target = torch.tensor([[[0, 0, 1, 1]], [[2, 2, 2, 255]], [[255, 255, 255, 255]]])
    preds = torch.tensor([[[0, 1, 1, 1]], [[2, 2, 0, 3]], [[1, 1, 1, 1]]])
    metric = PerImageMIoU(4)
    metric.update(preds, target)
    assert int(metric.images) == 2
    assert metric.compute().item() == pytest.approx((7 / 12 + 1 / 3) / 2)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_per_image_miou_equals_scikit_learn_per_image(batch_size: int) -> None:
    preds, target = _random_split(n=6, seed=2)
    metric = PerImageMIoU(NUM_CLASSES)
    for p, t in zip(preds.split(batch_size), target.split(batch_size)):
        metric.update(p, t)
    per_image = []
    for p, t in zip(preds, target):
        y_true, y_pred = _flat_labelled(p, t)
        present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        per_image.append(jaccard_score(y_true, y_pred, labels=present, average="macro"))
    assert metric.compute().item() == pytest.approx(np.mean(per_image))
    # not the split's mIoU: the per-image score is its own number
    split_miou = np.nanmean(iou_per_class(_matrix(preds, target)))
    assert metric.compute().item() != pytest.approx(split_miou, abs=1e-3)


# ---------------------------------------------------------------- boundary F1


# target: class 0 in columns 0-2, class 1 in columns 3-5; the prediction moves the edge two
# columns right in rows 0-1 only
BF_TARGET = np.array([[0, 0, 0, 1, 1, 1]] * 4)
BF_PRED = np.array([[0, 0, 0, 0, 0, 1]] * 2 + [[0, 0, 0, 1, 1, 1]] * 2)


def test_boundary_map_marks_pixels_next_to_another_labelled_class() -> None:
    assert np.array_equal(np.argwhere(boundary_map(BF_TARGET)), [[r, c] for r in range(4) for c in (2, 3)])
    # the step between rows 1 and 2 adds (1, 3) on the class-0 side and (2, 4) on the class-1 side
    expected = {(0, 4), (0, 5), (1, 3), (1, 4), (1, 5), (2, 2), (2, 3), (2, 4), (3, 2), (3, 3)}
    assert {tuple(p) for p in np.argwhere(boundary_map(BF_PRED))} == expected
    # void is no class: a void column between two classes makes no boundary
    assert not boundary_map(np.array([[0, 0, IGNORE_INDEX, 1, 1]])).any()


def test_boundary_f1_by_hand() -> None:
    # tolerance 1.5 px: distances 0, 1 and sqrt(2) match, 2 does not
    # class 0: predicted edge (0,4) (1,4) (1,3) (2,2) (3,2), true edge column 2
    #   precision: (0,4), (1,4) are 2 px away -> 3/5; recall: (0,2) is sqrt(2) from (1,3) -> 4/4
    #   F1 = 2 * 0.6 * 1 / 1.6 = 0.75
    # class 1: predicted (0,5) (1,5) (2,3) (2,4) (3,3), true edge column 3
    #   precision 3/5; recall: (0,3) is 2 px from (0,5) and (2,3) -> 3/4; F1 = 0.9 / 1.35 = 2/3
    f1 = boundary_f1_per_class(BF_PRED, BF_TARGET, 3, tolerance=1.5)
    np.testing.assert_allclose(f1, [0.75, 2 / 3, np.nan])
    # 2.5 px: every edge pixel has a partner
    np.testing.assert_allclose(boundary_f1_per_class(BF_PRED, BF_TARGET, 3, tolerance=2.5), [1, 1, np.nan])
    # default 0.75% of the diagonal sqrt(4^2 + 6^2) = 0.054 px: only exact matches, P 2/5, R 2/4
    np.testing.assert_allclose(boundary_f1_per_class(BF_PRED, BF_TARGET, 3), [4 / 9, 4 / 9, np.nan])


def test_boundary_f1_empty_class_rules() -> None:
    target = np.array([[0, 0, IGNORE_INDEX, 1, 1]])
    # class 2 predicted on the void pixel only: dropped, so absent from both -> NaN; classes 0 and 1
    # have no boundary in either map (only void between them) -> 1
    np.testing.assert_allclose(boundary_f1_per_class(np.array([[0, 0, 2, 1, 1]]), target, 3), [1, 1, np.nan])
    # class 1 missed entirely -> 0; class 0 now has a predicted edge but no true one -> 0
    np.testing.assert_allclose(
        boundary_f1_per_class(np.array([[0, 0, 0, 0, 2]]), target, 3, tolerance=2.0), [0, 0, 0]
    )


def bf_reference(preds: np.ndarray, target: np.ndarray, num_classes: int, tolerance: float) -> np.ndarray:
    """The BF definition written out: scipy's exact distance transform on the whole image."""
    preds = np.where(target == IGNORE_INDEX, IGNORE_INDEX, preds)
    true_edges, pred_edges = boundary_map(target), boundary_map(preds)
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        if not ((target == c).any() or (preds == c).any()):
            continue
        t, p = true_edges & (target == c), pred_edges & (preds == c)
        if not (t.any() and p.any()):
            out[c] = float((target == c).any() and (preds == c).any() and not (t.any() or p.any()))
            continue
        precision = (distance_transform_edt(~t)[p] < tolerance).mean()  # distance to the nearest true edge
        recall = (distance_transform_edt(~p)[t] < tolerance).mean()
        out[c] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return out


@pytest.mark.parametrize("tolerance", [1.0, 2.0, 4.5, None])
def test_boundary_f1_equals_the_definition_on_random_maps(tolerance) -> None:
    # blocky maps (8x8 cells, 30% of them moved) so classes have real edges, with void
    rng = np.random.default_rng(5)
    target = np.kron(rng.integers(0, 5, (8, 10)), np.ones((8, 8), dtype=np.int64))
    noise = rng.integers(0, 6, target.shape)
    preds = np.where(rng.random(target.shape) < 0.1, noise, np.roll(target, 3, axis=1))
    target[rng.random(target.shape) < 0.05] = IGNORE_INDEX
    tol = 0.0075 * math.hypot(*target.shape) if tolerance is None else tolerance
    expected = bf_reference(preds, target, 6, tol)
    assert np.isfinite(expected[:5]).all()
    np.testing.assert_allclose(boundary_f1_per_class(preds, target, 6, tolerance), expected)


def test_boundary_f1_rejects_a_tolerance_that_is_not_positive() -> None:
    with pytest.raises(ConfigError, match="--bf-tolerance\) 0"):
        BoundaryF1(3, tolerance=0)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_boundary_f1_averages_over_the_images_that_score_a_class(batch_size: int) -> None:
    # image 2 is uniform class 0, predicted right: class 0 scores 1 there, class 1 is not scored
    target = torch.from_numpy(np.stack([BF_TARGET, np.zeros_like(BF_TARGET)]))
    preds = torch.from_numpy(np.stack([BF_PRED, np.zeros_like(BF_PRED)]))
    metric = BoundaryF1(3, tolerance=1.5)
    for p, t in zip(preds.split(batch_size), target.split(batch_size)):
        metric.update(p, t)
    per_class = metric.per_class()
    assert per_class[:2].tolist() == pytest.approx([(0.75 + 1.0) / 2, 2 / 3])
    assert math.isnan(per_class[2])
    assert metric.compute().item() == pytest.approx(((0.75 + 1.0) / 2 + 2 / 3) / 2)


def test_metric_states_are_sums_so_processes_can_be_merged() -> None:
    # under DDP torchmetrics reduces each state with its dist_reduce_fx; merge_state applies the
    # same reductions, so two "processes" merged must equal one process that saw everything
    preds, target = _random_split(n=6, seed=3)
    for make in (lambda: PerImageMIoU(NUM_CLASSES), lambda: BoundaryF1(NUM_CLASSES, tolerance=2.0)):
        whole, first, second = make(), make(), make()
        whole.update(preds, target)
        first.update(preds[:4], target[:4])
        second.update(preds[4:], target[4:])
        first.merge_state(second)
        assert first.compute().item() == pytest.approx(whole.compute().item())
