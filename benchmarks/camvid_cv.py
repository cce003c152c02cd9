"""5-fold cross-validation on CamVid's train split, scored on the untouched val split: the README table.

    python benchmarks/camvid_cv.py --data-root data/camvid
    python benchmarks/camvid_cv.py --data-root data/camvid --config configs/experiments/camvid_pspnet.yaml --budget 00:03:00

One ``cv.py`` run (``--cv-pool train``: the 367 train images make the folds, val stays outside)
with the same wall-clock budget for every fold, then one markdown row: each fold's held-out mIoU,
the OOF mIoU, the val mIoU of the 5-fold ensemble, of the best single fold and the mean single
fold, and the wall time. Re-running the command reuses finished folds (cv.py skips them).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def row(results: dict, name: str) -> str:
    """The README row of one experiment's cv_results.json."""
    count = results["folds"]
    folds = " / ".join(f"{100 * results[f'fold_{k}/val/mIoU']:.1f}" for k in range(count))
    wall = results.get("wall_seconds")
    return (f"| {name} | {folds} | {100 * results['folds/mIoU_mean']:.1f} ± {100 * results['folds/mIoU_std']:.1f} "
            f"| {100 * results['oof/mIoU']:.1f} | {100 * results['val/mIoU']:.1f} "
            f"| {100 * results['val/single_mIoU_best']:.1f} | {100 * results['val/single_mIoU_mean']:.1f} "
            f"| {'?' if wall is None else f'{wall / 60:.0f}'} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--config", default=str(REPO / "configs" / "experiments" / "camvid_fpn.yaml"))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--budget", default="00:10:00", help="--max-time of every fold")
    p.add_argument("--epochs", type=int, default=30, help="schedule length (the budget usually ends first)")
    p.add_argument("--image-scale", default="0.5")
    p.add_argument("--crop-size", default="176x240")
    p.add_argument("--output-dir", default="runs/camvid_cv")
    args = p.parse_args()
    cmd = [sys.executable, str(REPO / "cv.py"), "--config", args.config, "--data-root", args.data_root,
           "--cv-pool", "train", "--folds", str(args.folds), "--max-time", args.budget, "--epochs", str(args.epochs),
           "--image-scale", args.image_scale, "--crop-size", args.crop_size, "--logger", "csv",
           "--output-dir", args.output_dir]  # fmt: skip
    print(" ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    minutes = (time.perf_counter() - start) / 60
    results = json.loads((Path(args.output_dir) / "cv_results.json").read_text())
    print(f"\n{Path(args.config).stem}, budget {args.budget} per fold, image scale {args.image_scale}, "
          f"crop {args.crop_size}, {platform.processor() or platform.machine()}; this command: {minutes:.0f} min")
    print(f"| experiment | held-out mIoU per fold (%) | mean ± std | OOF mIoU | val mIoU, {args.folds}-fold ensemble "
          "| val mIoU, best fold | val mIoU, mean fold | wall min |\n|---|---|---:|---:|---:|---:|---:|---:|")
    print(row(results, Path(args.config).stem))


if __name__ == "__main__":
    main()
