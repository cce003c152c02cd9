"""K-fold cross-validation, the Kaggle way: frozen sequence-grouped folds, out-of-fold scores.

Usage and options: ``python cv.py --help``; the code is ``drivseg.scripts.cv``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.cv import main

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
