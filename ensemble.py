"""Choose an ensemble of cross-validation experiments (and its TTA views) on out-of-fold predictions.

Usage and options: ``python ensemble.py --help``; the code is ``drivseg.scripts.ensemble``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.ensemble import main

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
