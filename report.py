"""Write the one-page HTML report of a run directory (train.py writes it at the end of every run).

    python report.py runs/camvid-unet-resnet18-20240101-120000
    python report.py runs/x --samples 5 --data-root /data/camvid    # the data moved since training

config.yaml, results.json, history.csv | csv/metrics.csv, val_confusion.csv, the best checkpoint on
the val split -> RUN/report.html (self-contained: embedded PNGs, inline CSS, no JavaScript). Inputs an
older run lacks get a note in their section.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.report import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
