"""Cross-validation folds: the pool, groups that never straddle two folds, class-balanced assignment.

A folds file (``RUN/folds.csv``) has one row per pool image, ``image,mask,group,fold``, paths
relative to the data root (so the file is the same on every machine). Groups are video sequences
(``source.sequence_of``); a sequence much longer than a fold's share is cut into contiguous frame
blocks, so neighbouring frames stay together. Groups are dealt to folds greedily, largest first, each
to the fold that keeps the class pixel shares and the image counts most even (the idea of
scikit-learn's ``StratifiedGroupKFold``, with pixels instead of labels). Nothing here is random:
the same dataset gives the same file anywhere.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.data.source import DatasetSource, Pair
from drivseg.errors import ConfigError, DataError

POOLS: dict[str, tuple[str, ...]] = {"train+val": ("train", "val"), "train": ("train",)}
COLUMNS = ("image", "mask", "group", "fold")
# default block length: about this many groups per fold, enough for the greedy assignment to even
# out class shares and fold sizes
GROUPS_PER_FOLD = 4
SHOWN = 10  # files named in an error before "... and N more"


@dataclass(frozen=True)
class FoldRow:
    """One pool image: paths relative to the data root (POSIX), its group and its fold."""

    image: str
    mask: str
    group: str
    fold: int


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (folds files are shared across machines)."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()


def pool_pairs(source: DatasetSource, root: Path, pool: str) -> list[Pair]:
    """The (image, mask) pairs of the pool splits (``train+val`` or ``train``; never test)."""
    if pool not in POOLS:
        raise ConfigError(f"--cv-pool {pool!r}: expected one of {', '.join(POOLS)}")
    missing = [s for s in POOLS[pool] if s not in source.splits]
    if missing:
        raise ConfigError(f"--cv-pool {pool}: --data {source.name} has no {missing[0]} split "
                          f"(splits: {', '.join(source.splits)}); use --cv-pool train")
    return [pair for split in POOLS[pool] for pair in source.find_pairs(root, split)]


def natural_key(name: str) -> list:
    """``frame_10`` after ``frame_9``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def default_group_frames(pool_size: int, folds: int) -> int:
    """Block length so that the pool makes about ``GROUPS_PER_FOLD`` groups per fold."""
    return max(1, math.ceil(pool_size / (GROUPS_PER_FOLD * folds)))


def group_names(pairs: Sequence[Pair], source: DatasetSource, group_frames: int) -> list[str]:
    """The group of every pair: its sequence, or ``<sequence>/<block>`` when the sequence has more
    than ``group_frames`` frames (0: never cut). Blocks are contiguous in frame order and of
    near-equal length."""
    by_sequence: dict[str, list[int]] = defaultdict(list)
    for i, (image, _) in enumerate(pairs):
        by_sequence[source.sequence_of(Path(image))].append(i)
    groups = [""] * len(pairs)
    for sequence, members in by_sequence.items():
        order = sorted(members, key=lambda i: natural_key(Path(pairs[i][0]).name))
        if group_frames <= 0 or len(order) <= group_frames:
            for i in order:
                groups[i] = sequence
            continue
        blocks = np.array_split(np.array(order), math.ceil(len(order) / group_frames))
        for b, block in enumerate(blocks):
            for i in block:
                groups[int(i)] = f"{sequence}/{b:03d}"
    return groups


def class_pixel_counts(pairs: Sequence[Pair], source: DatasetSource, threads: int = 4) -> np.ndarray:
    """(N, C) int64: labelled pixels of each class in each mask (void excluded)."""
    spec = source.label_spec

    def count(mask_path: Path) -> np.ndarray:
        try:
            train_ids = spec.encode(source.read_mask(mask_path))
        except ValueError as err:
            raise DataError(f"mask {mask_path} {err}; is --data {source.name} the right dataset?") from None
        labelled = train_ids[train_ids != IGNORE_INDEX]
        return np.bincount(labelled.ravel(), minlength=spec.num_classes)[: spec.num_classes]

    with ThreadPoolExecutor(max(1, threads)) as pool:  # PNG decoding releases the GIL
        rows = list(pool.map(count, [m for _, m in pairs]))
    return np.array(rows, dtype=np.int64).reshape(len(pairs), spec.num_classes)


