"""``train.py --check-data``: find everything wrong with a dataset before training on it.

Reports per split: image and mask counts, unpaired files, image/mask size mismatches, masks that
are colour images where index masks are expected, mask values outside the label spec (with the
files they occur in), and a class pixel histogram (printed and saved as a bar chart PNG).
Exit code 1 when anything is wrong.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from drivseg.data.label_spec import IGNORE_INDEX
from drivseg.data.source import DatasetSource
from drivseg.errors import DataError

MAX_FILES_LISTED = 5


def check_split(source: DatasetSource, root: Path, split: str) -> tuple[list[str], Optional[np.ndarray]]:
    """Problems found in one split and its class pixel counts (None when it cannot be listed)."""
    try:
        pairs = source.find_pairs(root, split)
    except DataError as err:
        return [str(err)], None
    spec = source.label_spec
    problems: list[str] = []
    counts = np.zeros(spec.num_classes + 1, dtype=np.int64)  # last bin: ignored pixels
    bad_values: dict[int, list[str]] = defaultdict(list)
    valid = np.array(sorted(spec.valid_raw_values))
    for image_path, mask_path in pairs:
        with Image.open(image_path) as im:
            image_size = im.size
        try:
            raw = source.read_mask(mask_path)
        except DataError as err:
            problems.append(str(err))
            continue
        if (raw.shape[1], raw.shape[0]) != image_size:
            problems.append(
                f"size mismatch: mask {mask_path} is {raw.shape[1]}x{raw.shape[0]}, "
                f"image {image_path.name} is {image_size[0]}x{image_size[1]}"
            )
            continue
        values = np.unique(raw)
        for v in values[~np.isin(values, valid)]:
            bad_values[int(v)].append(mask_path.name)
        if np.isin(values, valid).all():
            mapped = spec.encode(raw)
            hist = np.bincount(mapped.ravel(), minlength=256)
            counts[: spec.num_classes] += hist[: spec.num_classes]
            counts[-1] += hist[IGNORE_INDEX]
    for value, files in sorted(bad_values.items()):
        shown = ", ".join(files[:MAX_FILES_LISTED]) + (" ..." if len(files) > MAX_FILES_LISTED else "")
        problems.append(
            f"mask value {value} is outside the {spec.name} label spec "
            f"(valid raw values: {sorted(spec.valid_raw_values)[:40]}) in {len(files)} files: {shown}"
        )
    print(f"[{split}] {len(pairs)} images, {len(pairs)} masks")
    return problems, counts


def print_histogram(source: DatasetSource, counts: np.ndarray) -> None:
    names = [*source.label_spec.class_names, "(ignored)"]
    total = max(1, int(counts.sum()))
    width = max(len(n) for n in names)
    for name, c in zip(names, counts):
        bar = "#" * int(round(40 * c / total))
        print(f"  {name:<{width}} {100 * c / total:6.2f}% {bar}")


def save_histogram_png(source: DatasetSource, counts: dict[str, np.ndarray], path: Path) -> None:
    """A bar chart of class pixel shares per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*source.label_spec.class_names, "(ignored)"]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names)), 4))
    width = 0.8 / max(1, len(counts))
    for i, (split, c) in enumerate(counts.items()):
        share = 100 * c / max(1, c.sum())
        ax.bar(np.arange(len(names)) + i * width, share, width, label=split)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=60, ha="right")
    ax.set_ylabel("% of pixels")
    ax.set_title(f"{source.name}: class pixel histogram")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def check_dataset(source: DatasetSource, root: Path, histogram_png: Optional[Path] = None) -> int:
    """Check every split; print a report; return 0 when clean and 1 otherwise."""
    if source.prepare is not None:
        source.prepare(root)
    print(f"Checking --data {source.name} at {root}")
    problems: list[str] = []
    counts: dict[str, np.ndarray] = {}
    for split in source.splits:
        if split in source.optional_splits and not source.has_split(root, split):
            print(f"[{split}] absent (optional)")
            continue
        split_problems, split_counts = check_split(source, root, split)
        problems += [f"[{split}] {p}" for p in split_problems]
        if split_counts is not None:
            counts[split] = split_counts
            print_histogram(source, split_counts)
    if counts:
        png = histogram_png or Path(f"{source.name}_class_histogram.png")
        save_histogram_png(source, counts, png)
        print(f"Class histogram chart: {png}")
    if problems:
        print(f"{len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("No problems found.")
    return 0
