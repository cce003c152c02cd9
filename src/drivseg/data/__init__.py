"""Dataset registry: ``--data NAME`` -> ``DatasetSource``."""

from __future__ import annotations

from drivseg.data.bdd100k import BDD100K
from drivseg.data.camvid import CAMVID
from drivseg.data.cityscapes import CITYSCAPES
from drivseg.data.kitti import KITTI
from drivseg.data.source import DatasetSource

DATASETS: dict[str, DatasetSource] = {
    "bdd100k": BDD100K,
    "camvid": CAMVID,
    "cityscapes": CITYSCAPES,
    "kitti": KITTI,
}

try:  # the embedded default dataset
    from drivseg.data.synthetic import SYNTHETIC

    DATASETS["synthetic"] = SYNTHETIC
except ImportError:  # pragma: no cover
    pass
