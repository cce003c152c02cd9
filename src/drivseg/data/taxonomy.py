"""``--taxonomy native|cityscapes19``: one class list across driving datasets.

A model trained on one of Cityscapes, KITTI, BDD100K or Mapillary Vistas can be evaluated on
another only when both speak the same classes. Cityscapes and KITTI masks hold Cityscapes label
ids and BDD100K masks hold Cityscapes train ids, so their label specs already give the 19
Cityscapes classes in train id order; Mapillary's 65 classes are reduced with
``MAPILLARY_TO_CITYSCAPES19`` (``MAPILLARY_CS19_SPEC``). ``native`` keeps each dataset's own
classes. Only the label spec changes: files, splits and mask decoding stay the dataset's own.
"""

from __future__ import annotations

from dataclasses import replace

from drivseg.data.cityscapes import CITYSCAPES19_SPEC
from drivseg.data.label_spec import LabelSpec
from drivseg.data.mapillary import MAPILLARY_CS19_SPEC, MAPILLARY_SPEC
from drivseg.data.source import DatasetSource
from drivseg.errors import ConfigError

TAXONOMIES = ("native", "cityscapes19")

# native label spec name -> the same raw values mapped to the Cityscapes-19 train ids
CITYSCAPES19_REDUCTIONS: dict[str, LabelSpec] = {MAPILLARY_SPEC.name: MAPILLARY_CS19_SPEC}


def is_cityscapes19(spec: LabelSpec) -> bool:
    """True when ``spec``'s train ids are the 19 Cityscapes classes, in order, with their colours."""
    return spec.class_names == CITYSCAPES19_SPEC.class_names and spec.palette == CITYSCAPES19_SPEC.palette


def supports_cityscapes19(source: DatasetSource) -> bool:
    """True when ``apply_taxonomy(source, "cityscapes19")`` can succeed."""
    return is_cityscapes19(source.label_spec) or source.label_spec.name in CITYSCAPES19_REDUCTIONS


def apply_taxonomy(source: DatasetSource, taxonomy: str) -> DatasetSource:
    """``source`` with the label spec of ``taxonomy``.

    ``cityscapes19`` returns sources that already use the 19 classes unchanged and swaps in the
    reduction for the others (``mapillary`` -> the ``mapillary_cs19`` source); datasets with no
    mapping raise ``ConfigError`` naming the datasets that have one.
    """
    if taxonomy not in TAXONOMIES:
        raise ConfigError(f"--taxonomy {taxonomy!r} is unknown; valid: {', '.join(TAXONOMIES)}")
    if taxonomy == "native" or is_cityscapes19(source.label_spec):
        return source
    reduced = CITYSCAPES19_REDUCTIONS.get(source.label_spec.name)
    if reduced is None:
        raise ConfigError(
            f"--taxonomy cityscapes19: --data {source.name} has its own "
            f"{source.label_spec.num_classes} classes and no mapping to the 19 Cityscapes classes; "
            "datasets that have one: "
            f"{', '.join(cityscapes19_datasets())}. Use --taxonomy native for {source.name}"
        )
    # the same name as the registry's reduced source (mapillary -> mapillary_cs19)
    return replace(source, name=f"{source.name}_cs19", label_spec=reduced)


def cityscapes19_datasets() -> list[str]:
    """Registry names whose source supports ``--taxonomy cityscapes19``, sorted."""
    from drivseg.data import DATASETS  # the registry imports every dataset; import it on use

    sources = {name: entry for name, entry in DATASETS.items() if isinstance(entry, DatasetSource)}
    return sorted(name for name, source in sources.items() if supports_cityscapes19(source))
