"""Score one checkpoint, or an ensemble of checkpoints, on a dataset split.

Usage and options: ``python eval.py --help``; the code is ``drivseg.scripts.eval``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.eval import main

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
