"""Run a W&B sweep YAML locally, no account needed: grid or random search, one run per trial.

Usage and options: ``python sweep.py --help``; the code is ``drivseg.scripts.sweep``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.sweep import main

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
