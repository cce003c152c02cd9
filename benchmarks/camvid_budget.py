"""Train on CamVid with a wall-clock budget and tabulate val mIoU, per-class IoU, epochs and timings.

    python benchmarks/camvid_budget.py --data-root /data/camvid --budget 00:03:00 --image-scale 0.25 --crop-size none
    python benchmarks/camvid_budget.py --data-root /data/camvid --runs unet-lite0 fast_scnn
    python benchmarks/camvid_budget.py --data-root /data/camvid --recipe configs/experiments/camvid_cpu_20m.yaml --tta flip
    python benchmarks/camvid_budget.py --data-root /data/camvid --recipe R.yaml --name ce-lovasz -- --loss ce+lovasz

Each run is ``train.py`` with a named experiment (``--runs``) or a recipe file (``--recipe``, any
train.py config), the budget flags, and whatever follows ``--``, in its own process, one after another
(never two at once: they would share the cores). ``--budget`` / ``--image-scale`` / ``--crop-size``
override the recipe only when given. The table gives the best-checkpoint val mIoU, the thin classes,
the epochs reached and the train / data / val seconds from each run's results.json, so it is
reproducible from the run directories too; ``--tta`` also scores the best checkpoint with eval.py
and that TTA, and reports the gain.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
EXP = REPO / "configs" / "experiments"
THIN = ("Pole", "SignSymbol", "Pedestrian", "Bicyclist")
NO_ENCODER = ["--encoder", "none", "--encoder-weights", "none"]

# name -> train.py arguments; SMP decoders with the offline ImageNet EfficientNet-Lite0 encoder, the
# same decoders without pretraining, and the from-scratch architectures
RUNS: dict[str, list[str]] = {
    "unet-lite0": ["--config", str(EXP / "camvid_unet.yaml")],
    "fpn-lite0": ["--config", str(EXP / "camvid_fpn.yaml")],
    "pspnet-lite0": ["--config", str(EXP / "camvid_pspnet.yaml")],
    "deeplabv3plus-lite0": ["--config", str(EXP / "camvid_deeplabv3plus.yaml")],
    "segformer-mit_b0": ["--config", str(EXP / "camvid_segformer.yaml")],
    "scratch_segformer": ["--config", str(EXP / "camvid_segformer.yaml"), "--arch", "scratch_segformer", "--encoder", "none"],
}  # fmt: skip
RUNS |= {
    arch: ["--config", str(EXP / "camvid_unet.yaml"), "--arch", arch, *NO_ENCODER]
    for arch in ("scratch_unet", "scratch_pspnet", "scratch_deeplabv3plus", "fast_scnn", "hrnet", "segmenter",
                 "bisenetv2", "dilated_context")
}
RUNS["hf_segformer-mit_b0"] = ["--config", str(EXP / "camvid_segformer.yaml"), "--arch", "hf_segformer",
                               "--encoder", "nvidia/mit-b0", "--encoder-weights", "none"]  # fmt: skip
# the same SMP networks without pretraining, to show what the offline ImageNet weights are worth
RUNS |= {
    f"{arch}-lite0-random": ["--config", str(EXP / f"camvid_{arch}.yaml"), "--encoder-weights", "none"]
    for arch in ("unet", "fpn", "pspnet", "deeplabv3plus")
}


def run(name: str, train_args: list[str], args: argparse.Namespace) -> dict:
    """Train one run (skipped when its results.json exists) and return its row."""
    run_dir = Path(args.output_dir) / name
    if not (run_dir / "results.json").is_file():
        cmd = [sys.executable, str(REPO / "train.py"), *train_args, "--data-root", args.data_root,
               "--logger", "csv", "--output-dir", str(run_dir), "--overwrite"]  # fmt: skip
        for flag, value in (("--max-time", args.budget), ("--epochs", args.epochs),
                            ("--image-scale", args.image_scale), ("--crop-size", args.crop_size)):
            if value is not None:
                cmd += [flag, str(value)]
        cmd += args.extra
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    r = json.loads((run_dir / "results.json").read_text())
    row = {"name": name, "mIoU": r["val/mIoU"], "epochs": r["epochs"], "steps": r["global_step"],
           "thin": {c: r.get(f"val/IoU/{c}") for c in THIN}, "timing": r.get("timing", {}),
           "iou": {k.split("/", 2)[2]: v for k, v in r.items() if k.startswith("val/IoU/")}}  # fmt: skip
    if args.tta:
        row["tta_mIoU"] = tta_miou(r["best_checkpoint"], args)
    print(f"{name}: val mIoU {row['mIoU']:.4f}" + (f", with --tta {args.tta} {row['tta_mIoU']:.4f}" if args.tta else ""),
          flush=True)
    return row


def tta_miou(checkpoint: str, args: argparse.Namespace) -> float:
    out = Path(checkpoint).with_name(f"best_val_tta_{args.tta}.json")
    if not out.is_file():
        subprocess.run([sys.executable, str(REPO / "eval.py"), "--ckpt", checkpoint, "--data-root", args.data_root,
                        "--tta", args.tta, "--no-progress", "--output", str(out)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    return json.loads(out.read_text())["mIoU"]


def table(rows: list[dict], tta: Optional[str]) -> str:
    head = "| run | val mIoU (%) |" + (f" + TTA {tta} |" if tta else "") + " " + " | ".join(THIN) + \
        " | epochs | train / data / val s |"
    lines = [head, "|---|---:|" + ("---:|" if tta else "") + "---:|" * len(THIN) + "---:|---|"]
    for r in rows:
        t = r["timing"]
        split = f"{t.get('train_seconds', 0):.0f} / {t.get('data_seconds', 0):.0f} / {t.get('val_seconds', 0):.0f}"
        thin = " | ".join(f"{100 * v:.1f}" if v is not None else "-" for v in r["thin"].values())
        tta_cell = f" {100 * r['tta_mIoU']:.1f} |" if tta else ""
        lines.append(f"| {r['name']} | {100 * r['mIoU']:.1f} |{tta_cell} {thin} | {r['epochs']} | {split} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--runs", nargs="+", default=[], choices=list(RUNS))
    p.add_argument("--recipe", type=Path, action="append", default=[], help="a train.py config file (repeatable)")
    p.add_argument("--name", help="run name for a single --recipe (default: the file's stem)")
    p.add_argument("--budget", help="--max-time of every run (default: the recipe's)")
    p.add_argument("--epochs", help="schedule cap (default: the recipe's)")
    p.add_argument("--image-scale")
    p.add_argument("--crop-size")
    p.add_argument("--tta", choices=("flip", "ms"), help="also score the best checkpoint with this TTA")
    p.add_argument("--output-dir", default="runs/camvid_budget")
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args(argv)
    args.extra = extra
    jobs = [(name, RUNS[name]) for name in args.runs]
    jobs += [(args.name if args.name and len(args.recipe) == 1 else recipe.stem, ["--config", str(recipe)])
             for recipe in args.recipe]  # fmt: skip
    if not jobs:
        p.error("give --runs NAME... and/or --recipe FILE")
    rows = [run(name, train_args, args) for name, train_args in jobs]
    print(f"\nbudget {args.budget or 'from the recipe'}, extra flags {' '.join(extra) or 'none'}")
    print(table(rows, args.tta))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
