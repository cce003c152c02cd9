"""What a finished run leaves behind: ``results.json`` and a per-class IoU table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence


def to_floats(metrics: Mapping) -> dict[str, float]:
    """Tensors and numbers -> plain floats (JSON-safe)."""
    return {k: float(v) for k, v in metrics.items()}


def iou_table(metrics: Mapping[str, float], class_names: Sequence[str], stage: str = "val") -> str:
    """A text table of per-class IoU, then mIoU and pixel accuracy, in percent."""
    width = max(len(n) for n in [*class_names, "pixel accuracy"])
    lines = [f"{'class':<{width}}  IoU (%)", "-" * (width + 9)]
    for name in class_names:
        value = metrics.get(f"{stage}/IoU/{name}", math.nan)
        lines.append(f"{name:<{width}}  {100 * value:6.2f}")
    lines.append("-" * (width + 9))
    lines.append(f"{'mIoU':<{width}}  {100 * metrics.get(f'{stage}/mIoU', math.nan):6.2f}")
    lines.append(f"{'pixel accuracy':<{width}}  {100 * metrics.get(f'{stage}/pixel_acc', math.nan):6.2f}")
    return "\n".join(lines)


def write_results(path: Path, results: Mapping) -> None:
    """Write atomically so a crash never leaves a half-written results.json."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
