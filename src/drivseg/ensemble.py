"""Ensembles chosen on out-of-fold predictions: greedy member weights, then the TTA views that pay.

Members are cross-validation experiments (cv.py folders) on identical folds. Every pool image has
one OOF probability map per experiment (``oof_probs/``), so any weighting of the experiments has an
OOF mIoU. Weights come from greedy forward selection with replacement (Caruana et al., "Ensemble
selection from libraries of models", ICML 2004): start empty, add the member that raises the OOF
mIoU most (a member may be added again, which raises its weight), stop when no addition helps.
With TTA, every combination of views is scored in one pass over the fold models, and views are
added greedily while each one raises the OOF mIoU by more than ``min_gain``. The result is an
``eval.py`` command: every fold checkpoint of the chosen experiments, with integer ``--weights``.
"""

from __future__ import annotations

import itertools
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.data.source import DatasetSource
from drivseg.data.transforms import to_unit_float
from drivseg.errors import ConfigError, DataError
from drivseg.evaluation import iou_per_class
from drivseg.folds import FoldRow, fold_count, listing, oof_names, read_folds
from drivseg.inference import member_from_checkpoint, predict_views, resize
from drivseg.module import class_ids
from drivseg.oof import fold_checkpoint, loader, predict_heldout, true_mask

MAX_TTA_SCALES = 8  # every subset of the scales is scored: 2^8 combinations at most

# a TTA configuration: () = no TTA, (1.0,) = flip, (0.75, 1.0, ...) = ms with those scales
TTAConfig = tuple[float, ...]


@dataclass
class Experiment:
    """One ensemble member: a finished cv.py experiment."""

    dir: Path
    results: dict
    rows: list[FoldRow]

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def probs_dir(self) -> Path:
        return self.dir / "oof_probs"

    def checkpoints(self) -> list[Path]:
        return [fold_checkpoint(self.dir / f"fold-{k}") for k in range(fold_count(self.rows))]


def load_experiments(dirs: Sequence[Path]) -> list[Experiment]:
    """Read every experiment; they must be collected and share their folds exactly."""
    experiments = []
    for d in dirs:
        d = Path(d)
        if not (d / "cv_results.json").is_file():
            raise ConfigError(f"{d} has no cv_results.json: ensemble members are cv.py experiments whose folds "
                              "have all finished (python cv.py ... --collect)")
        experiments.append(Experiment(d, json.loads((d / "cv_results.json").read_text()), read_folds(d / "folds.csv")))
    if len({e.dir.resolve() for e in experiments}) < len(experiments):
        raise ConfigError("an experiment is listed twice; list each once (greedy selection weighs them itself)")
    first = {r.image: r.fold for r in experiments[0].rows}
    for e in experiments[1:]:
        other = {r.image: r.fold for r in e.rows}
        differ = sorted(i for i in set(first) | set(other) if first.get(i) != other.get(i))
        if differ:
            raise ConfigError(
                f"{e.dir} and {experiments[0].dir} have different folds ({len(differ)} images differ: "
                f"{listing(differ)}); OOF predictions only compare on identical folds: run cv.py with "
                f"--folds-file {experiments[0].dir / 'folds.csv'}")
        if e.results["class_names"] != experiments[0].results["class_names"]:
            raise ConfigError(f"{e.dir} and {experiments[0].dir} predict different classes")
    return experiments


class OOFStore:
    """The OOF probabilities of every member, one image at a time, and the ground truth."""

    def __init__(self, prob_dirs: Sequence[Path], names: Sequence[str], targets: Sequence[np.ndarray]) -> None:
        self.prob_dirs, self.names, self.targets = list(prob_dirs), list(names), list(targets)

    def __len__(self) -> int:
        return len(self.names)

    def probs(self, i: int) -> np.ndarray:
        """(M, C, H, W) float32: every member's probabilities of image ``i``."""
        out = []
        for d in self.prob_dirs:
            with np.load(d / f"{self.names[i]}.npz") as f:
                out.append(f["probs"].astype(np.float32))
        return np.stack(out)


