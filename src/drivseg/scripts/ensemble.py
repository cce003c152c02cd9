"""Choose an ensemble of cross-validation experiments (and its TTA views) on out-of-fold predictions.

    python ensemble.py runs/cv-camvid_fpn runs/cv-camvid_unet runs/cv-camvid_pspnet
    python ensemble.py runs/cv-a runs/cv-b --tta --scales 0.75,1.0,1.25

experiments on identical folds -> OOF probabilities (oof_probs/, predicted from the fold checkpoints
when cv.py did not save them) -> greedy forward selection with replacement on OOF mIoU -> with
--tta, the views that raise the OOF mIoU -> ensemble.json and the eval.py command that scores the
choice on the test split (or the split outside the pool). See ``drivseg.ensemble``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from drivseg.data import get_source
from drivseg.data.datamodule import resolve_root
from drivseg.data.taxonomy import apply_taxonomy
from drivseg.ensemble import choose_ensemble, load_experiments
from drivseg.entry import run_entry_point
from drivseg.inference import DEFAULT_SCALES, parse_floats, pick_device


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ensemble.py", description=__doc__.splitlines()[0])
    p.add_argument("experiments", type=Path, nargs="+", help="cv.py experiment folders (identical folds)")
    p.add_argument("--tta", action="store_true", help="also choose test-time augmentation views on OOF")
    scales = ",".join(f"{s:g}" for s in DEFAULT_SCALES)
    p.add_argument("--scales", default=scales, help=f"candidate scales of --tta (default: {scales}; 1 = flip)")
    p.add_argument("--min-gain", type=float, default=0.001,
                   help="OOF mIoU a TTA view must add to be kept (default: 0.001 = 0.1 points)")
    p.add_argument("--max-steps", type=int, default=25, help="greedy selection steps at most (default: 25)")
    p.add_argument("--data-root", help="dataset folder (default: the experiments')")
    p.add_argument("--output", type=Path, help="JSON of the choice (default: ensemble.json beside the first experiment)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default: cpu")
    p.add_argument("--num-workers", type=int, default=2, help="data loading processes (default: 2)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    experiments = load_experiments(args.experiments)
    cfg = experiments[0].results["config"]
    source = apply_taxonomy(get_source(cfg["data"], args.data_root or cfg.get("data_root")), cfg.get("taxonomy", "native"))
    root = resolve_root(source, args.data_root or cfg.get("data_root"))
    if source.prepare is not None:
        source.prepare(root)
    outside = experiments[0].results.get("scored_splits", [])
    split = "test" if "test" in outside else (outside[0] if outside else "test")
    if not outside:
        print("note: every split of the dataset is in the CV pool; the eval.py command names --split test")
    choose_ensemble(experiments, source, root, cfg["data"], split, tta=args.tta,
                    scales=parse_floats(args.scales, "--scales"), min_gain=args.min_gain,
                    max_steps=args.max_steps, device=pick_device(args.device), num_workers=args.num_workers,
                    output=args.output)
    return 0


def run() -> None:
    """Console command ``drivseg-ensemble``: user errors become one line and exit code 2."""
    sys.exit(run_entry_point(main))


if __name__ == "__main__":  # python -m drivseg.scripts.ensemble
    run()
