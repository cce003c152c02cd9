"""Export a checkpoint to ONNX or TorchScript, then check the exported model against PyTorch.

    python export.py --ckpt runs/x/checkpoints/best.ckpt --format onnx --output model.onnx --dynamic
    python export.py --ckpt best.ckpt --format torchscript --output model.pt --height 360 --width 480
    python export.py --ckpt best.ckpt --format onnx --output model.onnx --benchmark 20   # latency

checkpoint -> network -> trace -> file (+ classes, palette, normalisation) -> parity check -> latency.
The exported model takes normalised images, (pixel / 255 - mean) / std, and returns logits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


import torch

from drivseg.checkpoint import load_module
from drivseg.entry import run_entry_point
from drivseg.errors import ConfigError
from drivseg.export import (
    FORMATS,
    PARITY_TOLERANCE,
    export_onnx,
    export_torchscript,
    load_exported,
    max_logit_difference,
    median_latencies,
    model_metadata,
    parity_sizes,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="export.py", description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, required=True, help="checkpoint written by train.py")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--output", type=Path, required=True, help="file to write (.onnx / .pt)")
    p.add_argument("--dynamic", action="store_true", help="free batch, height and width (checked at 2 sizes)")
    p.add_argument("--height", type=int, default=384, help="input height traced and checked (default: 384)")
    p.add_argument("--width", type=int, default=512, help="input width traced and checked (default: 512)")
    p.add_argument("--benchmark", type=int, default=0, metavar="N",
                   help="also time N runs of PyTorch eager and the exported model (medians)")
    args = p.parse_args(argv)
    if args.height < 1 or args.width < 1:
        raise ConfigError(f"--height {args.height} --width {args.width}: expected positive sizes in pixels")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    module = load_module(args.ckpt)
    cfg = module.hparams.model_config
    net = module.net.eval()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, 3, args.height, args.width)
    if args.format == "onnx":
        export_onnx(net, args.output, example, model_metadata(cfg), args.dynamic, cfg["arch"])
    else:
        export_torchscript(net, args.output, example, model_metadata(cfg))
    print(f"Wrote {args.output} ({cfg['arch']}, {len(cfg['class_names'])} classes, "
          f"{'any' if args.dynamic else f'{args.height}x{args.width}'} input size)")

    exported = load_exported(args.output, args.format)
    for batch, h, w in parity_sizes(args.height, args.width, args.dynamic):
        try:
            diff = max_logit_difference(net, exported, torch.randn(batch, 3, h, w))
        except Exception as err:  # a graph frozen to the export size fails at run time
            diff, why = float("inf"), f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
        else:
            why = ""
        status = "OK" if diff < PARITY_TOLERANCE else "FAILED"
        print(f"parity vs PyTorch at {batch}x3x{h}x{w}: max |logit diff| = {diff:.2e} "
              f"(tolerance {PARITY_TOLERANCE:.0e}) {status} {why}".rstrip())
        if status == "FAILED":
            args.output.unlink()  # a model that disagrees with its checkpoint must not be shipped
            raise ConfigError(f"the exported {cfg['arch']} differs from PyTorch at {batch}x3x{h}x{w} "
                              f"(max |logit diff| {diff:.2e}); removed {args.output}. This usually means "
                              "size-dependent Python code that tracing froze: export without --dynamic "
                              "at the --height/--width you will run at")

    if args.benchmark > 0:
        images = torch.randn(1, 3, args.height, args.width)
        eager, other = median_latencies([net, exported], images, args.benchmark)
        name = "ONNX Runtime" if args.format == "onnx" else "TorchScript"
        print(f"latency at 1x3x{args.height}x{args.width} (median of {args.benchmark}): PyTorch eager "
              f"{1000 * eager:.1f} ms, {name} {1000 * other:.1f} ms, ratio {other / eager:.2f}")
    return 0


def run() -> None:
    """Console command ``drivseg-export``: user errors become one line and exit code 2."""
    sys.exit(run_entry_point(main))


if __name__ == "__main__":  # python -m drivseg.scripts.export
    run()
