"""Export a checkpoint to ONNX or TorchScript, then check the exported model against PyTorch.

    python export.py --ckpt runs/x/checkpoints/best.ckpt --format onnx --output model.onnx --dynamic
    python export.py --ckpt best.ckpt --format torchscript --output model.pt --height 360 --width 480
    python export.py --ckpt best.ckpt --format onnx --output model.onnx --benchmark 20   # latency

checkpoint -> network -> trace -> file (+ classes, palette, normalisation) -> parity check -> latency.
The exported model takes normalised images, (pixel / 255 - mean) / std, and returns logits.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.export import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