class MemoryStore(OOFStore):
    """An ``OOFStore`` over arrays already in memory: ``probs[m][i]`` (C, H, W)."""

    def __init__(self, probs: Sequence[Sequence[np.ndarray]], targets: Sequence[np.ndarray]) -> None:
        super().__init__([], [str(i) for i in range(len(targets))], targets)
        self.arrays = probs

    def probs(self, i: int) -> np.ndarray:
        return np.stack([np.asarray(member[i], dtype=np.float32) for member in self.arrays])


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) pixel counts ``[true, predicted]``; target 255 is skipped."""
    valid = target != IGNORE_INDEX
    index = target[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(matrix: np.ndarray) -> float:
    """Mean IoU over the measured classes (as ``drivseg.evaluation.scores``); 0 when none is."""
    iou = iou_per_class(matrix)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0


def score_weightings(store: OOFStore, weightings: np.ndarray) -> list[float]:
    """OOF mIoU of each row of ``weightings`` (Q, M): the argmax of the weighted mean of the
    members' probabilities, one confusion matrix over all images."""
    weightings = np.asarray(weightings, dtype=np.float64)
    weightings = weightings / weightings.sum(1, keepdims=True)
    matrices = None
    for i in range(len(store)):
        probs = store.probs(i)  # (M, C, H, W)
        if matrices is None:
            matrices = np.zeros((len(weightings), probs.shape[1], probs.shape[1]), dtype=np.int64)
        blended = np.tensordot(weightings.astype(np.float32), probs, axes=1)  # (Q, C, H, W)
        for q, pred in enumerate(class_ids(torch.from_numpy(blended)).numpy()):
            matrices[q] += confusion(pred, store.targets[i], probs.shape[1])
    return [miou(m) for m in matrices]


def greedy_select(store: OOFStore, members: int, max_steps: int = 25) -> tuple[np.ndarray, list[tuple[int, float]]]:
    """Caruana forward selection with replacement: (counts per member, [(member added, OOF mIoU)])."""
    counts = np.zeros(members, dtype=np.int64)
    history: list[tuple[int, float]] = []
    current = -np.inf
    for _ in range(max_steps):
        candidates = counts + np.eye(members, dtype=np.int64)
        scores = score_weightings(store, candidates)
        best = int(np.argmax(scores))  # ties: the earlier member
        if scores[best] <= current:
            break
        counts, current = candidates[best], scores[best]
        history.append((best, current))
    return counts, history


def tta_configs(scales: Sequence[float]) -> list[TTAConfig]:
    """No TTA, then every non-empty subset of ``scales`` (each scale with its mirror)."""
    subsets = [c for n in range(1, len(scales) + 1) for c in itertools.combinations(scales, n)]
    return [(), *subsets]


