"""Write the one-page HTML report of a run directory (train.py writes it at the end of every run).

Usage and options: ``python report.py --help``; the code is ``drivseg.scripts.report``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.report import main

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
