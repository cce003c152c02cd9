"""Segment images, folders of images or videos with a checkpoint, an ensemble or an exported ONNX file.

Usage and options: ``python predict.py --help``; the code is ``drivseg.scripts.predict``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.predict import main

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
