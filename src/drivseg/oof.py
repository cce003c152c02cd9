"""Out-of-fold (OOF) predictions of a cross-validation experiment and the scores made from them.

Each fold's best checkpoint predicts the images its fold held out, at the label resolution:
``RUN/oof/<stem>.png`` (palette PNG of class ids) and, when asked, ``RUN/oof_probs/<stem>.npz``
(``probs``: (C, H, W) float16 softmax probabilities). OOF scores come from ONE confusion matrix over
every OOF pixel, so a fold with more (or larger) images weighs more, exactly as in one big
validation set. Splits outside the pool are scored by the K fold models together, their
probabilities averaged as ``eval.py --ckpt fold-0 ... --ckpt fold-K`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from drivseg.data.dataset import SegmentationDataset, pad_collate
from drivseg.data.source import DatasetSource, Pair
from drivseg.data.transforms import eval_transform, to_unit_float
from drivseg.errors import ConfigError, DataError
from drivseg.evaluation import ConfusionMatrix
from drivseg.folds import FoldRow, listing, oof_names
from drivseg.inference import member_from_checkpoint, predict_probs, resize
from drivseg.masks import read_index_mask_png, save_index_mask
from drivseg.module import class_ids


def fold_checkpoint(fold_dir: Path) -> Path:
    """The best checkpoint of a fold's run directory (the folder may have moved since training)."""
    best = fold_dir / "checkpoints" / "best.ckpt"
    if best.is_file():
        return best
    results = fold_dir / "results.json"
    recorded = json.loads(results.read_text()).get("best_checkpoint") if results.is_file() else None
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    raise ConfigError(f"fold run {fold_dir} has no checkpoints/best.ckpt; train the fold again (cv.py --fold N --overwrite)")


def loader(pairs: Sequence[Pair], source: DatasetSource, indices: Sequence[int], num_workers: int) -> DataLoader:
    """One image per batch at its own size (uint8), with its train-id mask."""
    dataset = Subset(SegmentationDataset(list(pairs), source, eval_transform()), list(indices))
    return DataLoader(dataset, batch_size=1, num_workers=num_workers, collate_fn=pad_collate)


def _check_classes(cfg: dict, source: DatasetSource, checkpoint: Path) -> None:
    if list(cfg["class_names"]) != list(source.label_spec.class_names):
        raise ConfigError(f"checkpoint {checkpoint} predicts {cfg['class_names'][:4]}... but --data {source.name} "
                          f"has {list(source.label_spec.class_names)[:4]}...; folds and data must match")


