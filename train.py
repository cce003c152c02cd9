"""Train a segmentation model on a driving dataset.

    python train.py                                  # U-Net on the embedded synthetic scenes, CPU
    python train.py --arch pspnet --gpus 2           # SMP PSPNet, 2 GPUs, DDP
    python train.py --config configs/experiments/camvid_unet.yaml --data-root ../data/camvid
    python train.py --accelerator cpu --devices 2    # real DDP (gloo) on CPU
    python train.py --max-time 20m --epochs 100      # a wall-clock budget: the LR reaches 0 at 20 min

parse -> seed -> run dir -> datamodule -> network + loss -> module -> logger -> trainer -> fit ->
validate/test the best checkpoint -> results.json (+ history.csv, val_confusion.csv, report.html).
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.train import main, train  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
