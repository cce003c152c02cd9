"""Segment images, folders of images or videos with a checkpoint, an ensemble or an exported ONNX file.

    python predict.py --ckpt best.ckpt --input street.png --output out/
    python predict.py --ckpt a.ckpt --ckpt b.ckpt --tta flip --input frames/ --output out/
    python predict.py --backend onnxruntime --onnx model.onnx --input drive.mp4 --output out/
    python predict.py --ckpt best.ckpt --format labelids --input leftImg8bit/test --output results/

model -> inputs -> probabilities (TTA / sliding window) -> class ids -> for every image, by ``--format``:

- ``palette`` (default): ``<stem>_mask.png`` (palette PNG: pixel values are class ids, colours the
  dataset's palette) and ``<stem>_overlay.png`` (colours blended over the image); for a video
  ``<stem>_overlay.mp4``.
- ``trainids``: ``<stem>_trainIds.png``, a plain 8-bit single-channel map of class (train) ids.
- ``labelids``: what the Cityscapes / KITTI servers and cityscapesScripts read: 8-bit Cityscapes
  label ids named ``<city>_<seq>_<frame>_labelIds.png`` (Cityscapes) or like the input
  (KITTI ``000000_10.png``), nothing else in the folder, ready to zip (``drivseg.submission``).

A folder is searched recursively; its subfolders (Cityscapes cities) are mirrored under ``--output``.
"""

import sys

from drivseg.entry import run_entry_point
from drivseg.scripts.predict import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
