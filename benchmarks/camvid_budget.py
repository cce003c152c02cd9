"""Train several architectures on CamVid with the same wall-clock budget and tabulate val mIoU.

    python benchmarks/camvid_budget.py --data-root /data/camvid --budget 00:03:00 --image-scale 0.5
    python benchmarks/camvid_budget.py --data-root /data/camvid --runs unet-lite0 fast_scnn

Each run is ``train.py`` with the experiment config (or flags) below plus the shared budget flags,
in its own process, one after another (never two at once: they would share the cores). The table
gives the best-checkpoint val mIoU, the epochs reached and the training seconds from each run's
results.json, so it is reproducible from the run directories too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXP = REPO / "configs" / "experiments"

# name -> train.py arguments; SMP decoders with the offline ImageNet EfficientNet-Lite0 encoder, the
# same decoders without pretraining, and the from-scratch architectures
RUNS: dict[str, list[str]] = {
    "unet-lite0": ["--config", str(EXP / "camvid_unet.yaml")],
    "fpn-lite0": ["--config", str(EXP / "camvid_fpn.yaml")],
    "pspnet-lite0": ["--config", str(EXP / "camvid_pspnet.yaml")],
    "deeplabv3plus-lite0": ["--config", str(EXP / "camvid_deeplabv3plus.yaml")],
    "segformer-mit_b0": ["--config", str(EXP / "camvid_segformer.yaml")],
    "scratch_unet": ["--config", str(EXP / "camvid_unet.yaml"), "--arch", "scratch_unet", "--encoder", "none", "--encoder-weights", "none"],
    "scratch_pspnet": ["--config", str(EXP / "camvid_unet.yaml"), "--arch", "scratch_pspnet", "--encoder", "none", "--encoder-weights", "none"],
    "scratch_deeplabv3plus": ["--config", str(EXP / "camvid_unet.yaml"), "--arch", "scratch_deeplabv3plus", "--encoder", "none", "--encoder-weights", "none"],
    "scratch_segformer": ["--config", str(EXP / "camvid_segformer.yaml"), "--arch", "scratch_segformer", "--encoder", "none"],
    "fast_scnn": ["--config", str(EXP / "camvid_unet.yaml"), "--arch", "fast_scnn", "--encoder", "none", "--encoder-weights", "none"],
}  # fmt: skip
# the same SMP networks without pretraining, to show what the offline ImageNet weights are worth
RUNS |= {
    f"{arch}-lite0-random": ["--config", str(EXP / f"camvid_{arch}.yaml"), "--encoder-weights", "none"]
    for arch in ("unet", "fpn", "pspnet", "deeplabv3plus")
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--budget", default="00:03:00", help="--max-time of every run")
    p.add_argument("--epochs", type=int, default=12, help="schedule length (the budget usually ends first)")
    p.add_argument("--image-scale", default="0.5")
    p.add_argument("--crop-size", default="176x240")
    p.add_argument("--output-dir", default="runs/camvid_budget")
    args = p.parse_args()
    rows = []
    for name in args.runs:
        run_dir = Path(args.output_dir) / name
        cmd = [sys.executable, str(REPO / "train.py"), *RUNS[name], "--data-root", args.data_root,
               "--max-time", args.budget, "--epochs", str(args.epochs), "--image-scale", args.image_scale,
               "--crop-size", args.crop_size, "--logger", "csv", "--output-dir", str(run_dir)]  # fmt: skip
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        r = json.loads((run_dir / "results.json").read_text())
        rows.append((name, r["val/mIoU"], r["epochs"], r["train_seconds"]))
        print(f"{name}: val mIoU {r['val/mIoU']:.3f}", flush=True)
    print(f"\nbudget {args.budget}, image scale {args.image_scale}, crop {args.crop_size}")
    print("| run | val mIoU (%) | epochs | train s |\n|---|---:|---:|---:|")
    for name, miou, epochs, seconds in rows:
        print(f"| {name} | {100 * miou:.1f} | {epochs} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