def fold_shares(folds_of: np.ndarray, counts: np.ndarray, folds: int) -> np.ndarray:
    """(K, C+1): each fold's share of every class's pool pixels, and (last column) of the images."""
    table = np.zeros((folds, counts.shape[1] + 1))
    for k in range(folds):
        inside = folds_of == k
        table[k, :-1] = counts[inside].sum(0)
        table[k, -1] = inside.sum()
    totals = table.sum(0)
    return np.divide(table, totals, out=np.zeros_like(table), where=totals > 0)


def imbalance(shares: np.ndarray) -> float:
    """Mean over the classes present of the spread (std across folds) of their pixel shares; 0 is
    perfect balance. The score the assignment minimises, besides even fold sizes."""
    classes = shares[:, :-1]
    present = classes.sum(0) > 0
    return float(classes[:, present].std(0).mean()) if present.any() else 0.0


def _spread(fold_total: np.ndarray, present: np.ndarray) -> float:
    """What the assignment minimises: the class share spread plus the image share spread (equal
    weights: either alone lets the other drift)."""
    classes = fold_total[:, present].std(0).mean() if present.any() else 0.0
    return float(classes + fold_total[:, -1].std())


def assign_groups(groups: Sequence[str], counts: np.ndarray, folds: int, max_rounds: int = 100) -> dict[str, int]:
    """Greedy stratified group assignment, then local search. Groups (largest class-share mass
    first) go one by one to the fold whose class shares and image share stay most even; then single
    groups are moved, and (up to ``SWAP_GROUPS`` groups) pairs swapped, while that lowers the
    spread. Deterministic."""
    names = sorted(set(groups))
    if len(names) < folds:
        raise ConfigError(f"{len(names)} groups cannot fill {folds} folds; use fewer --folds or a "
                          "smaller --group-frames (shorter frame blocks make more groups)")
    index = {name: g for g, name in enumerate(names)}
    per_group = np.zeros((len(names), counts.shape[1] + 1))
    for row, name in zip(counts, groups):
        per_group[index[name], :-1] += row
        per_group[index[name], -1] += 1
    totals = per_group.sum(0)
    shares = np.divide(per_group, totals, out=np.zeros_like(per_group), where=totals > 0)
    present = np.append(totals[:-1] > 0, False)
    fold_total = np.zeros((folds, shares.shape[1]))
    fold_of = np.zeros(len(names), dtype=np.int64)
    for g in sorted(range(len(names)), key=lambda g: (-shares[g].sum(), names[g])):
        costs = []
        for k in range(folds):
            trial = fold_total.copy()
            trial[k] += shares[g]
            costs.append((round(_spread(trial, present), 12), fold_total[k, -1], k))
        fold_of[g] = min(costs)[2]
        fold_total[fold_of[g]] += shares[g]
    _local_search(fold_of, shares, fold_total, present, max_rounds)
    return {name: int(fold_of[g]) for g, name in enumerate(names)}


SWAP_GROUPS = 300  # pair swaps cost groups^2 evaluations a round; beyond this only moves


def _local_search(fold_of: np.ndarray, shares: np.ndarray, fold_total: np.ndarray, present: np.ndarray,
                  max_rounds: int) -> None:
    """Move single groups, and swap pairs of groups, between folds while the spread drops (in place)."""
    folds = len(fold_total)
    current = _spread(fold_total, present)
    for _ in range(max_rounds):
        improved = False
        for g in range(len(fold_of)):
            a = fold_of[g]
            if (fold_of == a).sum() == 1:
                continue  # never empty a fold
            for k in range(folds):
                if k == a:
                    continue
                trial = fold_total.copy()
                trial[a] -= shares[g]
                trial[k] += shares[g]
                cost = _spread(trial, present)
                if cost < current - 1e-12:
                    fold_of[g], fold_total[:], current, improved = k, trial, cost, True
                    a = k
        if len(fold_of) <= SWAP_GROUPS:
            for g in range(len(fold_of)):
                for h in range(g + 1, len(fold_of)):
                    a, b = fold_of[g], fold_of[h]
                    if a == b:
                        continue
                    trial = fold_total.copy()
                    delta = shares[h] - shares[g]
                    trial[a] += delta
                    trial[b] -= delta
                    cost = _spread(trial, present)
                    if cost < current - 1e-12:
                        fold_of[g], fold_of[h], fold_total[:], current, improved = b, a, trial, cost, True
        if not improved:
            return


