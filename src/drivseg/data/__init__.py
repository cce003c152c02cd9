"""Dataset registry: ``--data NAME`` -> ``DatasetSource``."""

from __future__ import annotations

from drivseg.data.camvid import CAMVID
from drivseg.data.source import DatasetSource

DATASETS: dict[str, DatasetSource] = {
    "camvid": CAMVID,
}

try:  # the embedded default dataset
    from drivseg.data.synthetic import SYNTHETIC

    DATASETS["synthetic"] = SYNTHETIC
except ImportError:  # pragma: no cover
    pass
