"""Score one checkpoint, or an ensemble of checkpoints, on a dataset split.

    python eval.py --ckpt runs/x/checkpoints/best.ckpt --data-root ../data/camvid --split test
    python eval.py --ckpt a.ckpt --ckpt b.ckpt --weights 0.6,0.4 --data-root DIR --tta ms
    python eval.py --ckpt best.ckpt --data-root DIR --slide 512x512 --stride 341x341
    python eval.py --ckpt best.ckpt --data-root data/cityscapes --format cityscapes   # benchmark table
    python eval.py --ckpt wandb:ENTITY/PROJECT/model-RUNID:best --data-root DIR      # a --log-checkpoint artifact (online)

checkpoints -> ensemble -> split -> probabilities (TTA / sliding window) -> confusion matrix at the
label resolution -> mIoU, per-class IoU, pixel accuracy, Dice, fwIoU, class accuracy; per image:
mIoU and BF score -> JSON + CSV + heat map + IoU bar chart.
Classes and normalisation come from the checkpoints; ``--data`` defaults to the checkpoint's dataset.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


from torch.utils.data import DataLoader

from drivseg.data import DATASETS, get_source
from drivseg.data.datamodule import resolve_root
from drivseg.data.taxonomy import TAXONOMIES, apply_taxonomy
from drivseg.data.dataset import SegmentationDataset, check_sizes, pad_collate
from drivseg.data.transforms import eval_transform
from drivseg.entry import run_entry_point
from drivseg.errors import ConfigError
from drivseg.evaluation import (
    evaluate,
    plot_confusion,
    plot_iou,
    score_table,
    write_confusion_csv,
)
from drivseg.inference import (
    add_inference_flags,
    ensemble_from_checkpoints,
    parse_weights,
    pick_device,
    settings_from_flags,
)
from drivseg.loggers import checkpoint_argument
from drivseg.results import write_results
from drivseg.submission import cityscapes_scores, cityscapes_table, require_label_ids


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="eval.py", description=__doc__.splitlines()[0])
    add_inference_flags(p)
    p.add_argument("--data", choices=sorted(DATASETS), help="dataset (default: the checkpoint's)")
    p.add_argument("--data-root", help="dataset folder (default: the dataset's default location)")
    p.add_argument("--taxonomy", choices=TAXONOMIES, help="label taxonomy (default: the checkpoint's)")
    p.add_argument("--split", default="val", help="val (default) | test")
    p.add_argument("--output", type=Path, help="JSON file (default: <ckpt stem>_<split>_eval.json beside it)")
    p.add_argument("--batch-size", type=int, default=1, help="default: 1 (each image at its own size)")
    p.add_argument("--num-workers", type=int, default=2, help="data loading processes (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    p.add_argument("--bf-tolerance", type=float, metavar="PIXELS",
                   help="BF score match distance in pixels (default: 0.75%% of each image's diagonal)")
    p.add_argument("--format", choices=("default", "cityscapes"), default="default",
                   help="printed table: default (per-class IoU) | cityscapes (the benchmark's class and "
                        "category IoU; 19 Cityscapes classes only)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.ckpt = [checkpoint_argument(c) for c in args.ckpt]  # wandb:ENTITY/PROJECT/NAME:ALIAS -> downloaded file
    settings = settings_from_flags(args)
    model, cfg = ensemble_from_checkpoints(args.ckpt, parse_weights(args.weights, len(args.ckpt)))
    device = pick_device(args.device)
    model.to(device)

    data = args.data or cfg["data"]
    source = apply_taxonomy(get_source(data, args.data_root), args.taxonomy or cfg.get("taxonomy", "native"))
    data_classes = list(source.label_spec.class_names)
    if data_classes != list(cfg["class_names"]):
        raise ConfigError(
            f"--data {data} has {len(data_classes)} classes {data_classes[:4]}... "
            f"but {args.ckpt[0]} was trained on {len(cfg['class_names'])} {cfg['class_names'][:4]}...; "
            f"evaluate on the checkpoint's dataset (--data {cfg['data']})"
        )
    if args.format == "cityscapes":  # before the evaluation, not after it
        require_label_ids(cfg["class_names"], str(args.ckpt[0]), "--format cityscapes",
                          "the default --format")
    root = resolve_root(source, args.data_root)
    if source.prepare is not None:
        source.prepare(root)
    if args.split not in source.splits:
        raise ConfigError(f"--split {args.split!r}: {data} has the splits {', '.join(source.splits)}")
    pairs = source.find_pairs(root, args.split)
    check_sizes(pairs)
    # uint8 images at their own size: each model normalises and rescales them itself
    dataset = SegmentationDataset(pairs, source, eval_transform())
    loader = DataLoader(dataset, args.batch_size, num_workers=args.num_workers, collate_fn=pad_collate)

    names = list(cfg["class_names"])
    start = time.perf_counter()
    cm = evaluate(model, loader, len(names), settings, device, not args.no_progress, total=len(loader),
                  boundary_tolerance=args.bf_tolerance)
    seconds = time.perf_counter() - start
    result = cm.scores(names)

    out = args.output or args.ckpt[0].with_name(f"{args.ckpt[0].stem}_{args.split}_eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    files = {
        "confusion_csv": out.with_name(f"{out.stem}_confusion.csv"),
        "confusion_png": out.with_name(f"{out.stem}_confusion.png"),
        "iou_png": out.with_name(f"{out.stem}_iou.png"),
    }
    write_confusion_csv(cm.matrix, names, files["confusion_csv"])
    plot_confusion(cm.matrix, names, files["confusion_png"])
    plot_iou(result["IoU"], result["mIoU"], files["iou_png"])
    report = {
        **result,
        "class_names": names,  # the order of the matrix rows (JSON keys below are sorted)
        "checkpoints": [str(p) for p in args.ckpt],
        "weights": model.weights,
        "data": data,
        "data_root": str(root),
        "split": args.split,
        "images": len(dataset),
        "labelled_pixels": int(cm.matrix.sum()),
        "bf_tolerance": args.bf_tolerance,  # None: 0.75% of each image's diagonal
        "tta": settings.tta,
        "scales": list(settings.scales) if settings.tta == "ms" else None,
        "slide": list(settings.window) if settings.window else None,
        "stride": list(settings.stride) if settings.window else None,
        "confusion_matrix": cm.matrix.tolist(),
        "files": {k: str(v) for k, v in files.items()},
        "seconds": round(seconds, 2),
    }
    write_results(out, report)

    if args.format == "cityscapes":
        title = f"Cityscapes benchmark table: {data} {args.split}, {len(dataset)} images"
        print(cityscapes_table(cityscapes_scores(cm.matrix, names), title))
    else:
        print(score_table(result, names))
    print(f"Results in {out}")
    return 0


def run() -> None:
    """Console command ``drivseg-eval``: user errors become one line and exit code 2."""
    sys.exit(run_entry_point(main))


if __name__ == "__main__":  # python -m drivseg.scripts.eval
    run()