def make_folds(
    source: DatasetSource, root: Path, folds: int, pool: str = "train+val", group_frames: Optional[int] = None
) -> tuple[list[FoldRow], np.ndarray, int]:
    """Rows of a new folds file, the (N, C) class pixel counts in row order, and the block length
    used (``group_frames`` None: ``default_group_frames``)."""
    if folds < 2:
        raise ConfigError(f"--folds {folds}: cross-validation needs at least 2 folds")
    pairs = sorted(pool_pairs(source, root, pool), key=lambda p: relative(p[0], root))
    block = default_group_frames(len(pairs), folds) if group_frames is None else int(group_frames)
    groups = group_names(pairs, source, block)
    counts = class_pixel_counts(pairs, source)
    fold_of = assign_groups(groups, counts, folds)
    rows = [FoldRow(relative(i, root), relative(m, root), g, fold_of[g]) for (i, m), g in zip(pairs, groups)]
    return rows, counts, block


def write_folds(path: Path, rows: Sequence[FoldRow]) -> None:
    """Write ``image,mask,group,fold`` rows (sorted by image, ``\\n`` line ends: byte-identical everywhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in sorted(rows, key=lambda r: r.image):
            writer.writerow([r.image, r.mask, r.group, r.fold])
    tmp.replace(path)


def read_folds(path: Path) -> list[FoldRow]:
    """The rows of a folds file; a malformed file is an error naming it and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"folds file {path} does not exist; cv.py writes RUN/folds.csv")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise ConfigError(f"folds file {path}: header {header} but expected {','.join(COLUMNS)}")
        rows = []
        for line, values in enumerate(reader, start=2):
            try:
                image, mask, group, fold = values
                rows.append(FoldRow(image, mask, group, int(fold)))
            except ValueError:
                raise ConfigError(f"folds file {path} line {line}: {values} is not image,mask,group,fold") from None
    if not rows:
        raise ConfigError(f"folds file {path} has no rows")
    count = max(r.fold for r in rows) + 1
    empty = sorted(set(range(count)) - {r.fold for r in rows})
    if min(r.fold for r in rows) < 0 or empty:
        raise ConfigError(f"folds file {path}: folds must be 0..K-1 and none empty (empty: {empty})")
    seen: dict[str, int] = defaultdict(int)
    for r in rows:
        seen[r.image] += 1
    twice = sorted(i for i, n in seen.items() if n > 1)
    if twice:
        raise ConfigError(f"folds file {path} lists {len(twice)} images more than once: {listing(twice)}")
    for group in {r.group for r in rows}:
        in_folds = {r.fold for r in rows if r.group == group}
        if len(in_folds) > 1:
            raise ConfigError(f"folds file {path}: group {group} is in folds {sorted(in_folds)}; "
                              "a group must sit in one fold")
    return rows


def fold_count(rows: Sequence[FoldRow]) -> int:
    return max(r.fold for r in rows) + 1


