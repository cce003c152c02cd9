"""Choose an ensemble of cross-validation experiments (and its TTA views) on out-of-fold predictions.

    python ensemble.py runs/cv-camvid_fpn runs/cv-camvid_unet runs/cv-camvid_pspnet
    python ensemble.py runs/cv-a runs/cv-b --tta --scales 0.75,1.0,1.25

experiments on identical folds -> OOF probabilities (oof_probs/, predicted from the fold checkpoints
when cv.py did not save them) -> greedy forward selection with replacement on OOF mIoU -> with
--tta, the views that raise the OOF mIoU -> ensemble.json and the eval.py command that scores the
choice on the test split (or the split outside the pool). See ``drivseg.ensemble``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.ensemble import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