def _save_atomic_png(mask: np.ndarray, source: DatasetSource, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    save_index_mask(mask, source.label_spec, tmp)
    tmp.replace(path)  # a killed run never leaves half a mask that later passes for a prediction


def _save_atomic_npz(probs: np.ndarray, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, probs=probs)  # uncompressed: ensemble.py reads every file once per greedy step
    tmp.replace(path)


@torch.no_grad()
def predict_heldout(
    checkpoint: Path,
    pairs: Sequence[Pair],
    names: Sequence[str],
    source: DatasetSource,
    mask_dir: Path,
    probs_dir: Optional[Path] = None,
    device: torch.device = torch.device("cpu"),
    num_workers: int = 0,
    fresh: bool = False,
) -> int:
    """Predict ``pairs`` (a fold's held-out images) with ``checkpoint``: ``mask_dir/<name>.png`` and,
    with ``probs_dir``, ``probs_dir/<name>.npz``. Only files not there yet, unless ``fresh``.
    Returns how many images were predicted."""
    mask_dir.mkdir(parents=True, exist_ok=True)
    if probs_dir is not None:
        probs_dir.mkdir(parents=True, exist_ok=True)

    def needed(name: str) -> bool:
        return fresh or not (mask_dir / f"{name}.png").is_file() or (
            probs_dir is not None and not (probs_dir / f"{name}.npz").is_file())

    todo = [i for i, name in enumerate(names) if needed(name)]
    if not todo:
        return 0
    model, cfg = member_from_checkpoint(checkpoint)
    _check_classes(cfg, source, checkpoint)
    model.to(device)
    for i, batch in zip(todo, loader(pairs, source, todo, num_workers)):
        images = to_unit_float(batch["image"].to(device))  # (1, 3, H, W) in [0, 1]
        probs = resize(predict_probs(model, images), batch["mask"].shape[-2:])[0]  # (C, H, W) at the label size
        _save_atomic_png(class_ids(probs, dim=0).byte().cpu().numpy(), source, mask_dir / f"{names[i]}.png")
        if probs_dir is not None:
            _save_atomic_npz(probs.cpu().numpy().astype(np.float16), probs_dir / f"{names[i]}.npz")
    return len(todo)


def true_mask(source: DatasetSource, path: Path) -> np.ndarray:
    """The train-id ground truth (H, W) uint8 of a mask file (255 = void)."""
    try:
        return source.label_spec.encode(source.read_mask(path))
    except ValueError as err:
        raise DataError(f"mask {path} {err}; is --data {source.name} the right dataset?") from None


def oof_matrix(rows: Sequence[FoldRow], source: DatasetSource, root: Path, mask_dir: Path) -> np.ndarray:
    """One confusion matrix (C, C) over every OOF pixel: OOF masks against the ground truth."""
    names = oof_names(rows)
    missing = [f"{names[r.image]}.png (fold {r.fold})" for r in rows if not (mask_dir / f"{names[r.image]}.png").is_file()]
    if missing:
        raise DataError(f"{mask_dir} lacks {len(missing)} OOF masks: {listing(missing)}; "
                        "run cv.py again for those folds (it predicts missing OOF masks)")
    cm = ConfusionMatrix(source.label_spec.num_classes)
    for r in rows:
        pred = read_index_mask_png(mask_dir / f"{names[r.image]}.png")
        truth = true_mask(source, Path(root) / r.mask)
        if pred.shape != truth.shape:
            raise DataError(f"OOF mask {mask_dir / names[r.image]}.png is {pred.shape} but {r.mask} is "
                            f"{truth.shape}; delete it and run cv.py again to predict it")
        cm.update(torch.from_numpy(pred)[None], torch.from_numpy(truth)[None])
    return cm.matrix


@torch.no_grad()
def fold_ensemble_matrices(
    checkpoints: Sequence[Path],
    pairs: Sequence[Pair],
    source: DatasetSource,
    device: torch.device = torch.device("cpu"),
    num_workers: int = 0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Confusion matrices on ``pairs`` of the K-fold ensemble (equal-weight mean of the folds'
    probabilities, summed in the order ``drivseg.inference.Ensemble`` sums them) and of each fold."""
    members = []
    for path in checkpoints:
        member, cfg = member_from_checkpoint(path)
        _check_classes(cfg, source, path)
        members.append(member.to(device))
    c = source.label_spec.num_classes
    weight = 1.0 / len(members)
    ensemble, singles = ConfusionMatrix(c), [ConfusionMatrix(c) for _ in members]
    for batch in loader(pairs, source, range(len(pairs)), num_workers):
        images, masks = to_unit_float(batch["image"].to(device)), batch["mask"]
        total = None
        for member, cm in zip(members, singles):
            probs = predict_probs(member, images)
            cm.update(class_ids(resize(probs, masks.shape[-2:])).cpu(), masks)
            total = weight * probs if total is None else total + weight * probs
        ensemble.update(class_ids(resize(total, masks.shape[-2:])).cpu(), masks)
    return ensemble.matrix, [cm.matrix for cm in singles]


def count_parameters(checkpoint: Path) -> int:
    """Parameters of the network in a checkpoint (the leaderboard's size column)."""
    from drivseg.checkpoint import load_module

    return int(sum(p.numel() for p in load_module(checkpoint).net.parameters()))


def flat_scores(prefix: str, result: dict) -> dict:
    """``<prefix>/mIoU``, ``<prefix>/pixel_acc``, ``<prefix>/IoU/<class>`` from ``evaluation.scores``."""
    out = {f"{prefix}/mIoU": result["mIoU"], f"{prefix}/pixel_acc": result["pixel_acc"]}
    return out | {f"{prefix}/IoU/{name}": value for name, value in result["IoU"].items()}


def outside_splits(source: DatasetSource, root: Path, pool: Sequence[str]) -> list[str]:
    """The dataset's splits that are on disk and not in the pool (val with ``--cv-pool train``, test)."""
    return [s for s in source.splits if s not in pool
            and not (s in source.optional_splits and not source.has_split(root, s))]


def score_experiment(
    rows: Sequence[FoldRow],
    source: DatasetSource,
    root: Path,
    exp_dir: Path,
    device: torch.device = torch.device("cpu"),
    num_workers: int = 0,
) -> dict:
    """The scores of a finished experiment: OOF (one confusion matrix), each fold's own val score,
    and every split outside the pool scored by the K-fold ensemble and by each fold alone.
    Writes ``oof_confusion.csv`` and ``<split>_confusion.csv`` into ``exp_dir``."""
    from drivseg.evaluation import scores, write_confusion_csv
    from drivseg.folds import check_matches, fold_count, pool_name

    names = list(source.label_spec.class_names)
    count = fold_count(rows)
    matrix = oof_matrix(rows, source, root, exp_dir / "oof")
    write_confusion_csv(matrix, names, exp_dir / "oof_confusion.csv")
    out = flat_scores("oof", scores(matrix, names))
    walls, train_seconds, fold_mious = [], [], []
    for k in range(count):
        fold_dir = exp_dir / f"fold-{k}"
        res = json.loads((fold_dir / "results.json").read_text())
        info = json.loads((fold_dir / "cv_fold.json").read_text()) if (fold_dir / "cv_fold.json").is_file() else {}
        fold_mious.append(res["val/mIoU"])
        train_seconds.append(res.get("train_seconds") or 0.0)
        walls.append(info.get("wall_seconds"))
        out |= {f"fold_{k}/val/mIoU": res["val/mIoU"], f"fold_{k}/epochs": res.get("epochs"),
                f"fold_{k}/train_seconds": res.get("train_seconds"), f"fold_{k}/wall_seconds": info.get("wall_seconds"),
                f"fold_{k}/images": sum(r.fold == k for r in rows)}  # fmt: skip
    out["folds/mIoU_mean"] = float(np.mean(fold_mious))
    out["folds/mIoU_std"] = float(np.std(fold_mious))  # population std over the K folds
    pool = check_matches(rows, source, root, exp_dir / "folds.csv")
    checkpoints = [fold_checkpoint(exp_dir / f"fold-{k}") for k in range(count)]
    splits = outside_splits(source, root, pool)
    for split in splits:
        ensemble, singles = fold_ensemble_matrices(checkpoints, source.find_pairs(root, split), source, device, num_workers)
        write_confusion_csv(ensemble, names, exp_dir / f"{split}_confusion.csv")
        out |= flat_scores(split, scores(ensemble, names))
        single = [scores(m, names)["mIoU"] for m in singles]
        out |= {f"{split}/fold_{k}/mIoU": v for k, v in enumerate(single)}
        out |= {f"{split}/single_mIoU_mean": float(np.mean(single)), f"{split}/single_mIoU_best": float(np.max(single))}
    return out | {
        "folds": count, "cv_pool": pool_name(pool), "images": len(rows), "groups": len({r.group for r in rows}),
        "scored_splits": splits, "class_names": names, "checkpoints": [str(c) for c in checkpoints],
        "parameters": count_parameters(checkpoints[0]), "train_seconds": round(float(sum(train_seconds)), 2),
        "wall_seconds": round(float(sum(walls)), 2) if all(w is not None for w in walls) else None,
    }  # fmt: skip


def results_table(results: dict) -> str:
    """Per-class IoU (OOF, then each scored split's K-fold ensemble), then the folds, in percent."""
    names, splits, count = results["class_names"], results["scored_splits"], results["folds"]

    def pct(value: Optional[float]) -> str:
        return "   n/a" if value is None else f"{100 * value:6.2f}"

    width = max(len(n) for n in [*names, "pixel accuracy"])
    columns = ["OOF", *(f"{s} ({count}-fold ens.)" for s in splits)]
    prefixes = ["oof", *splits]
    lines = [f"{'class':<{width}}  " + "  ".join(f"{c:>8}" for c in columns) + "   IoU (%)"]
    lines.append("-" * len(lines[0]))
    for name in names:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{pct(results.get(f'{p}/IoU/{name}')):>8}" for p in prefixes))
    lines.append("-" * len(lines[0]))
    for label, key in (("mIoU", "mIoU"), ("pixel accuracy", "pixel_acc")):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{pct(results.get(f'{p}/{key}')):>8}" for p in prefixes))
    lines += ["", f"{'fold':>4} {'images':>6} {'held-out':>8} " + " ".join(f"{s + ' mIoU':>10}" for s in splits)
              + f" {'epochs':>6} {'train s':>8} {'wall s':>8}"]
    for k in range(count):
        wall = results.get(f"fold_{k}/wall_seconds")
        lines.append(f"{k:>4} {results[f'fold_{k}/images']:>6} {pct(results[f'fold_{k}/val/mIoU']):>8} "
                     + " ".join(f"{pct(results.get(f'{s}/fold_{k}/mIoU')):>10}" for s in splits)
                     + f" {results.get(f'fold_{k}/epochs') or 0:>6} {results.get(f'fold_{k}/train_seconds') or 0:>8.0f}"
                     + f" {'?' if wall is None else f'{wall:.0f}':>8}")
    lines.append(f"folds: held-out mIoU {pct(results['folds/mIoU_mean']).strip()} ± {100 * results['folds/mIoU_std']:.2f} "
                 f"(mean ± std over {count} folds); OOF mIoU {pct(results['oof/mIoU']).strip()} "
                 "(one confusion matrix over every OOF pixel)")
    return "\n".join(lines)
