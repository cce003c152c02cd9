"""Train a segmentation model on a driving dataset.

Usage and options: ``python train.py --help``; the code is ``drivseg.scripts.train``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.train import main, train  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
