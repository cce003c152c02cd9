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


def gather_skipped(skipped: Sequence[tuple[str, str]]) -> dict:
    """Unreadable samples skipped by every process (``--bad-samples skip``): count and files.

    A file skipped in several epochs (or by train and val) is counted once.
    """
    import torch.distributed as dist

    local = [list(s) for s in skipped]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        everyone: list = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, local)
        local = [s for part in everyone for s in part]
    reasons = dict((name, reason) for name, reason in local)
    return {"count": len(reasons), "files": sorted(reasons), "reasons": reasons}


def kill_other_processes(trainer) -> None:
    """When this process fails under DDP, end the processes it launched: they would otherwise wait in
    a collective for it until the DDP timeout. (Lightning already ends everyone when a launched
    process fails; this covers the launching process itself.)"""
    import signal

    from pytorch_lightning.strategies.launchers import _SubprocessScriptLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    if isinstance(launcher, _SubprocessScriptLauncher) and launcher.procs:
        launcher.kill(signal.SIGKILL)
