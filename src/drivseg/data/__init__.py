"""Dataset registry: ``--data NAME`` -> ``DatasetSource``.

Most datasets have a fixed layout and label spec; the ``folder`` dataset reads its classes from
``<data-root>/classes.yaml``, so its source is built from the root (see ``get_source``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

from drivseg.data.bdd100k import BDD100K
from drivseg.data.camvid import CAMVID
from drivseg.data.camvid_colour import CAMVID_COLOUR
from drivseg.data.cityscapes import CITYSCAPES
from drivseg.data.folder import folder_source
from drivseg.data.kitti import KITTI
from drivseg.data.lyft_carla import LYFT_CARLA
from drivseg.data.mapillary import MAPILLARY, MAPILLARY_CS19
from drivseg.data.source import DatasetSource
from drivseg.data.synthetic import SYNTHETIC
from drivseg.errors import ConfigError

DATASETS: dict[str, Union[DatasetSource, Callable[[Path], DatasetSource]]] = {
    "bdd100k": BDD100K,
    "camvid": CAMVID,
    "camvid_colour": CAMVID_COLOUR,
    "cityscapes": CITYSCAPES,
    "folder": folder_source,
    "kitti": KITTI,
    "lyft_carla": LYFT_CARLA,
    "mapillary": MAPILLARY,
    "mapillary_cs19": MAPILLARY_CS19,
    "synthetic": SYNTHETIC,
}


def get_source(name: str, data_root: Optional[str] = None) -> DatasetSource:
    """The ``DatasetSource`` for ``--data NAME`` (factories such as ``folder`` need ``--data-root``)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    entry = DATASETS[name]
    if isinstance(entry, DatasetSource):
        return entry
    if not data_root:
        raise ConfigError(f"--data {name} needs --data-root DIR (its classes are read from the folder)")
    return entry(Path(data_root).expanduser())
