"""OOF-chosen ensembles: greedy weights (noise gets none, identical members change nothing), TTA
views, the eval.py command, and experiments on different folds refused."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch
import torch.nn as nn

import cv
import ensemble as ensemble_script
from drivseg.ensemble import (
    MemoryStore,
    choose_tta,
    greedy_select,
    load_experiments,
    score_weightings,
    tta_configs,
    tta_flags,
)
from drivseg.errors import ConfigError
from drivseg.folds import FoldRow, write_folds
from drivseg.inference import Ensemble, InferenceSettings, ModelMember, predict_probs, predict_views

from tests.conftest import write_segnet_dataset
from tests.test_cv import TINY, one_thread

C = 5


def blocky_targets(rng: np.random.Generator, n: int, size: int = 24) -> list[np.ndarray]:
    return [np.kron(rng.integers(0, C, (size // 4, size // 4)), np.ones((4, 4), dtype=np.int64)).astype(np.uint8)
            for _ in range(n)]


def noisy_member(rng: np.random.Generator, targets: list[np.ndarray], wrong: float) -> list[np.ndarray]:
    """Probabilities that are right except on a ``wrong`` share of pixels, less confident where wrong
    (as a calibrated model is), so that averaging two such members helps."""
    out = []
    for t in targets:
        labels = np.where(rng.random(t.shape) < wrong, rng.integers(0, C, t.shape), t)
        confidence = np.where(labels == t, 0.7, 0.4)[None]
        probs = (confidence * np.eye(C)[labels].transpose(2, 0, 1)
                 + (1 - confidence) * rng.dirichlet(np.ones(C), t.shape).transpose(2, 0, 1))
        out.append(probs.astype(np.float32))
    return out


def miou_by_hand(pred: list[np.ndarray], targets: list[np.ndarray]) -> float:
    cm = np.zeros((C, C), dtype=np.int64)
    for p, t in zip(pred, targets):
        cm += np.bincount(t.ravel().astype(np.int64) * C + p.ravel(), minlength=C * C).reshape(C, C)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    return float((tp[union > 0] / union[union > 0]).mean())


def test_greedy_selection_gives_a_noise_member_weight_zero() -> None:
    rng = np.random.default_rng(0)
    targets = blocky_targets(rng, 8)
    good_a, good_b = noisy_member(rng, targets, 0.3), noisy_member(rng, targets, 0.4)
    noise = [rng.dirichlet(np.ones(C), t.shape).transpose(2, 0, 1).astype(np.float32) for t in targets]
    store = MemoryStore([good_a, noise, good_b], targets)
    counts, history = greedy_select(store, 3)
    assert counts[1] == 0 and counts[0] > 0 and counts[2] > 0
    scores = [s for _, s in history]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)  # each step strictly better
    singles = score_weightings(store, np.eye(3))
    assert scores[-1] > max(singles) and singles[1] < 0.3 < min(singles[0], singles[2])


def test_score_weightings_is_the_argmax_of_the_weighted_mean() -> None:
    rng = np.random.default_rng(1)
    targets = blocky_targets(rng, 4)
    a, b = noisy_member(rng, targets, 0.5), noisy_member(rng, targets, 0.5)
    store = MemoryStore([a, b], targets)
    weights = np.array([[3.0, 1.0], [1.0, 0.0]])
    expected = [miou_by_hand([(0.75 * x + 0.25 * y).argmax(0) for x, y in zip(a, b)], targets),
                miou_by_hand([x.argmax(0) for x in a], targets)]
    assert score_weightings(store, weights) == pytest.approx(expected, abs=1e-12)


@pytest.mark.usefixtures("one_torch_thread")
def test_an_ensemble_of_identical_members_equals_one_member() -> None:
    rng = np.random.default_rng(2)
    targets = blocky_targets(rng, 4)
    member = noisy_member(rng, targets, 0.5)
    store = MemoryStore([member, member], targets)
    alone, pair, mixed = score_weightings(store, np.array([[1.0, 0.0], [1.0, 1.0], [0.3, 0.7]]))
    assert alone == pair == mixed
    counts, history = greedy_select(store, 2)
    assert list(counts) == [1, 0] and history == [(0, alone)]  # a copy never helps, so it is never added
    torch.manual_seed(0)
    net = ModelMember(nn.Conv2d(3, C, 3, padding=1).eval(), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    images = torch.rand(2, 3, 16, 20)
    assert torch.equal(Ensemble([net, net])(images), net(images))
    torch.testing.assert_close(Ensemble([net, net], [0.2, 0.8])(images), net(images), atol=1e-6, rtol=0)


@pytest.mark.usefixtures("one_torch_thread")
def test_per_view_probabilities_average_to_eval_tta() -> None:
    torch.manual_seed(0)
    net = ModelMember(nn.Conv2d(3, C, 3, padding=1).eval(), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    images = torch.rand(1, 3, 24, 32)
    settings = InferenceSettings(tta="ms", scales=(0.75, 1.0, 1.5))
    views = predict_views(net, images, settings.views())
    torch.testing.assert_close(torch.stack(views).mean(0), predict_probs(net, images, settings), atol=1e-6, rtol=0)


def test_tta_views_are_kept_only_while_they_pay() -> None:
    scales = (0.75, 1.0, 1.25)
    assert len(tta_configs(scales)) == 8  # none + 7 non-empty subsets
    scores = {config: 0.50 for config in tta_configs(scales)}
    scores |= {(1.0,): 0.52, (1.0, 1.25): 0.535, (0.75, 1.0): 0.525, (0.75, 1.0, 1.25): 0.5355}
    choice, path = choose_tta(scores, scales, min_gain=0.001)
    assert choice == (1.0, 1.25)  # flip, then 1.25; 0.75 adds only 0.0005
    assert [(c, k) for c, _, k in path] == [((), True), ((1.0,), True), ((1.0, 1.25), True), ((0.75, 1.0, 1.25), False)]
    assert choose_tta({c: 0.5 for c in tta_configs(scales)}, scales, 0.001)[0] == ()  # nothing pays: no TTA
    assert tta_flags(()) == [] and tta_flags((1.0,)) == ["--tta", "flip"]
    assert tta_flags((1.0, 1.25)) == ["--tta", "ms", "--scales", "1,1.25"]


def write_fake_experiment(path, rows, classes=("a", "b")) -> None:
    path.mkdir(parents=True)
    write_folds(path / "folds.csv", rows)
    (path / "cv_results.json").write_text(json.dumps({"class_names": list(classes), "config": {}}))


def test_experiments_on_different_folds_are_refused(tmp_path) -> None:
    rows = [FoldRow(f"train/s_{i}.png", f"trainannot/s_{i}.png", f"g{i}", i % 2) for i in range(6)]
    write_fake_experiment(tmp_path / "a", rows)
    write_fake_experiment(tmp_path / "b", [*rows[:-1], FoldRow(rows[-1].image, rows[-1].mask, "g5", 0)])
    write_fake_experiment(tmp_path / "c", rows)
    assert len(load_experiments([tmp_path / "a", tmp_path / "c"])) == 2
    with pytest.raises(ConfigError, match=r"different folds \(1 images differ: train/s_5.png\).*--folds-file"):
        load_experiments([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="no cv_results.json"):
        load_experiments([tmp_path / "a", tmp_path])


@pytest.fixture(scope="module")
def two_experiments(tmp_path_factory):
    """Two tiny CV experiments on the same folds (different learning rates); only the first saved
    its OOF probabilities."""
    base = tmp_path_factory.mktemp("ens")
    root = write_segnet_dataset(base / "camvid", {"train": 12, "val": 6, "test": 4})
    common = [*TINY, "--data-root", str(root), "--folds", "3", "--epochs", "2"]
    assert one_thread(lambda: cv.main([*common, "--save-oof-probs", "--output-dir", str(base / "a")])) == 0
    assert one_thread(lambda: cv.main([*common, "--lr", "0.01", "--folds-file", str(base / "a" / "folds.csv"),
                                       "--output-dir", str(base / "b")])) == 0
    return root, base / "a", base / "b"


def test_ensemble_script_chooses_on_oof_and_writes_a_runnable_eval_command(two_experiments, tmp_path, capsys) -> None:
    import eval as eval_script

    root, a, b = two_experiments
    out = tmp_path / "ensemble.json"
    argv = [str(a), str(b), "--tta", "--scales", "1.0,1.5", "--num-workers", "0", "--output", str(out)]
    assert one_thread(lambda: ensemble_script.main(argv)) == 0
    printed = capsys.readouterr().out
    assert "plain mean" in printed and "chosen" in printed and "python eval.py --ckpt" in printed
    report = json.loads(out.read_text())
    assert sorted(p.stem for p in (b / "oof_probs").glob("*.npz")) == sorted(p.stem for p in (a / "oof").glob("*.png"))
    singles = [m["oof_mIoU"] for m in report["members"]]
    results = [json.loads((d / "cv_results.json").read_text())["oof/mIoU"] for d in (a, b)]
    assert singles == pytest.approx(results, abs=2e-3)  # float16 probabilities vs the saved masks
    assert report["chosen_oof_mIoU"] >= max(singles + [report["plain_mean_oof_mIoU"]]) - 1e-12
    assert report["tta_table"]["none"] == pytest.approx(report["chosen_oof_mIoU"], abs=2e-3)
    assert set(report["tta_table"]) == {"none", "flip", "ms 1.5", "ms 1,1.5"}
    assert report["tta_oof_mIoU"] >= report["tta_table"]["none"]  # a view is only kept when it pays

    command = shlex.split(report["eval_command"])
    chosen = [m for m in report["members"] if m["count"] > 0]
    assert command.count("--ckpt") == 3 * len(chosen) and command[command.index("--split") + 1] == "test"
    if "--weights" in command:
        weights = command[command.index("--weights") + 1].split(",")
        assert weights == [str(m["count"]) for m in chosen for _ in range(3)]
    eval_out = tmp_path / "eval.json"
    assert one_thread(lambda: eval_script.main([*command[2:], "--num-workers", "0", "--no-progress",
                                                "--output", str(eval_out)])) == 0
    assert json.loads(eval_out.read_text())["checkpoints"] == [command[i + 1] for i, a in enumerate(command) if a == "--ckpt"]
