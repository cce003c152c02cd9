"""A leaderboard of every run and cross-validation experiment under a folder (no W&B account needed).

    python leaderboard.py runs/
    python leaderboard.py runs/ --metric test/mIoU
    python leaderboard.py --wandb my-team/drivseg          # the same table from the W&B API

results.json / cv_results.json -> one row each (arch, encoder, loss, the config keys that differ
between rows, OOF mIoU ± fold std or val mIoU, test mIoU, train time, parameters, per-class IoU),
best first -> printed markdown + leaderboard.md / leaderboard.csv / leaderboard.png in the folder.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.leaderboard import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