@torch.no_grad()
def tta_scores(
    experiments: Sequence[Experiment],
    weights: Sequence[float],
    source: DatasetSource,
    root: Path,
    scales: Sequence[float],
    device: torch.device = torch.device("cpu"),
    num_workers: int = 0,
) -> dict[TTAConfig, float]:
    """OOF mIoU of the weighted ensemble under every TTA configuration of ``tta_configs(scales)``:
    each view is predicted once per image and model; every combination of views is scored."""
    if len(scales) > MAX_TTA_SCALES:
        raise ConfigError(f"--scales has {len(scales)} values; at most {MAX_TTA_SCALES} (every subset is scored)")
    rows = experiments[0].rows
    views = sorted({(1.0, False), *((s, f) for s in scales for f in (False, True))})
    configs = tta_configs(scales)
    c = source.label_spec.num_classes
    matrices = {config: np.zeros((c, c), dtype=np.int64) for config in configs}
    checkpoints = [e.checkpoints() for e in experiments]
    for k in range(fold_count(rows)):
        models = [member_from_checkpoint(ckpts[k])[0].to(device) for ckpts in checkpoints]
        held = [r for r in rows if r.fold == k]
        pairs = [(root / r.image, root / r.mask) for r in held]
        for batch in loader(pairs, source, range(len(pairs)), num_workers):
            images, target = to_unit_float(batch["image"].to(device)), batch["mask"][0].numpy()
            mixed = None  # view -> weighted mean over members, (C, H, W) at the label size
            for model, weight in zip(models, weights):
                probs = predict_views(model, images, views)
                probs = [weight * resize(p, target.shape)[0] for p in probs]
                mixed = probs if mixed is None else [a + b for a, b in zip(mixed, probs)]
            by_view = dict(zip(views, mixed))
            pair = {s: by_view[(s, False)] + by_view[(s, True)] for s in scales}
            for config in configs:
                total = by_view[(1.0, False)] if not config else sum(pair[s] for s in config)
                pred = class_ids(total, dim=0).cpu().numpy()
                matrices[config] += confusion(pred, target, c)
    return {config: miou(m) for config, m in matrices.items()}


def choose_tta(scores: dict[TTAConfig, float], scales: Sequence[float], min_gain: float) -> tuple[TTAConfig, list]:
    """Start without TTA and add one scale (with its mirror) at a time, the best first, while each
    raises the OOF mIoU by more than ``min_gain``. Returns the choice and [(config, score, kept)]."""
    current: TTAConfig = ()
    path = [((), scores[()], True)]
    while len(current) < len(scales):
        candidates = [tuple(s for s in scales if s in current or s == extra) for extra in scales if extra not in current]
        best = max(candidates, key=lambda config: scores[config])
        kept = scores[best] - scores[current] > min_gain
        path.append((best, scores[best], kept))
        if not kept:
            break
        current = best
    return current, path


def tta_label(config: TTAConfig) -> str:
    if not config:
        return "none"
    return "flip" if config == (1.0,) else "ms " + ",".join(f"{s:g}" for s in config)


def tta_flags(config: TTAConfig) -> list[str]:
    """eval.py's flags for a configuration: flip is ms at scale 1 alone."""
    if not config:
        return []
    return ["--tta", "flip"] if config == (1.0,) else ["--tta", "ms", "--scales", ",".join(f"{s:g}" for s in config)]


def eval_command(experiments: Sequence[Experiment], counts: Sequence[int], tta: TTAConfig, data: str,
                 root: Path, split: str) -> str:
    """The eval.py command scoring the ensemble: every fold checkpoint, weighted by its member's count."""
    args = ["python", "eval.py"]
    weights = []
    for e, count in zip(experiments, counts):
        if count > 0:
            for ckpt in e.checkpoints():
                args += ["--ckpt", str(ckpt)]
                weights.append(str(int(count)))
    if len(set(weights)) > 1:
        args += ["--weights", ",".join(weights)]
    args += [*tta_flags(tta), "--data", data, "--data-root", str(root), "--split", split]
    return shlex.join(args)


def oof_store(experiments: Sequence[Experiment], source: DatasetSource, root: Path,
              device: torch.device, num_workers: int) -> OOFStore:
    """The members' OOF probabilities; predicted from the fold checkpoints where cv.py did not save them."""
    rows = experiments[0].rows
    names = oof_names(rows)
    for e in experiments:
        for k in range(fold_count(rows)):
            held = [r for r in rows if r.fold == k]
            missing = [r for r in held if not (e.probs_dir / f"{names[r.image]}.npz").is_file()]
            if missing:
                print(f"{e.name} fold {k}: predicting {len(missing)} OOF probability maps "
                      "(cv.py --save-oof-probs writes them during training)")
                pairs = [(root / r.image, root / r.mask) for r in missing]
                predict_heldout(fold_checkpoint(e.dir / f"fold-{k}"), pairs, [names[r.image] for r in missing],
                                source, e.dir / "oof", e.probs_dir, device, num_workers)
    targets = [true_mask(source, root / r.mask) for r in rows]
    store = OOFStore([e.probs_dir for e in experiments], [names[r.image] for r in rows], targets)
    first = store.probs(0)
    if first.shape[-2:] != targets[0].shape:
        raise DataError(f"OOF probabilities of {rows[0].image} are {first.shape[-2:]} but its mask is "
                        f"{targets[0].shape}; delete the oof_probs folders and run ensemble.py again")
    return store


