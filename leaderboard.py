"""A leaderboard of every run and cross-validation experiment under a folder (no W&B account needed).

Usage and options: ``python leaderboard.py --help``; the code is ``drivseg.scripts.leaderboard``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.leaderboard import main

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
