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

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.eval import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
