"""K-fold cross-validation, the Kaggle way: frozen sequence-grouped folds, out-of-fold scores.

    python cv.py --config configs/experiments/camvid_fpn.yaml --data-root ../data/camvid --folds 5
    python cv.py --config configs/experiments/camvid_fpn.yaml --data-root ../data/camvid --fold 2
    python cv.py --config configs/experiments/camvid_fpn.yaml --data-root ../data/camvid --collect
    python cv.py --config X --folds-file runs/cv-camvid_fpn/folds.csv --output-dir runs/cv-b   # same folds

folds.csv (once) -> for each fold: train.py --folds-file --fold K -> best checkpoint predicts the
held-out fold (oof/) -> when every fold has finished: one confusion matrix over all OOF pixels,
the K-fold ensemble on the splits outside the pool -> cv_results.json. Every train.py flag is
accepted and passed to every fold; see ``drivseg.cv``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.cv import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