def listing(names: Sequence[str]) -> str:
    """The first ``SHOWN`` names and how many more."""
    shown = ", ".join(names[:SHOWN])
    return shown + (f" ... and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def check_matches(rows: Sequence[FoldRow], source: DatasetSource, root: Path, where: Path) -> tuple[str, ...]:
    """The pool splits a folds file covers; an error naming the files when it does not match the
    dataset: images missing from the file, images the dataset does not have, test images."""
    by_split: dict[str, dict[str, str]] = {}
    for split in source.splits:
        if split in source.optional_splits and not source.has_split(root, split):
            continue
        by_split[split] = {relative(i, root): relative(m, root) for i, m in source.find_pairs(root, split)}
    split_of = {image: split for split, pairs in by_split.items() for image in pairs}
    listed = {r.image: r for r in rows}
    extra = sorted(i for i in listed if i not in split_of)
    outside = sorted(i for i in listed if i in split_of and split_of[i] not in POOLS["train+val"])
    pool = tuple(s for s in POOLS["train+val"] if any(split_of.get(i) == s for i in listed))
    missing = sorted(i for s in pool for i in by_split[s] if i not in listed)
    wrong_mask = sorted(i for i, r in listed.items() if i in split_of and by_split[split_of[i]][i] != r.mask)
    problems = []
    if extra:
        problems.append(f"{len(extra)} images the dataset at {root} does not have: {listing(extra)}")
    if missing:
        problems.append(f"{len(missing)} images of the {'+'.join(pool)} splits are missing from it: {listing(missing)}")
    if outside:
        problems.append(f"{len(outside)} images of splits outside any pool (test): {listing(outside)}")
    if wrong_mask:
        problems.append(f"{len(wrong_mask)} images paired with another mask than the dataset's: {listing(wrong_mask)}")
    if problems:
        raise DataError(f"folds file {where} does not match --data {source.name} at {root}: " + "; ".join(problems)
                        + ". Make new folds (delete the file) or point --data-root at the data the folds were made on")
    return pool


def pool_name(splits: Sequence[str]) -> str:
    return "+".join(splits)


def fold_split(folds_file: Path, fold: int, source: DatasetSource, root: Path) -> dict[str, list[Pair]]:
    """``{"train": pool images of the other folds, "val": fold ``fold``}`` (train.py ``--folds-file --fold``)."""
    rows = read_folds(folds_file)
    check_matches(rows, source, root, folds_file)
    count = fold_count(rows)
    if not 0 <= fold < count:
        raise ConfigError(f"--fold {fold}: {folds_file} has folds 0..{count - 1}")
    pairs = {"train": [], "val": []}
    for r in rows:
        pairs["val" if r.fold == fold else "train"].append((Path(root) / r.image, Path(root) / r.mask))
    return pairs


def oof_names(rows: Sequence[FoldRow]) -> dict[str, str]:
    """Image -> the file stem of its OOF mask / probabilities: the image's stem, or its whole
    relative path (``/`` -> ``__``) when two pool images share a stem."""
    stems = [Path(r.image).stem for r in rows]
    if len(set(stems)) == len(stems):
        return {r.image: s for r, s in zip(rows, stems)}
    return {r.image: str(Path(r.image).with_suffix("")).replace("/", "__") for r in rows}


def balance_table(rows: Sequence[FoldRow], counts: np.ndarray, class_names: Sequence[str]) -> str:
    """Per fold: images, groups and each class's share of the fold's labelled pixels (%), with the
    pool's shares on the last line, so uneven folds stand out."""
    folds_of = np.array([r.fold for r in rows])
    count = fold_count(rows)
    short = [name[:6] for name in class_names]
    lines = [f"{'fold':>5} {'images':>6} {'groups':>6}  " + " ".join(f"{s:>6}" for s in short)]

    def shares(inside: np.ndarray) -> str:
        pixels = counts[inside].sum(0).astype(np.float64)
        pct = 100 * pixels / max(pixels.sum(), 1)
        return " ".join(f"{v:6.2f}" for v in pct)

    for k in range(count):
        inside = folds_of == k
        groups = len({r.group for r in rows if r.fold == k})
        lines.append(f"{k:>5} {int(inside.sum()):>6} {groups:>6}  {shares(inside)}")
    everyone = np.ones(len(rows), dtype=bool)
    lines.append(f"{'pool':>5} {len(rows):>6} {len({r.group for r in rows}):>6}  {shares(everyone)}")
    spread = imbalance(fold_shares(folds_of, counts, count))
    lines.append(f"class share spread (mean std across folds of each class's share of its pixels): {spread:.4f}")
    return "\n".join(lines)


def plot_balance(rows: Sequence[FoldRow], counts: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Grouped bars: each fold's share of every class's pool pixels; balanced folds all sit at 1/K."""
    from matplotlib.figure import Figure  # drawing only here: folds need no matplotlib otherwise

    count = fold_count(rows)
    shares = fold_shares(np.array([r.fold for r in rows]), counts, count)
    labels = [*class_names, "images"]
    x = np.arange(len(labels))
    width = 0.8 / count
    fig = Figure(figsize=(2 + 0.7 * len(labels), 4))
    ax = fig.subplots()
    for k in range(count):
        ax.bar(x + (k - (count - 1) / 2) * width, 100 * shares[k], width, label=f"fold {k}")
    ax.axhline(100 / count, color="black", linestyle="--", linewidth=1, label=f"1/{count}")
    ax.set_xticks(x, labels, rotation=45, ha="right")
    ax.set_ylabel("share of the pool's pixels (%)")
    ax.set_title("class pixels per fold (balanced: every bar at the dashed line)")
    ax.legend(fontsize=7, ncol=min(count + 1, 6))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
