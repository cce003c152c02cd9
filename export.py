"""Export a checkpoint to ONNX or TorchScript, then check the exported model against PyTorch.

Usage and options: ``python export.py --help``; the code is ``drivseg.scripts.export``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.export import main

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