def default_output(experiments: Sequence[Experiment]) -> Path:
    return experiments[0].dir.parent / "ensemble.json"


def summary_lines(experiments: Sequence[Experiment], singles: Sequence[float], mean: float,
                  counts: Sequence[int], chosen: float) -> list[str]:
    """The printed comparison: each member, the plain mean, the chosen weights."""
    width = max(len(name) for name in [*(e.name for e in experiments), "plain mean"])
    total = max(int(sum(counts)), 1)
    lines = [f"{'member':<{width}}  OOF mIoU (%)  weight"]
    for e, score, count in zip(experiments, singles, counts):
        lines.append(f"{e.name:<{width}}  {100 * score:12.2f}  {count}/{total}")
    lines.append(f"{'plain mean':<{width}}  {100 * mean:12.2f}")
    lines.append(f"{'chosen':<{width}}  {100 * chosen:12.2f}")
    return lines


def choose_ensemble(
    experiments: Sequence[Experiment], source: DatasetSource, root: Path, data: str, split: str,
    tta: bool = False, scales: Sequence[float] = (), min_gain: float = 0.001, max_steps: int = 25,
    device: torch.device = torch.device("cpu"), num_workers: int = 0, output: Optional[Path] = None,
) -> dict:
    """Choose weights (and TTA views), print the comparison, write ``ensemble.json``; returns it."""
    store = oof_store(experiments, source, root, device, num_workers)
    m = len(experiments)
    singles_and_mean = score_weightings(store, np.vstack([np.eye(m), np.ones((1, m))]))
    singles, mean = singles_and_mean[:m], singles_and_mean[m]
    counts, history = greedy_select(store, m, max_steps)
    chosen = history[-1][1] if history else 0.0
    print("\n".join(summary_lines(experiments, singles, mean, counts, chosen)))
    print("greedy steps: " + ", ".join(f"+{experiments[i].name} {100 * s:.2f}" for i, s in history))
    report = {
        "members": [{"dir": str(e.dir), "oof_mIoU": s, "count": int(c), "weight": float(c / counts.sum())}
                    for e, s, c in zip(experiments, singles, counts)],
        "plain_mean_oof_mIoU": mean, "chosen_oof_mIoU": chosen,
        "history": [{"member": experiments[i].name, "oof_mIoU": s} for i, s in history],
    }  # fmt: skip
    config: TTAConfig = ()
    if tta:
        weights = counts / counts.sum()
        table = tta_scores(experiments, weights, source, root, scales, device, num_workers)
        config, path = choose_tta(table, scales, min_gain)
        print(f"TTA views (OOF mIoU of the chosen ensemble; a view is kept when it adds more than {100 * min_gain:.2f}):")
        for step, (cfg, score, kept) in enumerate(path):
            verdict = "start" if step == 0 else "kept" if kept else "not worth it: stop"
            print(f"  {tta_label(cfg):<24} {100 * score:6.2f}  {verdict}")
        report |= {"tta": tta_label(config), "tta_oof_mIoU": table[config],
                   "tta_path": [{"tta": tta_label(c), "oof_mIoU": s, "kept": k} for c, s, k in path],
                   "tta_table": {tta_label(c): s for c, s in table.items()}}  # fmt: skip
    command = eval_command(experiments, counts, config, data, root, split)
    report["eval_command"] = command
    out = output or default_output(experiments)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"score it on the {split} split:\n  {command}\nChoice in {out}")
    return report
